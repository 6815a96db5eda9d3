"""The AppContext on ``ctx.obj``: settings, the stderr printer and the lazily built session."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from exto_cli.config import Settings
from exto_cli.output import Printer

if TYPE_CHECKING:
    from exto_cli.client import Clock, ExtoSession


@dataclass
class AppContext:
    settings: Settings
    printer: Printer
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


def build_session(app: AppContext) -> ExtoSession:
    from exto_cli.client import ExtoSession, RetryPolicy, SessionConfig
    from exto_cli.credentials import token_provider

    s = app.settings
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
    session = ExtoSession(
        config, token_provider(s, app.env), clock=app.clock, log=log, debug=s.debug
    )
    if s.base_url.startswith("sandbox://"):
        from exto_cli.sandbox.adapter import mount_sandbox

        mount_sandbox(session, s, app.env)
    return session
