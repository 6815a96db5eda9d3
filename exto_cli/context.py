"""The AppContext on ``ctx.obj``: settings, the stderr printer and the lazily built session."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from exto_cli.config import GlobalOptions, Settings
from exto_cli.output import Printer

if TYPE_CHECKING:
    from exto_cli.client import Clock, ExtoSession


@dataclass
class AppContext:
    settings: Settings
    printer: Printer
    options: GlobalOptions = field(default_factory=GlobalOptions)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    clock: Clock | None = None
    _session: ExtoSession | None = None

    @property
    def session(self) -> ExtoSession:
        """The one session of this run, built on first use (so --help never builds it)."""
        if self._session is None:
            self._session = build_session(self)
        return self._session

    @property
    def stdout_is_tty(self) -> bool:
        return sys.stdout.isatty()

    @property
    def stdin_is_tty(self) -> bool:
        return sys.stdin.isatty()

    @property
    def can_prompt(self) -> bool:
        return self.stdin_is_tty and not self.settings.no_input

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def build_session(
    app: AppContext, settings: Settings | None = None, token: str | None = None
) -> ExtoSession:
    """A session for ``settings`` (default: the run's), with ``token`` instead of a lookup."""
    from exto_cli.client import ExtoSession, RetryPolicy, SessionConfig

    s = settings or app.settings
    config = SessionConfig(
        base_url=s.base_url,
        profile=s.profile,
        timeout_s=s.timeout_s,
        rate_per_second=s.rate_per_second,
        headers=s.headers,
        project_id=s.project_id,
        ca_bundle=s.ca_bundle,
        auth_mode=s.auth_mode,
        retry=RetryPolicy(s.max_attempts, s.max_wait_s, s.max_retry_time_s),
        state_dir=s.cache_dir,
    )
    log = app.printer.log if s.verbose else None
    adapter = None
    if s.base_url.startswith("sandbox://"):
        from exto_cli.sandbox.adapter import sandbox_adapter

        adapter = sandbox_adapter(s, app.env)
    # The in-process sandbox mints the profile's token with the app it already opened.
    mint = adapter.app.mint_token if adapter is not None else None
    provider = (lambda: token) if token is not None else token_provider(app, s, mint)
    session = ExtoSession(config, provider, clock=app.clock, log=log, debug=s.debug)
    if adapter is not None:
        session.mount("sandbox://", adapter)
    return session


def token_provider(
    app: AppContext, settings: Settings, mint: Callable[[], str] | None = None
) -> Callable[[], str]:
    """Look the token up on first use, and warn once when it is about to expire."""

    def provide() -> str:
        import datetime as dt

        from exto_cli.auth import expiry_warning, token_expiry
        from exto_cli.credentials import require_token

        found = require_token(settings, app.env, mint=mint)
        expiry = token_expiry(found, settings, app.env)
        warning = expiry_warning(expiry, dt.date.today(), settings.profile)
        if warning:
            app.printer.warn(warning)
        return found.token

    return provide
