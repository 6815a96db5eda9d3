"""The shared session against real loopback HTTP: auth, retries, redirects, pacing."""

from __future__ import annotations

import email.utils
from pathlib import Path

import pytest
from routeserver import Reply, RouteServer, error_body, sequence

from exto_cli.client import Clock, ExtoSession, RetryPolicy, SessionConfig, parse_retry_after
from exto_cli.errors import (
    AuthError,
    ExtoError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    UnknownOutcomeError,
    UsageError,
)

PATH = "/api/v1/master-record/LOCATION"


class FakeTime:
    """Injected clock: sleeping advances time instantly and is recorded."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.sleeps: list[float] = []

    def clock(self) -> Clock:
        return Clock(
            monotonic=lambda: self.now, wall=lambda: self.now, sleep=self.sleep, random=lambda: 1.0
        )

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_session(
    srv: RouteServer,
    *,
    token: str = "test-token-0123456789",
    clock: Clock | None = None,
    rate: float = 0,
    timeout_s: float = 5,
    state_dir: Path | None = None,
    **config: object,
) -> ExtoSession:
    cfg = SessionConfig(
        base_url=srv.url + "/data",
        rate_per_second=rate,
        timeout_s=timeout_s,
        state_dir=state_dir,
        **config,
    )  # type: ignore[arg-type]
    return ExtoSession(cfg, lambda: token, clock=clock)


def test_paths_are_joined_to_the_base_url(server: RouteServer) -> None:
    server.route("GET", "/data" + PATH, Reply(200, {"rows": []}))
    make_session(server).call("GET", PATH)
    assert server.seen[-1].path == "/data" + PATH


def test_requests_carry_user_agent_and_request_id(server: RouteServer) -> None:
    server.route("GET", "/data" + PATH, Reply(200, {}))
    make_session(server).call("GET", PATH)
    headers = server.seen[-1].headers
    assert headers["User-Agent"].startswith("exto-cli/")
    assert len(headers["X-Request-ID"]) == 32


def test_project_id_is_sent_as_header(server: RouteServer) -> None:
    server.route("GET", "/data" + PATH, Reply(200, {}))
    make_session(server, project_id="Vx6-j2Z").call("GET", PATH)
    assert server.seen[-1].headers["X-Project-Id"] == "Vx6-j2Z"


def test_token_is_read_lazily_only_when_sending() -> None:
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return "tok"

    ExtoSession(SessionConfig(base_url="https://example.invalid/data"), provider)
    assert calls == []


def test_http_to_a_non_loopback_host_is_refused_before_sending() -> None:
    with pytest.raises(UsageError, match="plain http"):
        ExtoSession(SessionConfig(base_url="http://example.com/data"), lambda: "tok")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1/data", "http://localhost/data", "http://[::1]:8/data"]
)
def test_http_to_loopback_is_accepted(url: str) -> None:
    ExtoSession(SessionConfig(base_url=url), lambda: "tok")


def test_401_is_not_retried(server: RouteServer) -> None:
    server.route(
        "GET",
        "/data" + PATH,
        Reply(401, error_body(401, "Unauthorized", "Invalid authentication token.")),
    )
    with pytest.raises(AuthError) as info:
        make_session(server, clock=FakeTime().clock()).call("GET", PATH)
    assert len(server.requests_to("/data" + PATH)) == 1
    assert "Invalid authentication token." in info.value.details
    assert "exto auth login --profile default" in (info.value.hint or "")


def test_500_not_found_detail_maps_to_not_found_without_retry(server: RouteServer) -> None:
    server.route(
        "GET",
        "/data" + PATH,
        Reply(500, error_body(500, "Service Exception", "LOCATION not Found.")),
    )
    with pytest.raises(NotFoundError):
        make_session(server, clock=FakeTime().clock()).call("GET", PATH)
    assert len(server.requests_to("/data" + PATH)) == 1


def test_get_is_retried_after_503_then_succeeds(server: RouteServer) -> None:
    server.route("GET", "/data" + PATH, sequence(Reply(503), Reply(502), Reply(200, {"ok": 1})))
    fake = FakeTime()
    response = make_session(server, clock=fake.clock()).call("GET", PATH)
    assert response.json() == {"ok": 1}
    assert fake.sleeps == [0.5, 1.0]  # full jitter with random()=1.0: the exponential cap


def test_retry_after_seconds_is_honoured(server: RouteServer) -> None:
    server.route(
        "GET",
        "/data" + PATH,
        sequence(
            Reply(429, error_body(429, "Too Many Requests"), {"Retry-After": "7"}), Reply(200, {})
        ),
    )
    fake = FakeTime()
    make_session(server, clock=fake.clock()).call("GET", PATH)
    assert fake.sleeps == [7.0]


def test_retry_after_http_date_is_honoured(server: RouteServer) -> None:
    fake = FakeTime()
    when = email.utils.formatdate(fake.now + 12, usegmt=True)
    server.route(
        "GET", "/data" + PATH, sequence(Reply(503, None, {"Retry-After": when}), Reply(200, {}))
    )
    make_session(server, clock=fake.clock()).call("GET", PATH)
    assert fake.sleeps == [pytest.approx(12.0, abs=1.0)]


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("3", 0.0) == 3.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 4.0) == 6.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 40.0) == 0.0
    assert parse_retry_after("soon", 0.0) is None
    assert parse_retry_after(None, 0.0) is None


def test_429_forever_gives_up_after_five_attempts_within_the_caps(server: RouteServer) -> None:
    server.route("GET", "/data" + PATH, Reply(429, error_body(429, "Too Many Requests")))
    fake = FakeTime()
    with pytest.raises(RateLimitedError, match="after 5 attempts"):
        make_session(server, clock=fake.clock()).call("GET", PATH)
    assert len(server.requests_to("/data" + PATH)) == 5
    assert len(fake.sleeps) == 4 and max(fake.sleeps) <= 60 and sum(fake.sleeps) <= 300


def test_retry_after_beyond_the_cap_gives_up_at_once(server: RouteServer) -> None:
    server.route("GET", "/data" + PATH, Reply(429, None, {"Retry-After": "3600"}))
    fake = FakeTime()
    with pytest.raises(RateLimitedError):
        make_session(server, clock=fake.clock()).call("GET", PATH)
    assert fake.sleeps == [] and len(server.seen) == 1


def test_total_retry_time_cap_is_respected(server: RouteServer) -> None:
    server.route("GET", "/data" + PATH, Reply(503, None, {"Retry-After": "50"}))
    fake = FakeTime()
    session = make_session(
        server, clock=fake.clock(), retry=RetryPolicy(max_attempts=20, max_total_s=120)
    )
    with pytest.raises(ExtoError):
        session.call("GET", PATH)
    assert sum(fake.sleeps) <= 120 and len(fake.sleeps) == 2


def test_post_is_not_retried_after_a_read_timeout(server: RouteServer) -> None:
    server.route("POST", "/data" + PATH, Reply(201, {"insertedCount": 1}, delay_s=0.6))
    session = make_session(server, clock=FakeTime().clock(), timeout_s=0.2)
    with pytest.raises(UnknownOutcomeError, match="may or may not have been applied"):
        session.call("POST", PATH, json=[{"code": "A"}])
    assert len(server.requests_to("/data" + PATH, "POST")) == 1


def test_keyed_post_is_retried_after_a_dropped_connection(server: RouteServer) -> None:
    server.route(
        "POST", "/data" + PATH, sequence(Reply(drop=True), Reply(201, {"insertedCount": 1}))
    )
    session = make_session(server, clock=FakeTime().clock())
    assert session.call("POST", PATH, json=[{}], idempotent=True).status_code == 201
    assert len(server.requests_to("/data" + PATH, "POST")) == 2


def test_post_is_retried_after_429(server: RouteServer) -> None:
    server.route(
        "POST", "/data" + PATH, sequence(Reply(429, None, {"Retry-After": "1"}), Reply(201, {}))
    )
    assert (
        make_session(server, clock=FakeTime().clock()).call("POST", PATH, json=[{}]).status_code
        == 201
    )


def test_post_is_not_retried_after_500(server: RouteServer) -> None:
    server.route("POST", "/data" + PATH, Reply(500, error_body(500, "Service Exception", "boom")))
    with pytest.raises(ExtoError):
        make_session(server, clock=FakeTime().clock()).call("POST", PATH, json=[{}])
    assert len(server.requests_to("/data" + PATH, "POST")) == 1


def test_post_is_retried_after_connection_refused() -> None:
    fake = FakeTime()
    cfg = SessionConfig(base_url="http://127.0.0.1:9/data", rate_per_second=0)
    with pytest.raises(NetworkError, match="after 5 attempts"):
        ExtoSession(cfg, lambda: "tok", clock=fake.clock()).call("POST", PATH, json=[{}])
    assert len(fake.sleeps) == 4


def test_redirect_on_a_post_is_not_followed(server: RouteServer) -> None:
    server.route("POST", "/data" + PATH, Reply(307, None, {"Location": server.url + "/elsewhere"}))
    server.route("POST", "/elsewhere", Reply(201, {}))
    with pytest.raises(ExtoError, match="never follow redirects"):
        make_session(server).call("POST", PATH, json=[{}])
    assert server.requests_to("/elsewhere") == []


def test_redirect_to_another_origin_drops_token_and_extra_headers(server: RouteServer) -> None:
    with RouteServer() as other:
        other.route("GET", "/x", Reply(200, {}))
        server.route("GET", "/data" + PATH, Reply(302, None, {"Location": other.url + "/x"}))
        make_session(server, headers={"Ocp-Apim-Subscription-Key": "sub-secret"}).call("GET", PATH)
        (seen,) = other.seen
    assert "Authorization" not in seen.headers
    assert "Ocp-Apim-Subscription-Key" not in seen.headers


def test_extra_headers_are_sent_to_the_api_origin(server: RouteServer) -> None:
    server.route("GET", "/data" + PATH, Reply(200, {}))
    make_session(server, headers={"Ocp-Apim-Subscription-Key": "sub-secret"}).call("GET", PATH)
    assert server.seen[-1].headers["Ocp-Apim-Subscription-Key"] == "sub-secret"


def test_auth_none_sends_no_bearer_token(server: RouteServer) -> None:
    server.route("GET", "/data" + PATH, Reply(200, {}))
    make_session(server, auth_mode="none").call("GET", PATH)
    assert "Authorization" not in server.seen[-1].headers


def test_netrc_does_not_replace_the_bearer_token(
    server: RouteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    server.route("GET", "/data" + PATH, Reply(200, {}))
    make_session(server, token="the-token").call("GET", PATH)
    assert server.seen[-1].headers["Authorization"] == "Bearer the-token"


def test_pacing_keeps_four_requests_out_of_one_second_at_the_server(
    server: RouteServer, tmp_path: Path
) -> None:
    server.route("GET", "/data" + PATH, Reply(200, {}))
    session = make_session(server, rate=3, state_dir=tmp_path / "limiter")
    for _ in range(4):
        session.call("GET", PATH)
    arrivals = [s.at for s in server.requests_to("/data" + PATH)]
    assert arrivals[3] - arrivals[0] >= 1.0
