"""``sandbox://NAME`` base URLs: a requests transport adapter calling the app in-process."""

from __future__ import annotations

from collections.abc import Mapping
from http.client import RemoteDisconnected
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict

from exto_cli.sandbox.app import DROP_MARKER, Faults, SandboxApp
from exto_cli.sandbox.store import Store

if TYPE_CHECKING:
    from exto_cli.config import Settings

SEEDS = ("demo", "empty")


def data_dir(env: Mapping[str, str]) -> Path:
    if env.get("EXTO_DATA_DIR"):
        return Path(env["EXTO_DATA_DIR"])
    import platformdirs

    return Path(platformdirs.user_data_dir("exto", appauthor=False))


def sandbox_path(name: str, env: Mapping[str, str]) -> Path:
    if not name or not all(ch.isalnum() or ch in "-_" for ch in name):
        from exto_cli.errors import UsageError

        raise UsageError(f"sandbox name {name!r}: use letters, digits, '-' and '_'")
    return data_dir(env) / "sandbox" / f"{name}.sqlite"


def open_app(
    path: Path | None, *, seed: str = "demo", faults: Faults | None = None, log: Any = None
) -> SandboxApp:
    """Open (and on first use seed) a sandbox database."""
    from exto_cli.sandbox.seed import load_demo

    store = Store(path)
    if store.meta("seeded") is None:
        if seed == "demo":
            load_demo(store)
        store.set_meta("seeded", seed)
    return SandboxApp(store, faults, log)


def in_process_faults(env: Mapping[str, str]) -> Faults:
    # The in-process sandbox limits like the real API unless told otherwise (tests turn it off).
    rate = env.get("EXTO_SANDBOX_RATE", "3")
    return Faults(rate_per_second=int(rate) if rate.isdigit() else 3)


def sandbox_name(base_url: str) -> str:
    return urlsplit(base_url).netloc or "demo"


class SandboxAdapter(BaseAdapter):
    """Turns a PreparedRequest into a WSGI call: no socket, same app as `exto sandbox serve`."""

    def __init__(self, app: SandboxApp) -> None:
        super().__init__()
        self.app = app

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        from werkzeug.test import EnvironBuilder, run_wsgi_app

        url = urlsplit(request.url or "")
        body = request.body.encode() if isinstance(request.body, str) else request.body
        builder = EnvironBuilder(
            path="/data" + (url.path or "/"),
            query_string=url.query,
            method=request.method or "GET",
            headers=list(request.headers.items()),
            data=body or b"",
            base_url=f"http://{url.netloc}.sandbox",
        )
        environ = builder.get_environ()
        environ["REMOTE_ADDR"] = "127.0.0.1"
        app_iter, status, headers = run_wsgi_app(self.app, environ)
        content = b"".join(app_iter)
        if environ.get(DROP_MARKER):
            raise requests.ConnectionError(
                RemoteDisconnected("Remote end closed connection without response"), request=request
            )
        response = requests.Response()
        response.status_code = int(status.split(" ", 1)[0])
        response.reason = status.split(" ", 1)[1] if " " in status else ""
        response.headers = CaseInsensitiveDict(dict(headers))
        response._content = content
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        self.app.store.close()


def sandbox_adapter(settings: Settings, env: Mapping[str, str]) -> SandboxAdapter:
    """The adapter for the settings' ``sandbox://NAME`` base URL, its app opened."""
    path = sandbox_path(sandbox_name(settings.base_url), env)
    return SandboxAdapter(open_app(path, faults=in_process_faults(env)))


def sandbox_token(settings: Settings, env: Mapping[str, str]) -> str:
    """A token for the built-in sandbox profile, minted by that sandbox's own key."""
    app = open_app(sandbox_path(sandbox_name(settings.base_url), env))
    try:
        return app.mint_token()
    finally:
        app.store.close()


__all__ = ["SandboxAdapter", "open_app", "sandbox_adapter", "sandbox_token"]
