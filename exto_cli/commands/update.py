"""`exto update`: bulk create-or-update from CSV, JSON or JSON lines, validated first."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from exto_cli.context import AppContext
    from exto_cli.loader import UpdateOptions

app = typer.Typer(
    name="update",
    help="Create or update records in bulk, checked before anything is sent.",
    no_args_is_help=True,
)

CONFIRM_ABOVE = 1000


def _app(ctx: typer.Context) -> AppContext:
    return ctx.find_root().obj  # type: ignore[no-any-return]


def _command(kind: str) -> Any:
    def command(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Its name, e.g. LOCATION or INSPECTION.")],
        file: Annotated[
            str | None,
            typer.Argument(
                help="Input file (.csv, .json array, .jsonl), or - for stdin.", show_default=False
            ),
        ] = None,
        input_format: Annotated[
            str | None,
            typer.Option(
                "--format", help="csv, json or jsonl (default: from the extension, or sniffed)."
            ),
        ] = None,
        set_: Annotated[
            list[str] | None,
            typer.Option(
                "--set", help="FIELD=text or FIELD:=JSON: upsert one record built here; repeatable."
            ),
        ] = None,
        user: Annotated[
            str | None,
            typer.Option("--user", help="Acting user (an Exto username); required for modules."),
        ] = None,
        key: Annotated[
            str | None,
            typer.Option(
                "--key",
                help="The unique field that identifies a record: checks duplicates, allows several batches in flight and safe re-sends.",
            ),
        ] = None,
        on_duplicate: Annotated[
            str,
            typer.Option(
                "--on-duplicate",
                help="error (default) or last: keep the last of records sharing a key.",
            ),
        ] = "error",
        batch_size: Annotated[
            int, typer.Option("--batch-size", help="Records per request, 1-1000.")
        ] = 1000,
        empty: Annotated[
            str,
            typer.Option("--empty", help="CSV empty cells: skip (leave the field out) or null."),
        ] = "skip",
        type_: Annotated[
            list[str] | None,
            typer.Option(
                "--type",
                help="FIELD=text|number|boolean|json: how to read a CSV column; repeatable.",
            ),
        ] = None,
        results: Annotated[
            Path | None,
            typer.Option(
                "--results",
                help="Journal of every batch (JSON lines); default: a new file in the state dir.",
            ),
        ] = None,
        failed_rows: Annotated[
            Path | None,
            typer.Option(
                "--failed-rows",
                help="Where rows of failed and unknown batches go, in the input's format.",
            ),
        ] = None,
        resume: Annotated[
            Path | None,
            typer.Option("--resume", help="Continue the load recorded in this journal."),
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Validate and show the batch plan; send nothing.")
        ] = False,
        diff: Annotated[
            bool,
            typer.Option(
                "--diff",
                help="With --dry-run and --key: look the keys up and count creates, updates and unchanged.",
            ),
        ] = False,
        yes: Annotated[
            bool,
            typer.Option("--yes", "-y", help="Do not ask before loading more than 1000 records."),
        ] = False,
        output: Annotated[
            str | None,
            typer.Option("--output", "-o", help="Summary as table (stderr) or json (stdout)."),
        ] = None,
    ) -> None:
        from exto_cli.errors import UsageError
        from exto_cli.inputs import parse_set
        from exto_cli.loader import UpdateOptions, parse_types

        try:
            record = parse_set(set_) if set_ else None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if empty not in ("skip", "null"):
            raise UsageError(f"--empty: expected skip or null, got {empty!r}")
        opts = UpdateOptions(
            kind=kind,
            name=name,
            source=file,
            fmt=input_format,
            set_record=record,
            key=key,
            on_duplicate=on_duplicate,
            batch_size=batch_size,
            empty_null=empty == "null",
            types=parse_types(type_ or []),
            user=user,
            results=results,
            failed_rows=failed_rows,
            resume=resume,
        )
        _update(_app(ctx), opts, dry_run=dry_run, diff=diff, yes=yes, output=output)

    return command


app.command(
    "master",
    help="Create or update master records from a file, stdin or --set.\n\n"
    "Every record is checked before the first request; batches of up to 1000 go out at the rate "
    "limit, each one written down in the results journal.\n\n"
    "Example:  exto update master LOCATION locations.csv --key code",
)(_command("master"))
app.command(
    "module",
    help="Create or update module records (needs --user, the acting Exto user).\n\n"
    "Example:  exto update module INSPECTION inspections.jsonl --user ops@example.com",
)(_command("module"))


def _update(
    app_ctx: AppContext,
    opts: UpdateOptions,
    *,
    dry_run: bool,
    diff: bool,
    yes: bool,
    output: str | None,
) -> None:
    from exto_cli import loader
    from exto_cli.bulk import validate
    from exto_cli.errors import UsageError

    if output not in (None, "table", "json"):
        raise UsageError(f"-o {output}: the summary is a table or json")
    if diff and not (dry_run and opts.key):
        raise UsageError("--diff needs --dry-run and --key")
    loader.check_options(opts)
    state_dir = _state_dir(app_ctx)
    source = loader.open_input(opts, state_dir / "spool", sys.stdin)
    try:
        plan = validate(
            source.items, key=opts.key, on_duplicate=opts.on_duplicate, batch_size=opts.batch_size
        )
        loader.check_plan(plan, source)
        rate = app_ctx.settings.rate_per_second
        if dry_run:
            print(loader.plan_text(opts, source, plan, rate))
            if diff:
                print(loader.diff(app_ctx.session, opts, source, plan).text(str(opts.key)))
            return
        _confirm(app_ctx, plan.records - len(plan.superseded), yes)
        summary, fatal = _load(app_ctx, opts, source, plan, state_dir, rate)
    finally:
        if source.spooled:
            source.path.unlink(missing_ok=True)
    _report(app_ctx, summary, output)
    if fatal is not None:
        raise fatal
    if summary.interrupted:
        raise typer.Exit(130 if _SIGNALS.get("last") != signal.SIGTERM else 143)
    code = loader.exit_code(summary)
    if code:
        raise typer.Exit(int(code))


def _state_dir(app_ctx: AppContext) -> Path:
    if app_ctx.env.get("EXTO_STATE_DIR"):
        return Path(app_ctx.env["EXTO_STATE_DIR"])
    import platformdirs

    return Path(platformdirs.user_state_dir("exto", appauthor=False))


def _confirm(app_ctx: AppContext, records: int, yes: bool) -> None:
    if yes or records <= CONFIRM_ABOVE or not app_ctx.can_prompt:
        return
    if not typer.confirm(f"Send {records} records?", default=False, err=True):
        from exto_cli.errors import ExtoError

        raise ExtoError("not confirmed; nothing was sent")


_SIGNALS: dict[str, int] = {}


def _load(
    app_ctx: AppContext, opts: UpdateOptions, source: Any, plan: Any, state_dir: Path, rate: float
) -> Any:
    """The load, with SIGINT/SIGTERM asking it to stop after the batches in flight."""
    from exto_cli import loader
    from exto_cli.errors import ExitCode
    from exto_cli.progress import batch_progress

    printer = app_ctx.printer
    stop = {"asked": False}

    def ask_stop(signum: int, frame: object) -> None:
        if stop["asked"] and signum == signal.SIGINT:
            # A second Ctrl-C: stop at once, without waiting for requests in flight. Journal
            # lines are written whole, so it still parses; batches left at `sending` are
            # treated as unknown by --resume.
            printer.error("stopped at once; batches in flight are recorded as sending only")
            sys.stderr.flush()
            os._exit(int(ExitCode.SIGINT))
        stop["asked"] = True
        _SIGNALS["last"] = signum
        printer.warn(
            "stopping: no new batches; waiting for the ones in flight (Ctrl-C again to quit now)"
        )

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    in_main = _in_main_thread()
    if in_main:
        for s in previous:
            signal.signal(s, ask_stop)
    progress = batch_progress(printer, sys.stderr.isatty(), len(plan.batches), rate)
    results_note = opts.resume or opts.results
    try:
        summary, fatal = loader.run_load(
            app_ctx.session,
            opts,
            source,
            plan,
            state_dir,
            should_stop=lambda: stop["asked"],
            on_outcome=progress.advance,
        )
    finally:
        progress.close()
        if in_main:
            for s, handler in previous.items():
                signal.signal(s, handler)
    if results_note is None:
        printer.note(f"results journal: {summary.results}")
    return summary, fatal


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _report(app_ctx: AppContext, summary: Any, output: str | None) -> None:
    from exto_cli.output import make_console, to_json, write_records

    if output == "json":
        print(to_json(summary.row(), indent=2))
        return
    if app_ctx.printer.quiet:
        return
    rows = [{"field": k, "value": v} for k, v in summary.row().items()]
    console = make_console(stderr=True, color=app_ctx.settings.color, file=sys.stderr)
    write_records("table", rows, ["field", "value"], header=False, console=console)
