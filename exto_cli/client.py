"""The shared session: base URL, auth for one origin, pacing, retries, logging.

One ``ExtoSession`` per run, built lazily by the AppContext. Rules (DESIGN.md "The shared
session"): HTTPS except loopback; token only to the configured origin; every attempt passes
the cross-process limiter; retries in one visible loop (urllib3's ``Retry`` would bypass it).
"""

from __future__ import annotations

import email.utils
import ipaddress
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.auth import AuthBase
from requests.models import PreparedRequest

from exto_cli import __version__
from exto_cli.errors import (
    ExtoError,
    NetworkError,
    UnknownOutcomeError,
    UsageError,
    error_body_parts,
    error_class_for_status,
)
from exto_cli.ratelimit import RateLimiter, state_file_name

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
REDACTED = "<redacted>"
_SECRET_QUERY_WORDS = ("key", "token", "secret", "password", "signature")

TokenProvider = Callable[[], str]
LogSink = Callable[[str], None]


@dataclass
class Clock:
    """Time sources, injectable so tests of retries and pacing need no real waiting."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    max_wait_s: float = 60.0
    max_total_s: float = 300.0

    def backoff_s(self, attempt: int, rand: float) -> float:
        """Exponential backoff with full jitter for the wait after ``attempt`` (1-based)."""
        return min(self.max_wait_s, BACKOFF_BASE_S * 2.0 ** (attempt - 1)) * rand


@dataclass
class SessionConfig:
    base_url: str
    profile: str = "default"
    timeout_s: float = 30.0
    rate_per_second: float = 3.0
    headers: dict[str, str] = field(default_factory=dict)
    project_id: str | None = None
    ca_bundle: str | None = None
    auth_mode: str = "bearer"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    state_dir: Any = None  # pathlib.Path of the limiter state, None for in-process only


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> None:
    """Refuse, before anything is sent, a base URL that would carry the token in clear."""
    parts = urlsplit(url)
    if parts.scheme == "https" or parts.scheme == "sandbox":
        if not parts.hostname and parts.scheme == "https":
            raise UsageError(f"base URL {url!r} has no host")
        return
    if parts.scheme == "http":
        if parts.hostname and is_loopback(parts.hostname):
            return
        raise UsageError(
            f"base URL {redact_url(url)} uses plain http:// to a non-loopback host",
            hint="use https://; http:// is accepted only for 127.0.0.1, ::1 and localhost",
        )
    raise UsageError(
        f"base URL {redact_url(url)!r} is not an http(s) URL",
        hint="for example --base-url https://example.exto360.com/data",
    )


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, REDACTED if any(w in k.lower() for w in _SECRET_QUERY_WORDS) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="<>")))


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now_wall)


class OriginAuth(AuthBase):
    """Bearer token and extra headers, attached only to requests for the configured origin."""

    def __init__(
        self,
        base_origin: tuple[str, str, int | None],
        headers: Mapping[str, str],
        token: TokenProvider | None,
    ) -> None:
        self.base_origin = base_origin
        self.headers = dict(headers)
        self.token = token

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        if r.url is None or origin(r.url) != self.base_origin:
            return r
        r.headers.update(self.headers)
        if self.token is not None:
            r.headers["Authorization"] = f"Bearer {self.token()}"
        return r


@dataclass
class _Attempt:
    response: requests.Response | None = None
    error: requests.RequestException | None = None
    # "connect": never reached the server; "ambiguous": may have been processed.
    phase: str = ""


def _failure_phase(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect"
    if isinstance(exc, requests.exceptions.SSLError):
        return "fatal"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = repr(exc.args[0] if exc.args else exc)
        connect_markers = (
            "NewConnectionError",
            "NameResolutionError",
            "Connection refused",
            "Failed to establish",
            "ConnectionRefused",
        )
        if any(m in text for m in connect_markers):
            return "connect"
        return "ambiguous"
    if isinstance(exc, requests.exceptions.Timeout):
        return "ambiguous"
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader)):
        return "fatal"
    return "ambiguous"


class ExtoSession(requests.Session):
    """requests.Session that paces, retries and authenticates exactly as DESIGN.md says."""

    def __init__(
        self,
        config: SessionConfig,
        token: TokenProvider | None = None,
        *,
        clock: Clock | None = None,
        log: LogSink | None = None,
        debug: bool = False,
    ) -> None:
        super().__init__()
        check_base_url(config.base_url)
        self.config = config
        self.clock = clock or Clock()
        self.log = log
        self.debug = debug
        self.base_origin = origin(config.base_url)
        self._token_provider = token
        self._token: str | None = None
        self._limiters: dict[bool, RateLimiter] = {}
        self.headers["User-Agent"] = f"exto-cli/{__version__}"
        self.headers["Accept"] = "application/json"
        if config.project_id:
            self.headers["X-Project-Id"] = config.project_id
        if config.ca_bundle:
            self.verify = config.ca_bundle
        self.secret_headers = {"authorization", "cookie", "set-cookie", "proxy-authorization"}
        self.secret_headers |= {name.lower() for name in config.headers}

    # -- auth -------------------------------------------------------------------------
    def token(self) -> str:
        """The token, read on first use only (so commands that send nothing never read it)."""
        if self._token is None:
            if self._token_provider is None:
                raise ExtoError("this profile sends no token")
            self._token = self._token_provider()
        return self._token

    def _auth(self, authenticated: bool) -> OriginAuth:
        use_token = authenticated and self.config.auth_mode != "none"
        return OriginAuth(self.base_origin, self.config.headers, self.token if use_token else None)

    def rebuild_auth(self, prepared_request: PreparedRequest, response: requests.Response) -> None:
        # Redirects keep our headers only on the same origin and never consult ~/.netrc.
        if prepared_request.url and origin(prepared_request.url) != self.base_origin:
            for name in ["Authorization", *self.config.headers]:
                prepared_request.headers.pop(name, None)

    def limiter(self, authenticated: bool) -> RateLimiter:
        if authenticated not in self._limiters:
            identity = self.token() if authenticated and self.config.auth_mode != "none" else None
            path = None
            if self.config.state_dir is not None:
                path = self.config.state_dir / state_file_name(self.config.base_url, identity)
            self._limiters[authenticated] = RateLimiter(
                self.config.rate_per_second, path, clock=self.clock.wall, sleep=self.clock.sleep
            )
        return self._limiters[authenticated]

    # -- requests ---------------------------------------------------------------------
    def url_for(self, path: str) -> str:
        if path.startswith(("http://", "https://", "sandbox://")):
            return path
        return f"{self.config.base_url}/{path.lstrip('/')}"

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        idempotent: bool | None = None,
        max_attempts: int | None = None,
        timeout_s: float | None = None,
        check: bool = True,
    ) -> requests.Response:
        """Send one logical request with pacing and retries; raise ExtoError on failure."""
        method = method.upper()
        url = self.url_for(path)
        if params and url.startswith("sandbox://"):
            # requests leaves URLs of schemes other than http(s) alone, params included.
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(list(params.items()), doseq=True)}"
            params = None
        if idempotent is None:
            idempotent = method in SAFE_METHODS
        request_id = uuid.uuid4().hex
        send_headers = {"X-Request-ID": request_id, **(headers or {})}
        policy = self.config.retry
        attempts_allowed = max_attempts or policy.max_attempts
        started = self.clock.monotonic()
        attempt = 0
        limiter = self.limiter(authenticated)
        while True:
            attempt += 1
            limiter.acquire()
            outcome = self._send_once(
                method,
                url,
                params,
                json,
                send_headers,
                authenticated,
                attempt,
                request_id,
                timeout_s or self.config.timeout_s,
            )
            wait = self._retry_wait(method, idempotent, outcome, attempt)
            elapsed = self.clock.monotonic() - started
            can_retry = (
                wait is not None
                and attempt < attempts_allowed
                and wait <= policy.max_wait_s
                and elapsed + wait <= policy.max_total_s
            )
            if not can_retry:
                return self._finish(method, path, outcome, idempotent, request_id, attempt, check)
            assert wait is not None
            if outcome.response is not None and outcome.response.status_code == 429:
                limiter.penalize(wait)
            self._log(f"retrying {method} {path} in {wait:.2f}s (attempt {attempt + 1})")
            self.clock.sleep(wait)

    def _send_once(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str],
        authenticated: bool,
        attempt: int,
        request_id: str,
        timeout_s: float,
    ) -> _Attempt:
        t0 = self.clock.monotonic()
        try:
            response = self.request(
                method,
                url,
                params=params,
                json=json,
                headers=dict(headers),
                auth=self._auth(authenticated),
                timeout=(timeout_s, timeout_s),
                allow_redirects=method in SAFE_METHODS,
                # Explicit, so that REQUESTS_CA_BUNDLE in the environment cannot override --ca-bundle.
                verify=self.config.ca_bundle or None,
            )
        except requests.RequestException as exc:
            self._log_attempt(method, url, None, exc, t0, attempt, request_id)
            return _Attempt(error=exc, phase=_failure_phase(exc))
        self._log_attempt(method, url, response, None, t0, attempt, request_id)
        return _Attempt(response=response)

    def _retry_wait(
        self, method: str, idempotent: bool, outcome: _Attempt, attempt: int
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when this one is final."""
        backoff = self.config.retry.backoff_s(attempt, self.clock.random())
        if outcome.error is not None:
            if outcome.phase == "connect" or (outcome.phase == "ambiguous" and idempotent):
                return backoff
            return None
        response = outcome.response
        assert response is not None
        status = response.status_code
        if status not in RETRY_STATUSES:
            return None
        if status != 429 and not idempotent:
            return None
        if status == 500 and error_class_for_status(500, _details(response)) is not ExtoError:
            return None  # "<NAME> not Found." is an answer, not a hiccup
        after = parse_retry_after(response.headers.get("Retry-After"), self.clock.wall())
        return after if after is not None else backoff

    def _finish(
        self,
        method: str,
        path: str,
        outcome: _Attempt,
        idempotent: bool,
        request_id: str,
        attempts: int,
        check: bool,
    ) -> requests.Response:
        where = f"{method} {_path_only(path)}"
        if outcome.error is not None:
            raise self._network_error(where, outcome, idempotent, request_id, attempts)
        response = outcome.response
        assert response is not None
        if method not in SAFE_METHODS and response.is_redirect:
            raise ExtoError(
                f"{where}: the server answered {response.status_code} redirect to "
                f"{redact_url(response.headers.get('Location', '?'))}; writes never follow redirects",
                hint="check --base-url: it should be the final API root",
                request_id=request_id,
                status=response.status_code,
            )
        if check and not response.ok:
            raise self.error_from_response(where, response, request_id, attempts)
        return response

    def _network_error(
        self, where: str, outcome: _Attempt, idempotent: bool, request_id: str, attempts: int
    ) -> ExtoError:
        reason = _describe_exception(outcome.error)
        if outcome.phase == "ambiguous" and not idempotent:
            return UnknownOutcomeError(
                f"{where}: {reason}; the request may or may not have been applied, "
                "so it was not re-sent",
                hint="check the data before sending it again",
                request_id=request_id,
            )
        if isinstance(outcome.error, requests.exceptions.SSLError):
            return NetworkError(
                f"{where}: TLS error: {reason}",
                hint="pass --ca-bundle PATH if your network uses its own certificate authority",
                request_id=request_id,
            )
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return NetworkError(
            f"{where}: {reason}{tries}",
            hint="check --base-url and your network; raise --timeout for slow links",
            request_id=request_id,
        )

    def error_from_response(
        self, where: str, response: requests.Response, request_id: str, attempts: int = 1
    ) -> ExtoError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        summary, details = error_body_parts(body)
        if body is None and response.text.strip():
            details = [response.text.strip()[:500]]
        # A server may echo the credential back; nothing of it may reach the terminal.
        details = [self.redact(d) for d in details]
        summary = self.redact(summary) if summary else summary
        cls = error_class_for_status(status, details)
        message = f"{where}: {status} {response.reason or ''}".rstrip()
        if summary:
            message += f": {summary}"
        if status == 429 and attempts > 1:
            message += f" (still rate limited after {attempts} attempts)"
        return cls(
            message,
            hint=self._hint_for(status, cls),
            details=details,
            request_id=response.headers.get("X-Request-ID") or request_id,
            status=status,
        )

    def _hint_for(self, status: int, cls: type[ExtoError]) -> str | None:
        profile = self.config.profile
        if status == 401:
            return (
                "the token was rejected: expired, revoked, or invalidated by a server key "
                f"change; get a new one and run: exto auth login --profile {profile}"
            )
        if status == 403:
            scope = f"project {self.config.project_id}" if self.config.project_id else "this tenant"
            return (
                f"the token's user has no access to {scope}; ask a tenant admin, or check --project"
            )
        if status == 429:
            return "another client may share the token's budget; lower --rate or try again later"
        if cls.__name__ == "NotFoundError":
            return "check the name: exto get lists what exists"
        return None

    # -- logging ----------------------------------------------------------------------
    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(self.redact(line))

    def redact(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, REDACTED)
        for name, value in self.config.headers.items():
            if value and name.lower() in self.secret_headers:
                text = text.replace(value, REDACTED)
        return text

    def _log_attempt(
        self,
        method: str,
        url: str,
        response: requests.Response | None,
        error: requests.RequestException | None,
        t0: float,
        attempt: int,
        request_id: str,
    ) -> None:
        if self.log is None:
            return
        ms = (self.clock.monotonic() - t0) * 1000
        result = f"{response.status_code}" if response is not None else _describe_exception(error)
        self._log(
            f"{method} {redact_url(url)} -> {result} in {ms:.0f} ms "
            f"(attempt {attempt}, request id {request_id})"
        )
        if self.debug:
            sent = response.request if response is not None else None
            if sent is not None:
                for name, value in sent.headers.items():
                    shown = REDACTED if name.lower() in self.secret_headers else value
                    self._log(f"> {name}: {shown}")
                if sent.body:
                    body = (
                        sent.body
                        if isinstance(sent.body, str)
                        else sent.body.decode("utf-8", "replace")
                    )
                    self._log(f"> {body[:2000]}")
            if response is not None:
                for name, value in response.headers.items():
                    shown = REDACTED if name.lower() in self.secret_headers else value
                    self._log(f"< {name}: {shown}")
                if not response.headers.get("Content-Type", "").startswith("application/octet"):
                    self._log(f"< {response.text[:2000]}")


def _details(response: requests.Response) -> list[str]:
    try:
        return error_body_parts(response.json())[1]
    except ValueError:
        return []


def _path_only(path: str) -> str:
    return urlsplit(path).path if "://" in path else "/" + path.lstrip("/")


def _describe_exception(exc: BaseException | None) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        found = re.search(r"certificate verify failed: ([^(']+)", str(exc))
        return (
            f"certificate verify failed: {found.group(1).strip()}"
            if found
            else "TLS handshake failed"
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "timed out waiting for the answer"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if "refused" in text.lower():
            return "connection refused"
        if "resolution" in text.lower() or "name or service" in text.lower():
            return "could not resolve the host name"
        if "reset" in text.lower() or "aborted" in text.lower() or "RemoteDisconnected" in text:
            return "connection closed before an answer"
    return type(exc).__name__ + (f": {exc}" if exc else "")
