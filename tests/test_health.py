from __future__ import annotations

import json

from conftest import run_cli
from routeserver import Reply, RouteServer, error_body, sequence


def base(srv: RouteServer) -> list[str]:
    return ["--base-url", srv.url + "/data"]


def test_health_shows_readiness_and_liveness_as_json(server: RouteServer) -> None:
    result = run_cli(*base(server), "health", "-o", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["check"] for r in rows] == ["readiness", "liveness"]
    assert all(r["ok"] for r in rows)
    assert rows[1]["body"]["cpuPercent"] == 3.2


def test_health_sends_no_token(server: RouteServer) -> None:
    result = run_cli(*base(server), "health", "-o", "json", env={"EXTO_TOKEN": "secret-x"})
    assert result.exit_code == 0
    assert all("Authorization" not in s.headers for s in server.seen)


def test_health_table_lists_both_checks(server: RouteServer) -> None:
    result = run_cli(*base(server), "health", "-o", "table")
    assert "readiness" in result.stdout and "liveness" in result.stdout


def test_health_live_checks_liveness_only(server: RouteServer) -> None:
    result = run_cli(*base(server), "health", "--live", "-o", "jsonl")
    assert [json.loads(line)["check"] for line in result.stdout.splitlines()] == ["liveness"]
    assert server.requests_to("/data/api/v1/health/readiness") == []


def test_health_not_ready_exits_7_with_server_detail(server: RouteServer) -> None:
    server.route(
        "GET",
        "/data/api/v1/health/readiness",
        Reply(500, error_body(500, "Service Exception", "Database - disconnected")),
    )
    result = run_cli(*base(server), "health", "--ready", "-o", "json")
    assert result.exit_code == 7
    assert "Database - disconnected" in result.stderr
    assert len(server.requests_to("/data/api/v1/health/readiness")) == 1


def test_health_ok_false_body_is_not_ready(server: RouteServer) -> None:
    server.route("GET", "/data/api/v1/health/readiness", Reply(200, {"ok": False}))
    assert run_cli(*base(server), "health", "--ready", "-o", "json").exit_code == 7


def test_health_unreachable_exits_5() -> None:
    result = run_cli("--base-url", "http://127.0.0.1:9/data", "health", "-o", "json")
    assert result.exit_code == 5
    assert "connection refused" in result.stderr


def test_health_wait_polls_until_ready(server: RouteServer) -> None:
    down = Reply(503, error_body(503, "Service Unavailable"))
    server.route(
        "GET",
        "/data/api/v1/health/readiness",
        sequence(
            down,
            Reply(429, error_body(429, "Too Many Requests"), {"Retry-After": "0"}),
            down,
            Reply(200, {"ok": True}),
        ),
    )
    result = run_cli(
        *base(server), "health", "--ready", "--wait", "--interval", "0.01", "-o", "json"
    )
    assert result.exit_code == 0, result.stderr
    assert len(server.requests_to("/data/api/v1/health/readiness")) == 4


def test_health_wait_needs_consecutive_successes(server: RouteServer) -> None:
    ok, down = Reply(200, {"ok": True}), Reply(503, None)
    server.route("GET", "/data/api/v1/health/readiness", sequence(ok, down, ok, ok, ok))
    result = run_cli(
        *base(server),
        "health",
        "--ready",
        "--wait",
        "--interval",
        "0",
        "--success-threshold",
        "3",
        "-o",
        "json",
    )
    assert result.exit_code == 0
    assert len(server.requests_to("/data/api/v1/health/readiness")) == 5


def test_health_wait_through_refused_connections_times_out_with_exit_7() -> None:
    result = run_cli(
        "--base-url",
        "http://127.0.0.1:9/data",
        "health",
        "--wait",
        "--timeout",
        "0.3",
        "--interval",
        "0.05",
    )
    assert result.exit_code == 7
    assert "last seen" in result.stderr and "connection refused" in result.stderr


def test_health_wait_runs_command_after_success(server: RouteServer) -> None:
    assert run_cli(*base(server), "health", "--wait", "--", "true").exit_code == 0
    assert run_cli(*base(server), "health", "--wait", "--", "false").exit_code == 1
    result = run_cli(*base(server), "health", "--wait", "--", "sh", "-c", "exit 42")
    assert result.exit_code == 42


def test_health_command_is_not_run_when_never_healthy() -> None:
    result = run_cli(
        "--base-url",
        "http://127.0.0.1:9/data",
        "health",
        "--wait",
        "--timeout",
        "0.1",
        "--interval",
        "0.05",
        "--",
        "sh",
        "-c",
        "echo RAN",
    )
    assert result.exit_code == 7 and "RAN" not in result.stdout


def test_health_check_auth_sends_token_once(server: RouteServer) -> None:
    result = run_cli(
        *base(server), "health", "--check-auth", "-o", "json", env={"EXTO_TOKEN": "tok-123"}
    )
    assert result.exit_code == 0, result.stderr
    (seen,) = server.requests_to("/data/api/v1/build/info")
    assert seen.headers["Authorization"] == "Bearer tok-123"


def test_health_check_auth_401_exits_4_without_retry(server: RouteServer) -> None:
    server.route(
        "GET",
        "/data/api/v1/build/info",
        Reply(401, error_body(401, "Unauthorized", "Invalid authentication token.")),
    )
    result = run_cli(*base(server), "health", "--check-auth", env={"EXTO_TOKEN": "tok-123"})
    assert result.exit_code == 4
    assert "exto auth login --profile default" in result.stderr
    assert len(server.requests_to("/data/api/v1/build/info")) == 1


def test_health_check_auth_without_token_exits_4(server: RouteServer) -> None:
    result = run_cli(*base(server), "health", "--check-auth")
    assert result.exit_code == 4
    assert "no token" in result.stderr
