"""`exto sandbox serve`: the sandbox app over real HTTP(S) with werkzeug's threaded server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from exto_cli.sandbox.app import SandboxApp


class _QuietHandler(WSGIRequestHandler):
    # The app logs one line per request itself; werkzeug's own access log would double it.
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def make(
    app: SandboxApp, host: str, port: int, tls: tuple[str, str] | None = None
) -> BaseWSGIServer:
    return make_server(
        host, port, app, threaded=True, request_handler=_QuietHandler, ssl_context=tls
    )


def base_url(server: BaseWSGIServer) -> str:
    scheme = "https" if server.ssl_context is not None else "http"
    host = server.host if ":" not in server.host else f"[{server.host}]"
    return f"{scheme}://{host}:{server.port}/data"


def serve_forever(server: BaseWSGIServer, on_stop: Callable[[], None] | None = None) -> None:
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if on_stop is not None:
            on_stop()


def start_background(
    app: SandboxApp, host: str = "127.0.0.1", port: int = 0
) -> tuple[BaseWSGIServer, threading.Thread]:
    """A server in a daemon thread (tests and benchmarks); stop it with ``server.shutdown()``."""
    server = make(app, host, port)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    return server, thread
