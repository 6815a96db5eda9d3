"""No token, ever, in output, logs or errors."""

from __future__ import annotations

import uuid

import pytest
from conftest import run_cli
from routeserver import Reply, RouteServer, Seen, error_body


def echo_token(status: int) -> object:
    def handler(seen: Seen) -> Reply:
        # A careless server that echoes the credential back in its error text.
        auth = seen.headers.get("Authorization", "")
        return Reply(status, error_body(status, "Echo", f"you sent {auth}"), {"X-Echo": auth})

    return handler


@pytest.mark.parametrize("status", [200, 400, 401, 429, 500])
def test_canary_token_never_appears_in_debug_output(server: RouteServer, status: int) -> None:
    canary = f"exto-canary-{uuid.uuid4()}"
    server.route("GET", "/data/api/v1/build/info", echo_token(status))  # type: ignore[arg-type]
    env = {"EXTO_TOKEN": canary, "EXTO_MAX_ATTEMPTS": "2", "EXTO_MAX_WAIT": "0"}
    result = run_cli(
        "--base-url",
        server.url + "/data",
        "--debug",
        "health",
        "--check-auth",
        "-o",
        "json",
        env=env,
    )
    assert any(s.headers.get("Authorization") == f"Bearer {canary}" for s in server.seen)
    assert "Authorization: <redacted>" in result.stderr
    assert canary not in result.stdout
    assert canary not in result.stderr


def test_extra_header_values_are_redacted_in_debug_output(server: RouteServer) -> None:
    result = run_cli(
        "--base-url",
        server.url + "/data",
        "--debug",
        "--header",
        "Ocp-Apim-Subscription-Key:sub-canary-123",
        "health",
        "-o",
        "json",
    )
    assert result.exit_code == 0
    assert server.seen[0].headers["Ocp-Apim-Subscription-Key"] == "sub-canary-123"
    assert "sub-canary-123" not in result.stderr + result.stdout


def test_server_text_is_shown_without_markup_or_control_characters(server: RouteServer) -> None:
    server.route(
        "GET",
        "/data/api/v1/health/readiness",
        Reply(500, error_body(500, "[bold red]x[/]", "Database - \x1b[2Jgone")),
    )
    result = run_cli("--base-url", server.url + "/data", "health", "--ready", "-o", "json")
    assert result.exit_code == 7
    assert "\x1b" not in result.stderr and "\\x1b[2Jgone" in result.stderr


def test_http_to_a_remote_host_is_refused_with_nothing_sent() -> None:
    # pytest-socket would also fail this test if a connection to example.com were attempted.
    result = run_cli("--base-url", "http://example.com/data", "health")
    assert result.exit_code == 2
    assert "plain http://" in result.stderr
