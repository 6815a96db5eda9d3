from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from routeserver import Reply, RouteServer
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring so no test touches the developer's real one."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


@pytest.fixture(autouse=True)
def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MemoryKeyring]:
    for name in list(os.environ):
        if name.startswith("EXTO_") or name in (
            "NO_COLOR",
            "FORCE_COLOR",
            "CI",
            "PYTHON_KEYRING_BACKEND",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("EXTO_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EXTO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EXTO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EXTO_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("EXTO_RATE", "0")  # pacing off unless a test is about pacing
    monkeypatch.setenv("EXTO_SANDBOX_RATE", "0")  # and the in-process sandbox limit too
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # pytest-socket refuses connections elsewhere; refuse name lookups elsewhere too.
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: object, *args: object, **kwargs: object) -> object:
        if host not in (None, "localhost", "127.0.0.1", "::1", b"localhost", b"127.0.0.1"):
            raise OSError(f"test tried to resolve {host!r}: only loopback is allowed")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def server() -> Iterator[RouteServer]:
    with RouteServer() as srv:
        srv.route("GET", "/data/api/v1/health/readiness", Reply(200, {"ok": True}))
        srv.route(
            "GET",
            "/data/api/v1/health/liveness",
            Reply(200, {"ok": True, "cpuPercent": 3.2, "memPercent": 41}),
        )
        srv.route(
            "GET",
            "/data/api/v1/build/info",
            Reply(200, {"name": "exto-data-api", "version": "1.0.0"}),
        )
        yield srv


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    from exto_cli.main import app

    result = CliRunner().invoke(app, list(args), input=input, env=env, catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli() -> type[object]:
    return run_cli  # type: ignore[return-value]


@dataclass
class Sandbox:
    url: str
    token: str
    app: object

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def sandbox_app(tmp_path: Path) -> Iterator[object]:
    from exto_cli.sandbox.adapter import open_app
    from exto_cli.sandbox.app import Faults

    app = open_app(tmp_path / "sandbox.sqlite", faults=Faults(rate_per_second=0))
    yield app
    app.store.close()


@pytest.fixture
def sandbox(sandbox_app: object) -> Iterator[Sandbox]:
    """The sandbox served over real HTTP on 127.0.0.1, rate limit off."""
    from exto_cli.sandbox.serve import base_url, start_background

    server, thread = start_background(sandbox_app)  # type: ignore[arg-type]
    yield Sandbox(base_url(server), sandbox_app.mint_token(), sandbox_app)  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join(5)


def serve_sandbox(*args: str, log: bool = False) -> tuple[subprocess.Popen[str], str, str]:
    """`exto sandbox serve --port 0 ARGS` in a subprocess: (process, base URL, token).

    Its request log goes to a pipe only when asked for (``log``), so that a busy server
    never blocks on a full pipe nobody reads.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "exto_cli", "sandbox", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if log else subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip(), proc.stdout.readline().strip()
