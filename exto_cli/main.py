"""The root app: global options, the AppContext, and the one error boundary."""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from exto_cli import __version__
from exto_cli.commands import auth, get, health, sandbox, update
from exto_cli.errors import ExitCode, ExtoError, TerminatedError


class ExtoGroup(TyperGroup):
    """Maps every ExtoError raised below to ``error:``/``hint:`` on stderr and its exit code."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ExtoError as exc:
            report(ctx, exc)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            printer_for(ctx).error("interrupted")
            raise typer.Exit(int(ExitCode.SIGINT)) from None


def printer_for(ctx: typer.Context) -> Any:
    from exto_cli.context import AppContext
    from exto_cli.output import Printer

    root = ctx.find_root()
    if isinstance(root.obj, AppContext):
        return root.obj.printer
    return Printer()


def report(ctx: typer.Context, exc: ExtoError) -> None:
    message = exc.message
    if exc.request_id:
        message += f" (request id {exc.request_id})"
    printer_for(ctx).error(message, hint=exc.hint, details=exc.details, snippet=exc.snippet)


app = typer.Typer(
    cls=ExtoGroup,
    name="exto",
    help="Query and update Exto data from a terminal, a script or a CI step.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(auth.app)
app.add_typer(get.app)
app.add_typer(health.app)
app.add_typer(update.app)
app.add_typer(sandbox.app)


def _version(value: bool) -> None:
    if value:
        print(f"exto {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="Named profile from config.toml; 'sandbox' is built in. (env: EXTO_PROFILE)",
        ),
    ] = None,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="Use the in-process sandbox: no server, no login (same as --profile sandbox).",
        ),
    ] = False,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="API root; /api/v1/... is joined to it. (env: EXTO_BASE_URL; default: https://platform.exto360.com/data)",
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project", help="Project short id, sent as X-Project-Id. (env: EXTO_PROJECT_ID)"
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            help="Requests per second across all exto processes; 0 turns pacing off. (env: EXTO_RATE; default: 3)",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="Connect and read timeout per request, in seconds. (env: EXTO_TIMEOUT; default: 30)",
        ),
    ] = None,
    ca_bundle: Annotated[
        str | None,
        typer.Option(
            "--ca-bundle",
            help="PEM file of extra trusted CAs. (env: EXTO_CA_BUNDLE, REQUESTS_CA_BUNDLE)",
        ),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            help="Extra header NAME:VALUE for the API origin only; repeatable. (env: EXTO_HEADERS, one per line)",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="One line per request on stderr.")
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Wire log on stderr, secrets redacted. (env: EXTO_DEBUG)"),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Data only: no notes or warnings.")
    ] = False,
    color: Annotated[
        str | None,
        typer.Option("--color", help="auto, always or never. (env: NO_COLOR, FORCE_COLOR)"),
    ] = None,
    no_input: Annotated[
        bool,
        typer.Option(
            "--no-input", help="Never prompt (also when CI is set or stdin is not a terminal)."
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Query and update Exto data from a terminal, a script or a CI step.

    Start with no account:  exto --sandbox health
    """
    from exto_cli.config import SANDBOX_PROFILE, GlobalOptions, resolve
    from exto_cli.context import AppContext
    from exto_cli.errors import UsageError
    from exto_cli.output import Printer

    if sandbox and profile and profile != SANDBOX_PROFILE:
        raise UsageError("--sandbox and --profile name different profiles; give one")
    options = GlobalOptions(
        profile=SANDBOX_PROFILE if sandbox else profile,
        base_url=base_url,
        project_id=project,
        rate_per_second=rate,
        timeout_s=timeout,
        ca_bundle=ca_bundle,
        headers=tuple(header or ()),
        verbose=verbose,
        debug=debug,
        quiet=quiet,
        color=color,
        no_input=no_input,
    )
    ctx.obj = AppContext(
        settings=resolve(options),
        printer=Printer(quiet=quiet, color=color or "auto"),
        options=options,
    )
    ctx.call_on_close(ctx.obj.close)


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise TerminatedError("terminated")


def run() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app(prog_name="exto")
    except TerminatedError:
        sys.stderr.write("error: terminated\n")
        sys.exit(int(ExitCode.SIGTERM))
    except BrokenPipeError:
        # Output piped into `head`: not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(int(ExitCode.ERROR))
