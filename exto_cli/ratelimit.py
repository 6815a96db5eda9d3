"""A rolling-window request limiter shared by every exto process of one user.

The server allows 3 requests per second (docs/exto-api.md §1). Several exto processes
(a shell loop, parallel CI steps) share that budget, so the timestamps of recent requests
live in a small JSON state file under an exclusive ``flock``. A corrupt or unreadable state
file is reset, never fatal; without a usable file the limiter still paces this process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

try:  # POSIX; on other systems the limiter paces this process only
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

# Requests leave the client and reach the server with some jitter; a little slack keeps
# "3 in any second at the client" also true at the server.
DEFAULT_MARGIN_S = 0.02
# After a 429 the server is evidently counting differently from us: halve the pace for a while.
SLOWDOWN_S = 30.0


@dataclass
class LimiterState:
    stamps: list[float] = field(default_factory=list)
    blocked_until: float = 0.0
    slow_until: float = 0.0

    @classmethod
    def parse(cls, raw: bytes) -> LimiterState:
        try:
            data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
            return cls(
                stamps=[float(s) for s in data.get("stamps", [])],
                blocked_until=float(data.get("blocked_until", 0.0)),
                slow_until=float(data.get("slow_until", 0.0)),
            )
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
            return cls()  # corrupt: start afresh

    def dump(self) -> bytes:
        data = {
            "stamps": self.stamps,
            "blocked_until": self.blocked_until,
            "slow_until": self.slow_until,
        }
        return json.dumps(data).encode("utf-8")


def state_file_name(base_url: str, token: str | None) -> str:
    """A file name per (base URL, token); the token only enters as part of a hash."""
    digest = hashlib.sha256(f"{base_url}\0{token or ''}".encode()).hexdigest()
    return f"ratelimit-{digest[:24]}.json"


class RateLimiter:
    """At most ``rate_per_second`` acquisitions in any rolling window, across processes."""

    def __init__(
        self,
        rate_per_second: float,
        state_path: Path | None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        margin_s: float = DEFAULT_MARGIN_S,
    ) -> None:
        self.rate_per_second = rate_per_second
        self.state_path = state_path
        self.clock = clock
        self.sleep = sleep
        self.margin_s = margin_s
        self._thread_lock = threading.Lock()
        self._memory = LimiterState()

    @property
    def enabled(self) -> bool:
        return self.rate_per_second > 0

    def _capacity_and_window(self, now: float, state: LimiterState) -> tuple[int, float]:
        rate = self.rate_per_second
        if now < state.slow_until:
            rate /= 2
        capacity = max(1, math.floor(rate))
        return capacity, capacity / rate + self.margin_s

    def _delay(self, now: float, state: LimiterState) -> float:
        """Seconds to wait before the next request may go; 0 means record it and go."""
        capacity, window = self._capacity_and_window(now, state)
        # Drop stamps that left the window, and stamps in the future (the clock went back).
        state.stamps = sorted(s for s in state.stamps if now - window < s <= now + 1.0)
        if now < state.blocked_until:
            return state.blocked_until - now
        if len(state.stamps) < capacity:
            return 0.0
        return state.stamps[len(state.stamps) - capacity] + window - now

    def acquire(self) -> float:
        """Block until a request may be sent; return the seconds waited."""
        if not self.enabled:
            return 0.0
        waited = 0.0
        while True:
            with self._locked_state() as state:
                now = self.clock()
                delay = self._delay(now, state)
                if delay <= 0:
                    state.stamps.append(now)
                    return waited
            self.sleep(delay)
            waited += delay

    def penalize(self, wait_s: float) -> None:
        """Record a 429: nobody sends for ``wait_s``, then half pace for a while."""
        with self._locked_state() as state:
            now = self.clock()
            state.blocked_until = max(state.blocked_until, now + wait_s)
            state.slow_until = max(state.slow_until, now + wait_s + SLOWDOWN_S)

    @contextlib.contextmanager
    def _locked_state(self) -> Iterator[LimiterState]:
        with self._thread_lock:
            fd = self._open_state_file()
            if fd is None:
                yield self._memory
                return
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                state = LimiterState.parse(os.pread(fd, 1 << 16, 0))
                yield state
                data = state.dump()
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
            finally:
                os.close(fd)  # closing releases the flock

    def _open_state_file(self) -> int | None:
        if self.state_path is None:
            return None
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            return os.open(self.state_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None  # unusable state dir: pace this process alone rather than fail
