"""The sandbox WSGI application: Exto's Data API routes, auth, rate limit and faults."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from exto_cli import __version__
from exto_cli.sandbox import tokens
from exto_cli.sandbox.filters import SYSTEM_COLUMNS, FilterError, compile_filter, field_expression
from exto_cli.sandbox.store import Collection, Store, now_iso, record_json

MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_WRITE_RECORDS = 1000
SANDBOX_USER = "sandbox@exto.local"
DROP_MARKER = "exto.sandbox.drop"


@dataclass
class Faults:
    latency_s: float = 0.0
    rate_per_second: int = 3  # per token, fixed one-second windows; 0 disables
    retry_after: bool = False  # the real API documents no Retry-After
    fail_every: int = 0  # every Nth request answers 503
    drop_after_commit: bool = False  # apply a write, then close without answering


class ApiError(Exception):
    def __init__(
        self, status: int, summary: str, *details: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(summary)
        self.status = status
        self.summary = summary
        self.details = list(details)
        self.headers = dict(headers or {})


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SandboxApp:
    """One Exto tenant on top of a Store. Call it as a WSGI application."""

    def __init__(
        self, store: Store, faults: Faults | None = None, log: Callable[[str], None] | None = None
    ) -> None:
        self.store = store
        self.faults = faults or Faults()
        self.log = log
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}
        self._counter = 0
        self._dropped: set[str] = set()
        v1 = "/data/api/v1"
        self.url_map = Map(
            [
                Rule(f"{v1}/health/liveness", endpoint="liveness", methods=["GET"]),
                Rule(f"{v1}/health/readiness", endpoint="readiness", methods=["GET"]),
                Rule(f"{v1}/build/info", endpoint="build_info", methods=["GET"]),
                Rule(
                    f"{v1}/master-record/<name>",
                    endpoint="records",
                    defaults={"kind": "master"},
                    methods=["GET", "POST", "PATCH", "DELETE"],
                ),
                Rule(
                    f"{v1}/module-record/<name>",
                    endpoint="records",
                    defaults={"kind": "module"},
                    methods=["GET", "POST", "PATCH", "DELETE"],
                ),
                Rule(f"{v1}/user/user-access", endpoint="users", methods=["GET"]),
                Rule(f"{v1}/user/user-access/by-user", endpoint="user", methods=["GET"]),
                Rule(f"{v1}/user/groups", endpoint="groups", methods=["GET"]),
            ],
            strict_slashes=False,
        )

    @property
    def signing_key(self) -> str:
        key = self.store.meta("signing_key")
        if key is None:
            key = tokens.new_key()
            self.store.set_meta("signing_key", key)
        return key

    def mint_token(self, lifetime_s: float = tokens.DEFAULT_LIFETIME_S) -> str:
        return tokens.mint(
            self.signing_key, subject=SANDBOX_USER, tenant="cwWdTZK", lifetime_s=lifetime_s
        )

    def rotate_key(self) -> None:
        self.store.set_meta("signing_key", tokens.new_key())

    # -- WSGI -------------------------------------------------------------------------
    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        started = time.monotonic()
        request = Request(environ)
        response = self.dispatch(request)
        if self.faults.latency_s:
            time.sleep(self.faults.latency_s)
        if self.log is not None:
            ms = (time.monotonic() - started) * 1000
            self.log(
                f'{request.remote_addr or "-"} "{request.method} {request.full_path.rstrip("?")}" '
                f"{response.status_code} {ms:.0f}ms"
            )
        if environ.get(DROP_MARKER):
            _drop_connection(environ)
            return []
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        try:
            self._fail_sometimes()
            adapter = self.url_map.bind_to_environ(request.environ)
            endpoint, args = adapter.match()
            if endpoint not in ("liveness", "readiness"):
                self._authenticate(request)
            self._rate_limit(request)
            body, status = getattr(self, f"on_{endpoint}")(request, **args)
            if self._drops(request, status):
                request.environ[DROP_MARKER] = True
            return _json(body, status)
        except ApiError as exc:
            return error_response(exc, path)
        except NotFound:
            return error_response(
                ApiError(404, "Not Found", f"Cannot {request.method} {path}"), path
            )
        except MethodNotAllowed:
            return error_response(
                ApiError(405, "Method Not Allowed", f"{request.method} is not allowed on {path}"),
                path,
            )
        except HTTPException as exc:
            return error_response(ApiError(exc.code or 500, exc.name, exc.description or ""), path)

    def _drops(self, request: Request, status: int) -> bool:
        """--drop-after-commit: the first answer to each distinct write body is lost.

        The write is applied; a client that re-sends the same body gets an answer, so both an
        idempotent retry and a client that (rightly) does not retry can be tested.
        """
        if not self.faults.drop_after_commit or request.method == "GET" or status >= 300:
            return False
        digest = hashlib.sha256(request.get_data(cache=True)).hexdigest()
        with self._lock:
            if digest in self._dropped:
                return False
            self._dropped.add(digest)
        return True

    def _fail_sometimes(self) -> None:
        if not self.faults.fail_every:
            return
        with self._lock:
            self._counter += 1
            failing = self._counter % self.faults.fail_every == 0
        if failing:
            raise ApiError(503, "Service Unavailable", "injected fault (--fail-every)")

    def _authenticate(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            if scheme != "Bearer" or not token:
                raise tokens.InvalidTokenError("missing")
            return tokens.verify(self.signing_key, token.strip())
        except tokens.InvalidTokenError:
            raise ApiError(401, "Unauthorized", "Invalid authentication token.") from None

    def _rate_limit(self, request: Request) -> None:
        limit = self.faults.rate_per_second
        if not limit:
            return
        key = request.headers.get("Authorization") or f"anon:{request.remote_addr}"
        now = time.time()
        window = int(now)
        with self._lock:
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                start, count = window, 0
            count += 1
            self._windows[key] = (start, count)
        if count > limit:
            headers = {"Retry-After": "1"} if self.faults.retry_after else {}
            raise ApiError(
                429,
                "Too Many Requests",
                f"Rate limit of {limit} requests per second exceeded",
                headers=headers,
            )

    # -- endpoints --------------------------------------------------------------------
    def on_liveness(self, request: Request) -> tuple[Any, int]:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        cpu = round(min(100.0, 100.0 * load / (os.cpu_count() or 1)), 1)
        return {"ok": True, "cpuPercent": cpu, "memPercent": _memory_percent()}, 200

    def on_readiness(self, request: Request) -> tuple[Any, int]:
        try:
            self.store.conn.execute("SELECT 1").fetchone()
        except Exception:
            raise ApiError(500, "Service Exception", "Database - disconnected") from None
        return {"ok": True}, 200

    def on_build_info(self, request: Request) -> tuple[Any, int]:
        return {
            "name": "exto-data-api",
            "version": "1.0.0",
            "branch": "sandbox",
            "commit": f"exto-cli-{__version__}",
            "date": now_iso(),
        }, 200

    def on_records(self, request: Request, kind: str, name: str) -> tuple[Any, int]:
        coll = self.store.collection(name.upper(), kind)
        if coll is None:
            raise ApiError(500, "Service Exception", f"{name.upper()} not Found.")
        project = self._project(request)
        if request.method == "GET":
            return self._list(request, coll, project), 200
        body = _json_body(request)
        if request.method == "POST":
            return self._upsert(request, coll, project, body), 201
        if request.method == "PATCH":
            return self._patch(request, coll, project, body), 200
        return self._delete(request, coll, project, body)

    def _project(self, request: Request) -> str | None:
        project = request.headers.get("X-Project-Id")
        if project and not self.store.project_exists(project):
            raise ApiError(500, "Service Exception", f"Project not found for id: {project}")
        return project or None

    def _list(self, request: Request, coll: Collection, project: str | None) -> dict[str, Any]:
        page, size = _paging(request, default_size=25)
        tz = request.args.get("localTimeZone") or None
        if tz is not None:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ApiError(400, "Bad Request", f"Invalid localTimeZone: {tz}") from None
        where, params = None, []
        raw_filter = request.args.get("filter")
        if raw_filter is not None:
            try:
                compiled = compile_filter(raw_filter, coll.fields, tz)
            except FilterError as exc:
                raise ApiError(400, "Bad Request", f"Invalid filter: {exc}") from None
            where, params = compiled.sql, compiled.params
        total, rows = self.store.query(
            coll,
            project=project,
            where=where,
            params=params,
            status=request.args.get("status") or None,
            order=_order(request.args.get("sort")),
            limit=size,
            offset=(page - 1) * size,
        )
        return _envelope([record_json(r) for r in rows], total, page, size)

    def _acting_user(self, request: Request) -> str:
        username = request.args.get("userName", "").strip()
        if not username:
            raise ApiError(400, "Bad Request", "Missing userName")
        entry = self.store.user(username)
        if entry is None or entry["user"].get("status") != 1:
            raise ApiError(400, "Bad Request", "User not found or active")
        return str(entry["user"]["userName"])

    def _upsert(self, request: Request, coll: Collection, project: str | None, body: Any) -> Any:
        user = self._acting_user(request) if coll.kind == "module" else SANDBOX_USER
        records = _record_list(body, allow_object=False)
        _validate(coll, records)
        result = self.store.upsert(coll, records, project=project, user=user)
        return {
            "insertedIds": result.inserted_ids,
            "insertedCount": len(result.inserted_ids),
            "updatedCount": result.updated,
        }

    def _patch(self, request: Request, coll: Collection, project: str | None, body: Any) -> Any:
        user = self._acting_user(request) if coll.kind == "module" else SANDBOX_USER
        records = _record_list(body, allow_object=coll.kind == "module")
        if coll.kind == "module" and any("_id" in r for r in records):
            raise ApiError(400, "Bad Request", "Updating '_id' is not allowed")
        _validate(coll, records)
        updated, _missing = self.store.patch(coll, records, project=project, user=user)
        return {"insertedIds": [], "insertedCount": 0, "updatedCount": updated}

    def _delete(
        self, request: Request, coll: Collection, project: str | None, body: Any
    ) -> tuple[Any, int]:
        user = self._acting_user(request)
        references = _record_list(body, allow_object=False)
        if any(not (r.get("refId") or r.get("recordNumber")) for r in references):
            raise ApiError(
                400,
                "Bad Request",
                'Request body must be a non-empty array of objects with "recordNumber"',
            )
        entry = self.store.user(user) or {}
        if coll.kind == "master" and entry.get("user", {}).get("applicationRole") == "LITE_USER":
            return {
                "success": False,
                "message": "User doesn't have permission to delete the record",
            }, 200
        deleted = self.store.delete(coll, references, project=project)
        if coll.kind == "module" and deleted == 0:
            raise ApiError(404, "Not Found", "No matching record")
        return {
            "success": True,
            "message": "Records deleted successfully",
            "deletedCount": deleted,
        }, 200

    def on_users(self, request: Request) -> tuple[Any, int]:
        page, size = _paging(request, default_size=1000)
        project = self._project(request)
        users = [
            u
            for u in self.store.users()
            if project is None or any(p["projectID"] == project for p in u["projects"])
        ]
        rows = users[(page - 1) * size : page * size]
        return _envelope(rows, len(users), page, size), 200

    def on_user(self, request: Request) -> tuple[Any, int]:
        username = request.args.get("username", "").strip()
        if not username:
            raise ApiError(400, "Bad Request", "Username is mandatory")
        entry = self.store.user(username)
        if entry is None:
            raise ApiError(404, "Not Found", f"User not found: {username.lower()}")
        return entry, 200

    def on_groups(self, request: Request) -> tuple[Any, int]:
        page, size = _paging(request, default_size=100)
        # The vendor file spells the flag onlyProjectsGroups, the GitBook onlyProjectGroups.
        flag = request.args.get("onlyProjectsGroups") or request.args.get("onlyProjectGroups")
        groups = self.store.groups(
            project_only=(flag or "").lower() == "true", project=self._project(request)
        )
        return _envelope(groups[(page - 1) * size : page * size], len(groups), page, size), 200


def _drop_connection(environ: dict[str, Any]) -> None:
    import socket

    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _memory_percent() -> float:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = {line.split(":")[0]: int(line.split()[1]) for line in f if ":" in line}
        return round(100.0 * (1 - info["MemAvailable"] / info["MemTotal"]), 1)
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        return 0.0


def _json(body: Any, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        headers=dict(headers or {}),
        mimetype="application/json",
    )


def error_response(exc: ApiError, path: str) -> Response:
    api_path = path[len("/data") :] if path.startswith("/data/") else path
    body = {
        "code": exc.status,
        "timestamp": now_iso(),
        "path": api_path,
        "error": {"summary": exc.summary, "detail": exc.details},
    }
    return _json(body, exc.status, exc.headers)


def _envelope(rows: list[Any], total: int, page: int, size: int) -> dict[str, Any]:
    return {
        "rows": rows,
        "total": total,
        "page": page,
        "pageSize": size,
        "totalPages": (total + size - 1) // size,
    }


def _int_arg(
    request: Request, name: str, default: int, message: str, low: int, high: int | None
) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "Bad Request", message) from None
    if value < low or (high is not None and value > high):
        raise ApiError(400, "Bad Request", message)
    return value


def _paging(request: Request, default_size: int) -> tuple[int, int]:
    page = _int_arg(request, "page", 1, "Page must be greater than 0", 1, None)
    size = _int_arg(
        request, "pageSize", default_size, "Page size must be between 1 and 1000", 1, 1000
    )
    return page, size


def _order(sort: str | None) -> str | None:
    if not sort:
        return None
    descending = sort.startswith("-")
    name = sort.lstrip("-+")
    try:
        expr = SYSTEM_COLUMNS.get(name) or field_expression(name)[0]
    except FilterError as exc:
        raise ApiError(400, "Bad Request", f"Invalid sort: {exc}") from None
    return f"{expr} {'DESC' if descending else 'ASC'}, seq ASC"


def _json_body(request: Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "Payload Too Large", f"Request body exceeds {MAX_BODY_BYTES} bytes")
    if request.mimetype != "application/json":
        raise ApiError(400, "Bad Request", "Content-Type must be application/json")
    data = request.get_data(cache=True)
    if len(data) > MAX_BODY_BYTES:
        raise ApiError(413, "Payload Too Large", f"Request body exceeds {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, "Bad Request", f"Malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError:
        raise ApiError(400, "Bad Request", "Malformed JSON: body is not UTF-8") from None


def _record_list(body: Any, *, allow_object: bool) -> list[dict[str, Any]]:
    if allow_object and isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        raise ApiError(400, "Bad Request", "Request body must be an array of records")
    if not body:
        raise ApiError(400, "Bad Request", "Request body must be a non-empty array")
    if len(body) > MAX_WRITE_RECORDS:
        raise ApiError(
            400,
            "Bad Request",
            f"Maximum {MAX_WRITE_RECORDS} records allowed but received {len(body)}",
        )
    bad = [i for i, r in enumerate(body) if not isinstance(r, dict)]
    if bad:
        raise ApiError(400, "Bad Request", *(f"record {i}: expected an object" for i in bad[:20]))
    return body


_SCALARS = (str, int, float, bool, type(None))


def _field_problem(ftype: str, value: Any) -> str | None:
    if value is None:
        return None
    checks: dict[str, Callable[[Any], bool]] = {
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "date": lambda v: isinstance(v, str) and len(v) == 10 and _is_date(v),
        "currency": lambda v: (
            (isinstance(v, (int, float)) and not isinstance(v, bool))
            or (isinstance(v, dict) and isinstance(v.get("value"), (int, float)))
        ),
        "multiselect": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
        "text": lambda v: isinstance(v, str),
        "email": lambda v: isinstance(v, str),
        "select": lambda v: isinstance(v, str),
        "datetime": lambda v: isinstance(v, str),
    }
    check = checks.get(ftype)
    return (
        None if check is None or check(value) else f"expects {ftype}, got {json.dumps(value)[:60]}"
    )


def _is_date(text: str) -> bool:
    try:
        time.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _validate(coll: Collection, records: list[dict[str, Any]]) -> None:
    problems = []
    for index, record in enumerate(records):
        for key, value in record.items():
            nested = isinstance(value, dict) and not all(
                isinstance(v, _SCALARS) for v in value.values()
            )
            nested = nested or (
                isinstance(value, list) and not all(isinstance(v, _SCALARS) for v in value)
            )
            problem = (
                "is nested too deeply"
                if nested
                else _field_problem(coll.fields.get(key, ""), value)
            )
            if problem:
                problems.append(f"record {index}: field '{key}' {problem}")
    if problems:
        summary = "MODULE_RECORD_VALIDATION_FAILED" if coll.kind == "module" else "VALIDATION_ERROR"
        raise ApiError(400, summary, *problems[:50])
