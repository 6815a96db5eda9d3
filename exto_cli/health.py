"""Health probes: readiness, liveness and an authenticated check, once or until healthy."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from exto_cli.client import Clock, ExtoSession, parse_retry_after
from exto_cli.errors import ExtoError, NetworkError, NotReadyError, error_body_parts

PATHS = {
    "readiness": "/api/v1/health/readiness",
    "liveness": "/api/v1/health/liveness",
}
BUILD_INFO_PATH = "/api/v1/build/info"


@dataclass
class ProbeResult:
    check: str
    ok: bool
    status: int | None
    detail: str
    body: Any = None
    retry_after_s: float | None = field(default=None, repr=False)
    error: ExtoError | None = field(default=None, repr=False)

    def row(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "ok": self.ok,
            "status": self.status,
            "detail": self.detail,
            "body": self.body,
        }


def _describe(body: Any) -> str:
    if isinstance(body, dict) and "error" in body:
        summary, details = error_body_parts(body)
        return "; ".join([*(d for d in details), *([summary] if summary and not details else [])])
    if isinstance(body, dict):
        parts = [f"{k}={v}" for k, v in body.items() if k != "ok"]
        return ", ".join(parts) or ("ok" if body.get("ok") else "not ok")
    return "" if body is None else str(body)[:200]


def probe(session: ExtoSession, check: str, *, timeout_s: float | None = None) -> ProbeResult:
    """One attempt at one health endpoint; network trouble becomes a failed result."""
    try:
        response = session.call(
            "GET",
            PATHS[check],
            authenticated=False,
            max_attempts=1,
            check=False,
            timeout_s=timeout_s,
        )
    except NetworkError as exc:
        return ProbeResult(check, False, None, exc.message.split(": ", 1)[-1], error=exc)
    try:
        body = response.json()
    except ValueError:
        body = response.text[:200] or None
    ok = response.status_code == 200 and not (isinstance(body, dict) and body.get("ok") is False)
    retry_after = parse_retry_after(response.headers.get("Retry-After"), session.clock.wall())
    return ProbeResult(check, ok, response.status_code, _describe(body), body, retry_after)


def check_auth(session: ExtoSession) -> ProbeResult:
    """One authenticated request; 401/403 raise AuthError (exit 4)."""
    response = session.call("GET", BUILD_INFO_PATH)
    try:
        body = json.loads(session.redact(response.text)) if response.content else None
    except ValueError:
        body = None
    detail = _describe(body) if isinstance(body, dict) else "authenticated"
    return ProbeResult("auth", True, response.status_code, detail, body)


def check_once(session: ExtoSession, checks: Sequence[str]) -> list[ProbeResult]:
    results = [probe(session, c) for c in checks]
    if all(r.status is None for r in results):
        first = results[0].error
        hint = first.hint if first is not None and "TLS" in first.message else None
        raise NetworkError(
            f"{session.config.base_url}: {results[0].detail}",
            hint=hint or "is the server up? exto health --wait polls until it is",
        )
    return results


def wait_until_healthy(
    session: ExtoSession,
    checks: Sequence[str],
    *,
    timeout_s: float,
    interval_s: float,
    success_threshold: int,
    clock: Clock,
    on_result: Callable[[list[ProbeResult]], None] | None = None,
) -> list[ProbeResult]:
    """Poll until ``success_threshold`` consecutive rounds are healthy; NotReadyError on timeout."""
    deadline = clock.monotonic() + timeout_s
    streak = 0
    last: list[ProbeResult] = []
    while True:
        remaining = deadline - clock.monotonic()
        last = [
            probe(session, c, timeout_s=max(0.1, min(remaining, session.config.timeout_s)))
            for c in checks
        ]
        if on_result is not None:
            on_result(last)
        streak = streak + 1 if all(r.ok for r in last) else 0
        if streak >= success_threshold:
            return last
        wait = max([interval_s, *(r.retry_after_s or 0.0 for r in last)])
        if clock.monotonic() + wait > deadline:
            raise NotReadyError(
                f"not healthy after {timeout_s:g} s; last seen: " + summary(last),
                hint="raise --timeout, or check the server's own logs",
            )
        clock.sleep(wait)


def summary(results: Sequence[ProbeResult]) -> str:
    parts = []
    for r in results:
        status = str(r.status) if r.status is not None else "no answer"
        parts.append(f"{r.check} {status}" + (f" ({r.detail})" if r.detail else ""))
    return "; ".join(parts)


def require_ok(results: Sequence[ProbeResult]) -> None:
    bad = [r for r in results if not r.ok]
    if bad:
        raise NotReadyError(
            f"not healthy: {summary(bad)}", hint="exto health --wait polls until it is"
        )
