"""The exit-code table of DESIGN.md, one scenario per code, as one parametrised test."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_cli
from routeserver import Reply, RouteServer, error_body

from exto_cli.errors import ExitCode

Scenario = Callable[[RouteServer], int]
TOKEN = {"EXTO_TOKEN": "tok"}


def health(srv: RouteServer, *args: str) -> int:
    return run_cli("--base-url", srv.url + "/data", *args, env=TOKEN).exit_code


def build_info(reply: Reply) -> Scenario:
    def scenario(srv: RouteServer) -> int:
        srv.route("GET", "/data/api/v1/build/info", reply)
        return health(srv, "health", "--check-auth", "-o", "json")

    return scenario


def not_ready(srv: RouteServer) -> int:
    srv.route(
        "GET",
        "/data/api/v1/health/readiness",
        Reply(500, error_body(500, "x", "Database - connecting")),
    )
    return health(srv, "health", "-o", "json")


def bulk_write(reply: Reply) -> Scenario:
    """`exto update` whose one batch gets ``reply``: a rejection (6) or no answer (9)."""

    def scenario(srv: RouteServer) -> int:
        srv.route("POST", "/data/api/v1/master-record/PARTS", reply)
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "in.jsonl"
            source.write_text('{"code": "A"}\n{"code": "B"}\n')
            return health(
                srv,
                "update",
                "master",
                "PARTS",
                str(source),
                "--results",
                str(Path(tmp) / "r.jsonl"),
            )

    return scenario


def signalled(sig: signal.Signals) -> Scenario:
    def scenario(srv: RouteServer) -> int:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exto_cli",
                "--base-url",
                "http://127.0.0.1:9/data",
                "health",
                "--wait",
                "--interval",
                "0.05",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.5)
        proc.send_signal(sig)
        return proc.wait(timeout=20)

    return scenario


SCENARIOS: dict[ExitCode, Scenario] = {
    ExitCode.OK: lambda srv: health(srv, "health", "-o", "json"),
    ExitCode.ERROR: build_info(Reply(502, None, {"Retry-After": "0"})),
    ExitCode.USAGE: lambda srv: health(srv, "--color", "pink", "health"),
    ExitCode.NOT_FOUND: build_info(
        Reply(500, error_body(500, "Service Exception", "info not Found."))
    ),
    ExitCode.AUTH: build_info(
        Reply(401, error_body(401, "Unauthorized", "Invalid authentication token."))
    ),
    ExitCode.NETWORK: lambda srv: (
        run_cli("--base-url", "http://127.0.0.1:9/data", "health").exit_code
    ),
    ExitCode.PARTIAL: bulk_write(Reply(400, error_body(400, "VALIDATION_ERROR", "record 0: bad"))),
    ExitCode.NOT_READY: not_ready,
    ExitCode.RATE_LIMITED: build_info(
        Reply(429, error_body(429, "Too Many Requests"), {"Retry-After": "0"})
    ),
    ExitCode.UNKNOWN_OUTCOME: bulk_write(Reply(drop=True)),
    ExitCode.SIGINT: signalled(signal.SIGINT),
    ExitCode.SIGTERM: signalled(signal.SIGTERM),
}


def test_every_exit_code_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(ExitCode)


@pytest.mark.parametrize("code", list(ExitCode), ids=[c.name for c in ExitCode])
def test_exit_code(code: ExitCode, server: RouteServer) -> None:
    assert SCENARIOS[code](server) == int(code)
