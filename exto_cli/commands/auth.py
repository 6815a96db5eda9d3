"""`exto auth`: store, inspect and remove the personal access token of a profile."""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from exto_cli.config import Settings
    from exto_cli.context import AppContext

app = typer.Typer(
    name="auth", help="Log in, check the token and its expiry, log out.", no_args_is_help=True
)

ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", "-p", help="Profile to act on (default: the global --profile)."),
]


def _app(ctx: typer.Context) -> AppContext:
    return ctx.find_root().obj  # type: ignore[no-any-return]


def _settings(
    app_ctx: AppContext,
    profile: str | None,
    base_url: str | None = None,
    project: str | None = None,
) -> Settings:
    from exto_cli.config import resolve

    options = replace(
        app_ctx.options,
        profile=profile or app_ctx.options.profile,
        base_url=base_url or app_ctx.options.base_url,
        project_id=project or app_ctx.options.project_id,
    )
    return resolve(options, app_ctx.env)


@app.command("login")
def login(
    ctx: typer.Context,
    profile: ProfileOption = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="API root to store in the profile.")
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", help="Project short id to store in the profile.")
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="YYYY-MM-DD the key expires, as chosen when it was made (default: today + 180 days).",
        ),
    ] = None,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the token from standard input.")
    ] = False,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Store without checking the token against the API.")
    ] = False,
    insecure_storage: Annotated[
        bool,
        typer.Option("--insecure-storage", help="Store in a 0600 file instead of the OS keyring."),
    ] = False,
) -> None:
    """Store a personal access token for a profile, in the OS keyring.

    The token is read from a hidden prompt, or from stdin with --token-stdin; never from an
    option. It is checked with one request (GET /api/v1/build/info) unless --no-verify.

    Example:  printf %s "$TOKEN" | exto auth login --profile prod --base-url https://acme.exto360.com/data --token-stdin
    """
    from exto_cli import auth as core
    from exto_cli.config import parse_date
    from exto_cli.context import build_session
    from exto_cli.credentials import Keyring, keyring_timeout_s, validate_token
    from exto_cli.errors import UsageError

    app_ctx = _app(ctx)
    settings = _settings(app_ctx, profile, base_url, project)
    if settings.auth_mode == "sandbox":
        raise UsageError("the sandbox profile needs no login: it mints its own token")
    expiry_date = parse_date(expires, "--expires") if expires else None
    token = validate_token(_read_token(app_ctx, token_stdin))

    def verify(candidate: str) -> None:
        session = build_session(app_ctx, settings, token=candidate)
        try:
            session.call("GET", core.BUILD_INFO_PATH)
        finally:
            session.close()

    result = core.login(
        settings,
        token,
        expires=expiry_date,
        verify=None if no_verify else verify,
        insecure_storage=insecure_storage,
        keyring=Keyring(keyring_timeout_s(app_ctx.env)),
        today=dt.date.today(),
    )
    for warning in result.warnings:
        app_ctx.printer.warn(warning)
    if insecure_storage:
        app_ctx.printer.warn("the token is stored in plaintext on disk; the OS keyring is safer")
    checked = "verified and stored" if result.verified else "stored (not verified)"
    app_ctx.printer.note(
        f"token for profile {settings.profile} {checked} in the {result.stored_in}; "
        f"expires {result.expiry.date} ({result.expiry.basis})"
    )


def _read_token(app_ctx: AppContext, token_stdin: bool) -> str:
    from exto_cli.errors import UsageError

    if token_stdin:
        return sys.stdin.read()
    if not app_ctx.can_prompt:
        raise UsageError(
            "no terminal to prompt for the token on",
            hint='pipe it in: printf %s "$TOKEN" | exto auth login --token-stdin',
        )
    import getpass

    return getpass.getpass("Paste the token (input hidden): ", stream=sys.stderr)


@app.command("status")
def status(
    ctx: typer.Context,
    profile: ProfileOption = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="table or json.")] = None,
    min_valid: Annotated[
        str | None,
        typer.Option(
            "--min-valid",
            help="Exit 4 when less than this is left, e.g. 14d: a CI gate that fails weeks early.",
        ),
    ] = None,
) -> None:
    """Show the profile's token: where it comes from, its last four characters, its expiry.

    Example, a weekly CI job:  exto auth status --min-valid 21d
    """
    from exto_cli import auth as core
    from exto_cli.config import parse_duration
    from exto_cli.credentials import Keyring, keyring_timeout_s
    from exto_cli.errors import AuthError, UsageError
    from exto_cli.output import make_console, resolve_format, to_json, write_records

    app_ctx = _app(ctx)
    fmt = resolve_format(output, app_ctx.env, app_ctx.stdout_is_tty)
    if fmt not in ("table", "json"):
        raise UsageError(f"-o {fmt}: auth status shows table or json")
    needed_s = parse_duration(min_valid, "--min-valid") if min_valid else None
    settings = _settings(app_ctx, profile)
    info = core.status(
        settings, app_ctx.env, Keyring(keyring_timeout_s(app_ctx.env)), dt.date.today()
    )
    if fmt == "json":
        print(to_json(info, indent=2))
    else:
        rows = [{"field": k, "value": v} for k, v in info.items() if k != "warnings"]
        write_records(
            "table",
            rows,
            ["field", "value"],
            header=False,
            console=make_console(stderr=False, color=settings.color),
        )
        for warning in info["warnings"]:
            app_ctx.printer.warn(warning)
    if needed_s is not None:
        if info["days_left"] is None:
            raise AuthError(
                "cannot tell how long the token stays valid",
                hint="record its expiry: exto auth login --expires YYYY-MM-DD, or EXTO_TOKEN_EXPIRES in CI",
            )
        if info["days_left"] * 86400 < needed_s:
            raise AuthError(
                f"the token has {info['days_left']} days left, less than --min-valid {min_valid}",
                hint=f"make a new key in Exto and run: exto auth login --profile {settings.profile}",
            )


@app.command("logout")
def logout(ctx: typer.Context, profile: ProfileOption = None) -> None:
    """Remove the profile's token from the keyring and the token file."""
    from exto_cli import auth as core
    from exto_cli.credentials import Keyring, keyring_timeout_s

    app_ctx = _app(ctx)
    settings = _settings(app_ctx, profile)
    removed = core.logout(settings, Keyring(keyring_timeout_s(app_ctx.env)))
    where = ", ".join(removed) if removed else "nowhere (no token was stored)"
    app_ctx.printer.note(f"removed the token of profile {settings.profile} from {where}")
    if app_ctx.env.get("EXTO_TOKEN"):
        app_ctx.printer.warn("EXTO_TOKEN is still set in this environment")


@app.command("token")
def token(ctx: typer.Context, profile: ProfileOption = None) -> None:
    """Print the token this profile uses, for piping into other tools.

    Example:  curl -H "Authorization: Bearer $(exto auth token)" ...
    """
    from exto_cli.credentials import require_token

    app_ctx = _app(ctx)
    found = require_token(_settings(app_ctx, profile), app_ctx.env)
    if app_ctx.stdout_is_tty:
        app_ctx.printer.warn("printing a secret to the terminal; pipe it instead")
    print(found.token)
