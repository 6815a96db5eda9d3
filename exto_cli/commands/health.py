"""`exto health`: is the API up, ready, and does the token work."""

from __future__ import annotations

import subprocess
from typing import Annotated

import typer

app = typer.Typer()

OutputOption = Annotated[
    str | None,
    typer.Option("--output", "-o", help="table, json, jsonl, csv or tsv. (env: EXTO_OUTPUT)"),
]


@app.command(
    "health",
    context_settings={"allow_interspersed_args": False},
)
def health(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="After '--': a command to run once healthy; exto exits with its code.",
            show_default=False,
        ),
    ] = None,
    live: Annotated[bool, typer.Option("--live", help="Check liveness only.")] = False,
    ready: Annotated[bool, typer.Option("--ready", help="Check readiness only.")] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Poll until healthy, through refused connections, 5xx and 429."
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0, help="With --wait: give up after this many seconds (exit 7)."
        ),
    ] = 300.0,
    interval: Annotated[
        float, typer.Option("--interval", min=0, help="With --wait: seconds between polls.")
    ] = 2.0,
    success_threshold: Annotated[
        int,
        typer.Option(
            "--success-threshold", min=1, help="With --wait: consecutive healthy polls needed."
        ),
    ] = 1,
    check_auth: Annotated[
        bool,
        typer.Option(
            "--check-auth",
            help="Also send one authenticated request (GET /api/v1/build/info); 401/403 exit 4.",
        ),
    ] = False,
    output: OutputOption = None,
) -> None:
    """Check that the Exto API is up and ready (readiness and liveness; no token needed).

    Exit 0 when healthy, 7 when the server answers not ok, 5 when it cannot be reached.

    Example, in a CI step:  exto health --wait --check-auth -- ./deploy.sh
    """
    from exto_cli import health as core
    from exto_cli.client import Clock
    from exto_cli.errors import UsageError
    from exto_cli.output import resolve_format

    app_ctx = ctx.find_root().obj
    if live and ready:
        raise UsageError("--live and --ready exclude each other; give neither to check both")
    if command and not wait:
        raise UsageError(
            "a command after '--' needs --wait", hint="exto health --wait -- CMD ARGS..."
        )
    checks = ["liveness"] if live else ["readiness"] if ready else ["readiness", "liveness"]
    fmt = resolve_format(output, app_ctx.env, app_ctx.stdout_is_tty)
    session = app_ctx.session
    if wait:
        results = core.wait_until_healthy(
            session,
            checks,
            timeout_s=timeout,
            interval_s=interval,
            success_threshold=success_threshold,
            clock=app_ctx.clock or Clock(),
        )
    else:
        results = core.check_once(session, checks)
    if check_auth and all(r.ok for r in results):
        results.append(core.check_auth(session))
    if not command:
        _render(app_ctx, fmt, [r.row() for r in results])
    core.require_ok(results)
    if command:
        raise typer.Exit(_run(command))


def _render(app_ctx: object, fmt: str, rows: list[dict[str, object]]) -> None:
    from exto_cli.output import make_console, write_records

    columns = ["check", "ok", "status", "detail"]
    if fmt == "json" or fmt == "jsonl":
        columns.append("body")
    console = make_console(stderr=False, color=app_ctx.settings.color) if fmt == "table" else None  # type: ignore[attr-defined]
    write_records(fmt, rows, columns, console=console)


def _run(command: list[str]) -> int:
    from exto_cli.errors import ExitCode, ExtoError

    try:
        completed = subprocess.run(command, check=False)
    except FileNotFoundError:
        raise ExtoError(f"command not found: {command[0]}") from None
    except PermissionError:
        raise ExtoError(f"command not executable: {command[0]}") from None
    code = completed.returncode
    # A child killed by signal N reports -N; shells report 128 + N.
    return 128 - code if code < 0 else code if code <= 255 else int(ExitCode.ERROR)
