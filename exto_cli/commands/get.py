"""`exto get`: read records, users and groups; page through everything at the rate limit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from exto_cli.context import AppContext
    from exto_cli.listing import OutputSpec, Query

app = typer.Typer(
    name="get", help="Read master records, module records, users and groups.", no_args_is_help=True
)

WHERE_HELP = (
    "Condition, repeatable (ANDed): field OP value with = != > >= < <= ~ (contains) "
    "!~ ^= (starts) $= (ends), field in (a, b), field is [not] null; and, or, ( ). "
    "Values: 12, 2025-01-31, true, word, 'quoted text'."
)
Output = Annotated[
    str | None,
    typer.Option("--output", "-o", help="table, json, jsonl, csv or tsv. (env: EXTO_OUTPUT)"),
]
Fields = Annotated[
    str | None,
    typer.Option(
        "--fields", help="Columns, comma-separated: refId, createdAt, ... or custom field names."
    ),
]
NoHeader = Annotated[
    bool, typer.Option("--no-header", help="csv/tsv/table without the header row.")
]
Out = Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")]
Page = Annotated[
    int, typer.Option("--page", min=1, help="Page to read (or to start from with --all).")
]
PageSize = Annotated[
    int, typer.Option("--page-size", min=1, max=1000, help="Rows per request, 1-1000.")
]
All = Annotated[
    bool,
    typer.Option("--all", help="Read every page, several requests in flight at the rate limit."),
]
Limit = Annotated[
    int | None,
    typer.Option("--limit", min=1, help="Stop after this many rows (reads pages as needed)."),
]
ProgressMode = Annotated[
    str,
    typer.Option(
        "--progress",
        help="auto (a bar when stderr is a terminal), plain (a line per 10 pages), bar or none.",
    ),
]


def _app(ctx: typer.Context) -> AppContext:
    return ctx.find_root().obj  # type: ignore[no-any-return]


def _fields(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        from exto_cli.errors import UsageError

        raise UsageError("--fields: give at least one field name")
    return names


def _listing(
    ctx: typer.Context,
    path: str,
    *,
    where: list[str] | None,
    raw_filter: str | None,
    status: str | None,
    sort: str | None,
    tz: str | None,
    page: int,
    page_size: int,
    fetch_all: bool,
    limit: int | None,
    output: str | None,
    fields: str | None,
    no_header: bool,
    out: Path | None,
    checkpoint: Path | None,
    explain: bool,
    progress: str,
) -> None:
    from exto_cli import listing

    app_ctx = _app(ctx)
    query = listing.build_query(
        path,
        where=where or (),
        raw_filter=raw_filter,
        status=status,
        sort=sort,
        tz=tz,
        profile_tz=app_ctx.settings.timezone,
        env=app_ctx.env,
        page=page,
        page_size=page_size,
        fetch_all=fetch_all,
        limit=limit,
    )
    if explain:
        print(listing.explain(query, app_ctx.settings.base_url))
        return
    spec = _spec(app_ctx, output, fields, no_header, out)
    _run(app_ctx, query, spec, out, checkpoint, progress)


def _spec(
    app_ctx: AppContext,
    output: str | None,
    fields: str | None,
    no_header: bool,
    out: Path | None,
    **extra: Any,
) -> OutputSpec:
    from exto_cli.listing import OutputSpec
    from exto_cli.output import resolve_format

    to_terminal = app_ctx.stdout_is_tty and out is None
    fmt = resolve_format(output, app_ctx.env, to_terminal)
    return OutputSpec(fmt, _fields(fields), not no_header, **extra)


def _run(
    app_ctx: AppContext,
    query: Query,
    spec: OutputSpec,
    out: Path | None,
    checkpoint_path: Path | None,
    progress_mode: str,
) -> None:
    from exto_cli import listing, progress
    from exto_cli.errors import UsageError
    from exto_cli.output import make_console
    from exto_cli.records import Checkpoint

    if progress_mode not in ("auto", "plain", "bar", "none"):
        raise UsageError(f"--progress: expected auto, plain, bar or none, got {progress_mode!r}")
    checkpoint = None
    if checkpoint_path is not None:
        if out is None or spec.fmt not in ("jsonl", "csv", "tsv"):
            raise UsageError(
                "--checkpoint needs --out FILE and -o jsonl, csv or tsv",
                hint="those formats can be appended to when the export resumes",
            )
        checkpoint = Checkpoint.open(checkpoint_path, query.identity(spec.fmt, spec.fields))
    printer = app_ctx.printer
    if checkpoint is not None and out is not None:
        stream = listing.open_resumable(out, checkpoint)
    elif out is not None:
        stream = open(out, "w", encoding="utf-8", newline="")  # noqa: SIM115
    else:
        stream = sys.stdout
    console = (
        make_console(stderr=False, color=app_ctx.settings.color) if spec.fmt == "table" else None
    )
    try:
        result = listing.run(
            app_ctx.session,
            query,
            spec,
            stream=stream,
            console=console,
            warn=printer.warn,
            progress=progress.choose(
                progress_mode, printer, sys.stderr.isatty(), app_ctx.settings.rate_per_second
            ),
            checkpoint=checkpoint,
        )
    finally:
        if stream is not sys.stdout:
            stream.close()
    _report(app_ctx, query, result, checkpoint_path)


def _report(app_ctx: AppContext, query: Query, result: Any, checkpoint_path: Path | None) -> None:
    printer = app_ctx.printer
    stats = result.stats
    if result.already_done:
        printer.note(
            f"{checkpoint_path} says this export already finished ({stats.rows} rows); "
            "delete it to run again"
        )
        return
    if result.resumed_from:
        printer.note(f"resumed after page {result.resumed_from}")
    if stats.more_rows:
        if query.limit is not None:
            printer.note(
                f"stopped at --limit {query.limit}; more rows exist"
                + (f" ({stats.last_total} in all)" if stats.last_total is not None else "")
            )
        else:
            total = f" of {stats.last_total}" if stats.last_total is not None else ""
            printer.note(
                f"showing page {query.page} ({stats.rows}{total} rows); more pages exist: "
                f"add --all, or --page {query.page + 1}"
            )


def _records_command(kind: str) -> Any:
    def command(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Its name, e.g. LOCATION or INSPECTION.")],
        where: Annotated[list[str] | None, typer.Option("--where", "-w", help=WHERE_HELP)] = None,
        raw_filter: Annotated[
            str | None,
            typer.Option(
                "--filter", help="Exto's own filter syntax, sent as is (ANDed with --where)."
            ),
        ] = None,
        status: Annotated[
            str | None, typer.Option("--status", help="Only records in this workflow status.")
        ] = None,
        sort: Annotated[
            str | None,
            typer.Option("--sort", help="Field to sort by; -FIELD for descending."),
        ] = None,
        tz: Annotated[
            str | None,
            typer.Option(
                "--tz",
                help="IANA time zone for date conditions (default: profile timezone, EXTO_TZ, the system's).",
            ),
        ] = None,
        page: Page = 1,
        page_size: PageSize = 1000,
        fetch_all: All = False,
        limit: Limit = None,
        fields: Fields = None,
        output: Output = None,
        no_header: NoHeader = False,
        out: Out = None,
        checkpoint: Annotated[
            Path | None,
            typer.Option(
                "--checkpoint",
                help="Record finished pages here; the same command resumes an interrupted export (needs --out, -o jsonl/csv/tsv).",
            ),
        ] = None,
        explain: Annotated[
            bool,
            typer.Option(
                "--explain", help="Print the compiled filter and the request URL; send nothing."
            ),
        ] = False,
        progress: ProgressMode = "auto",
    ) -> None:
        prefix = "master-record" if kind == "master" else "module-record"
        from urllib.parse import quote

        _listing(
            ctx,
            f"/api/v1/{prefix}/{quote(name, safe='')}",
            where=where,
            raw_filter=raw_filter,
            status=status,
            sort=sort,
            tz=tz,
            page=page,
            page_size=page_size,
            fetch_all=fetch_all,
            limit=limit,
            output=output,
            fields=fields,
            no_header=no_header,
            out=out,
            checkpoint=checkpoint,
            explain=explain,
            progress=progress,
        )

    return command


app.command(
    "master",
    help="List the records of a master, one page or --all of them.\n\n"
    'Example:  exto get master LOCATION --where "city = Pune and area_sqm > 5000" -o csv',
)(_records_command("master"))
app.command(
    "module",
    help="List the records of a custom module, one page or --all of them.\n\n"
    'Example:  exto get module INSPECTION --where "inspection_date >= 2025-06-01" --tz Asia/Kolkata --all -o jsonl',
)(_records_command("module"))


@app.command("users")
def users(
    ctx: typer.Context,
    page: Page = 1,
    page_size: PageSize = 1000,
    fetch_all: All = False,
    limit: Limit = None,
    fields: Fields = None,
    output: Output = None,
    no_header: NoHeader = False,
    out: Out = None,
    progress: ProgressMode = "auto",
) -> None:
    """List users with their groups and projects (GET /api/v1/user/user-access).

    Example:  exto --project Vx6-j2Z get users -o csv
    """
    from exto_cli import listing

    app_ctx = _app(ctx)
    query = listing.build_query(
        "/api/v1/user/user-access",
        env=app_ctx.env,
        page=page,
        page_size=page_size,
        fetch_all=fetch_all,
        limit=limit,
    )
    flat = (output or app_ctx.env.get("EXTO_OUTPUT") or "") not in ("json", "jsonl") or fields
    spec = _spec(
        app_ctx,
        output,
        fields,
        no_header,
        out,
        shape=listing.user_row if flat else None,
        default_columns=listing.USER_COLUMNS,
    )
    if spec.fmt in ("json", "jsonl") and not spec.fields:
        spec.shape = None
    _run(app_ctx, query, spec, out, None, progress)


@app.command("user")
def user(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="The user's name (an email address).")],
    output: Output = None,
) -> None:
    """Show one user with their groups and projects.

    Example:  exto get user johndoe@exto360.com -o json
    """
    from exto_cli.errors import NotFoundError
    from exto_cli.listing import user_row
    from exto_cli.output import make_console, resolve_format, to_json, write_records

    app_ctx = _app(ctx)
    fmt = resolve_format(output, app_ctx.env, app_ctx.stdout_is_tty)
    response = app_ctx.session.call(
        "GET", "/api/v1/user/user-access/by-user", params={"username": username}
    )
    entry = response.json()
    if not isinstance(entry, dict) or not entry:
        raise NotFoundError(f"user {username} not found")
    if fmt in ("json", "jsonl"):
        print(to_json(entry, indent=2 if fmt == "json" else None))
        return
    row = user_row(entry)
    if fmt == "table":
        rows = [{"field": k, "value": v} for k, v in row.items()]
        console = make_console(stderr=False, color=app_ctx.settings.color)
        write_records("table", rows, ["field", "value"], header=False, console=console)
        return
    write_records(fmt, [row], list(row))


@app.command("groups")
def groups(
    ctx: typer.Context,
    project_only: Annotated[
        bool, typer.Option("--project-only", help="Only project-level groups.")
    ] = False,
    page: Page = 1,
    page_size: PageSize = 1000,
    fetch_all: All = False,
    limit: Limit = None,
    fields: Fields = None,
    output: Output = None,
    no_header: NoHeader = False,
    out: Out = None,
    progress: ProgressMode = "auto",
) -> None:
    """List tenant-level and project-level groups (GET /api/v1/user/groups).

    Example:  exto get groups --project-only -o table
    """
    from exto_cli import listing

    app_ctx = _app(ctx)
    query = listing.build_query(
        "/api/v1/user/groups",
        env=app_ctx.env,
        page=page,
        page_size=page_size,
        fetch_all=fetch_all,
        limit=limit,
    )
    if project_only:
        # The vendor file spells it onlyProjectsGroups, the GitBook onlyProjectGroups: send both.
        query.params.update({"onlyProjectsGroups": "true", "onlyProjectGroups": "true"})
    _run(app_ctx, query, _spec(app_ctx, output, fields, no_header, out), out, None, progress)


@app.command("raw")
def raw(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Path under the base URL, e.g. /api/v1/workspace.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Query parameter K=V; repeatable.")
    ] = None,
    fetch_all: Annotated[
        bool, typer.Option("--all", help="Page through a {rows, totalPages} answer.")
    ] = False,
    page_size: PageSize = 1000,
    output: Output = None,
    out: Out = None,
    progress: ProgressMode = "auto",
) -> None:
    """Send any GET under the base URL, with auth, pacing, retries and paging.

    The escape hatch for endpoints without a command. Without --all the answer is printed as
    it came (JSON); with --all its rows are streamed in the chosen format.

    Example:  exto get raw /api/v2/workflow --param moduleName=INSPECTION --all -o jsonl
    """
    from exto_cli import listing
    from exto_cli.errors import UsageError
    from exto_cli.output import to_json

    app_ctx = _app(ctx)
    if not path.startswith("/") or "://" in path or ".." in path.split("/"):
        raise UsageError(f"{path!r}: give a path under the base URL, starting with /")
    params: dict[str, str] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param: expected K=V, got {item!r}")
        params[key] = value
    if fetch_all:
        query = listing.Query(path, params, 1, page_size, True, None)
        _run(app_ctx, query, _spec(app_ctx, output, None, False, out), out, None, progress)
        return
    response = app_ctx.session.call("GET", path, params=params)
    try:
        text = to_json(response.json(), indent=2)
    except ValueError:
        text = response.text
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
