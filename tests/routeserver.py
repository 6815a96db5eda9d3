"""A small route-table HTTP server on 127.0.0.1 for faults the sandbox cannot stage."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False  # close the connection without answering

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


Handler = Callable[[Seen], Reply]


def sequence(*replies: Reply) -> Handler:
    """Answer with each reply in turn, then keep repeating the last one."""
    items: Iterator[Reply] = iter(replies)
    last = [replies[-1]]

    def handler(_: Seen) -> Reply:
        reply = next(items, None)
        return reply if reply is not None else last[0]

    return handler


def error_body(code: int, summary: str, *details: str) -> dict[str, Any]:
    return {
        "code": code,
        "timestamp": "2026-12-03T00:00:00.000Z",
        "path": "/api/v1/x",
        "error": {"summary": summary, "detail": list(details)},
    }


class RouteServer:
    def __init__(self, limit_per_second: int = 0) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.seen: list[Seen] = []
        self.limit_per_second = limit_per_second
        self.lock = threading.Lock()
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    dict(self.headers.items()),
                    body,
                    time.monotonic(),
                )
                reply = server.dispatch(seen)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.drop:
                    self.close_connection = True
                    return
                data = reply.encode()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def route(self, method: str, path: str, handler: Handler | Reply) -> None:
        self.routes[(method, path)] = handler if callable(handler) else (lambda _s, r=handler: r)

    def dispatch(self, seen: Seen) -> Reply:
        with self.lock:
            self.seen.append(seen)
            if self.limit_per_second:
                recent = [
                    s
                    for s in self.seen
                    if seen.at - s.at < 1.0 and not getattr(s, "limited", False)
                ]
                if len(recent) > self.limit_per_second:
                    seen.limited = True  # type: ignore[attr-defined]
                    return Reply(429, error_body(429, "Too Many Requests"))
        handler = self.routes.get((seen.method, seen.path))
        if handler is None:
            return Reply(404, error_body(404, "Not Found", f"no route {seen.path}"))
        return handler(seen)

    def requests_to(self, path: str, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if s.path == path and (method is None or s.method == method)]

    def count_status_429(self) -> int:
        return sum(1 for s in self.seen if getattr(s, "limited", False))

    def __enter__(self) -> RouteServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
