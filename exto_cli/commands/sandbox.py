"""`exto sandbox`: a local Exto Data API for trying exto and testing scripts offline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="sandbox",
    help="Run a local Exto Data API: try exto with no account, test scripts offline.",
    no_args_is_help=True,
)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="SQLite file of the sandbox (default: the one behind --sandbox)."),
]


def _db_path(ctx: typer.Context, db: Path | None) -> Path:
    from exto_cli.sandbox.adapter import sandbox_path

    return db if db is not None else sandbox_path("demo", ctx.find_root().obj.env)


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on; anything but loopback is asked for explicitly and warned about.",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="TCP port; 0 picks a free one.")
    ] = 8765,
    db: DbOption = None,
    memory: Annotated[
        bool, typer.Option("--memory", help="Keep data only while the server runs.")
    ] = False,
    seed: Annotated[
        str, typer.Option("--seed", help="Data for a new database: demo or empty.")
    ] = "demo",
    schema: Annotated[
        Path | None,
        typer.Option(
            "--schema",
            help="TOML or JSON file declaring masters, modules, users, groups, projects.",
        ),
    ] = None,
    records: Annotated[
        list[str] | None,
        typer.Option(
            "--records",
            help="MASTER=N: add N generated rows (creating MASTER with a unique 'code'); repeatable.",
        ),
    ] = None,
    latency: Annotated[
        float, typer.Option("--latency", min=0, help="Seconds added to every answer.")
    ] = 0.0,
    rate: Annotated[
        int,
        typer.Option("--rate", min=0, help="Requests per second per token before 429; 0 disables."),
    ] = 3,
    tls: Annotated[
        tuple[Path, Path] | None,
        typer.Option("--tls", help="CERT KEY: serve HTTPS with this PEM certificate and key."),
    ] = None,
    retry_after: Annotated[
        bool,
        typer.Option(
            "--retry-after", help="Send Retry-After with 429 (the real API documents none)."
        ),
    ] = False,
    fail_every: Annotated[
        int, typer.Option("--fail-every", min=0, help="Every Nth request answers 503.")
    ] = 0,
    drop_after_commit: Annotated[
        bool,
        typer.Option(
            "--drop-after-commit",
            help="Apply a write, then close the connection without answering (the first time each distinct body is sent).",
        ),
    ] = False,
) -> None:
    """Serve the sandbox over HTTP(S) until Ctrl-C.

    Prints the base URL and a fresh token on stdout, then one line per request on stderr.

    Example:  exto sandbox serve --port 8765 --latency 0.2
    """
    from exto_cli import sandbox_cli

    app_ctx = ctx.find_root().obj
    options = sandbox_cli.ServeOptions(
        host=host,
        port=port,
        db=None if memory else _db_path(ctx, db),
        seed=seed,
        schema=schema,
        records=list(records or ()),
        latency_s=latency,
        rate=rate,
        tls=tls,
        retry_after=retry_after,
        fail_every=fail_every,
        drop_after_commit=drop_after_commit,
    )
    sandbox_cli.serve(options, app_ctx.printer, stdout=sys.stdout)


@app.command("token")
def token(
    ctx: typer.Context,
    expires_in: Annotated[
        str, typer.Option("--expires-in", help="Lifetime: e.g. 180d, 12h, 30m, 45s.")
    ] = "180d",
    db: DbOption = None,
) -> None:
    """Mint a token for the sandbox and print it on stdout.

    Example:  export EXTO_TOKEN=$(exto sandbox token --expires-in 1h)
    """
    from exto_cli import sandbox_cli
    from exto_cli.config import parse_duration

    lifetime_s = parse_duration(expires_in, "--expires-in")
    print(sandbox_cli.mint(_db_path(ctx, db), lifetime_s))


@app.command("rotate-key")
def rotate_key(ctx: typer.Context, db: DbOption = None) -> None:
    """Replace the sandbox's signing key: every token minted before gets 401."""
    from exto_cli import sandbox_cli

    sandbox_cli.rotate(_db_path(ctx, db))
    ctx.find_root().obj.printer.note("signing key rotated: earlier tokens are now rejected (401)")


@app.command("reset")
def reset(
    ctx: typer.Context,
    db: DbOption = None,
    seed: Annotated[str, typer.Option("--seed", help="demo or empty.")] = "demo",
) -> None:
    """Put the sandbox's data back to the seed (tokens stay valid)."""
    from exto_cli import sandbox_cli

    path = _db_path(ctx, db)
    sandbox_cli.reset(path, seed)
    ctx.find_root().obj.printer.note(f"sandbox {path} reset to the {seed} seed")
