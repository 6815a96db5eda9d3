"""Shared by the benchmarks: `exto sandbox serve` in a subprocess, and timing one exto run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

EXTO = [sys.executable, "-m", "exto_cli"]


class Server:
    """`exto sandbox serve` in a subprocess; counts the 429s in its request log."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*EXTO, "sandbox", "serve", "--port", "0", "--db", str(tmp / "bench.sqlite"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.url = self.proc.stdout.readline().strip()
        self.token = self.proc.stdout.readline().strip()
        self.limited = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if '" 429 ' in line:
                self.limited += 1

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run(server: Server, tmp: Path, args: list[str]) -> tuple[float, int, float]:
    """Wall seconds, peak RSS in KiB and CPU seconds of one exto command."""
    env = {
        **os.environ,
        "EXTO_TOKEN": server.token,
        "EXTO_CACHE_DIR": str(tmp / "cache"),
        "EXTO_CONFIG_DIR": str(tmp / "config"),
        "EXTO_STATE_DIR": str(tmp / "state"),
    }
    cmd = [*EXTO, "--base-url", server.url, *args]
    started = time.perf_counter()
    with open(os.devnull, "w") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"exto failed ({os.waitstatus_to_exitcode(status)}): {' '.join(cmd)}")
    return wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime
