"""The cross-process limiter: unit tests with an injected clock, then two real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from routeserver import Reply, RouteServer

from exto_cli.ratelimit import RateLimiter, state_file_name


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(tmp_path: Path, clock: Clock, rate: float = 3, margin_s: float = 0.0) -> RateLimiter:
    return RateLimiter(
        rate, tmp_path / "state.json", clock=clock.time, sleep=clock.sleep, margin_s=margin_s
    )


def test_first_three_requests_go_at_once(tmp_path: Path) -> None:
    clock = Clock()
    lim = limiter(tmp_path, clock)
    for _ in range(3):
        assert lim.acquire() == 0.0
    assert clock.sleeps == []


def test_fourth_request_waits_for_the_window(tmp_path: Path) -> None:
    clock = Clock()
    lim = limiter(tmp_path, clock)
    for _ in range(3):
        lim.acquire()
        clock.now += 0.1
    assert lim.acquire() == pytest.approx(0.7)  # the first stamp leaves the window at 1.0 s


def test_no_rolling_second_ever_holds_more_than_rate(tmp_path: Path) -> None:
    clock = Clock()
    lim = limiter(tmp_path, clock, margin_s=0.05)
    stamps = []
    for _ in range(30):
        lim.acquire()
        stamps.append(clock.now)
    assert all(stamps[i + 3] - stamps[i] >= 1.0 for i in range(len(stamps) - 3))


def test_fractional_rate_spaces_single_requests(tmp_path: Path) -> None:
    clock = Clock()
    lim = limiter(tmp_path, clock, rate=0.5)
    lim.acquire()
    assert lim.acquire() == 2.0


def test_two_limiters_on_one_state_file_share_the_budget(tmp_path: Path) -> None:
    clock = Clock()
    first, second = limiter(tmp_path, clock), limiter(tmp_path, clock)
    first.acquire()
    first.acquire()
    second.acquire()
    assert second.acquire() == 1.0


def test_penalty_blocks_then_halves_the_pace(tmp_path: Path) -> None:
    clock = Clock()
    lim = limiter(tmp_path, clock, rate=4)
    lim.penalize(5.0)
    assert lim.acquire() == 5.0
    lim.acquire()
    assert lim.acquire() == 1.0  # half pace: 2 per second


def test_corrupt_state_file_is_reset(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_bytes(b"\x00{not json")
    clock = Clock()
    assert limiter(tmp_path, clock).acquire() == 0.0
    assert json.loads((tmp_path / "state.json").read_text())["stamps"] == [clock.now]


def test_unusable_state_dir_still_paces_in_process(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    clock = Clock()
    lim = RateLimiter(
        1, tmp_path / "file" / "state.json", clock=clock.time, sleep=clock.sleep, margin_s=0
    )
    lim.acquire()
    assert lim.acquire() == 1.0


def test_state_file_name_depends_on_url_and_token_but_hides_the_token() -> None:
    name = state_file_name("https://a/data", "secret-token")
    assert "secret" not in name
    assert name != state_file_name("https://a/data", "other")
    assert name != state_file_name("https://b/data", "secret-token")


def test_rate_zero_disables_pacing(tmp_path: Path) -> None:
    clock = Clock()
    lim = limiter(tmp_path, clock, rate=0)
    for _ in range(10):
        lim.acquire()
    assert clock.sleeps == [] and not (tmp_path / "state.json").exists()


def test_two_exto_processes_share_one_budget() -> None:
    with RouteServer(limit_per_second=3) as srv:
        srv.route("GET", "/data/api/v1/health/readiness", Reply(200, {"ok": True}))
        srv.route("GET", "/data/api/v1/health/liveness", Reply(200, {"ok": True}))
        cmd = [
            sys.executable,
            "-m",
            "exto_cli",
            "--base-url",
            srv.url + "/data",
            "--rate",
            "3",
            "health",
            "--wait",
            "--interval",
            "0",
            "--success-threshold",
            "3",
            "-o",
            "json",
        ]
        procs = [
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        codes = [p.wait(timeout=60) for p in procs]
    assert codes == [0, 0]
    assert len(srv.seen) == 12
    assert srv.count_status_429() == 0
