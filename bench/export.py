"""`exto get --all` against `exto sandbox serve`: speed at the rate limit, memory, client CPU.

    python bench/export.py throughput [--records 30000] [--latencies 0.05 0.5 1.0] [--runs 3]
    python bench/export.py memory [--small 20000] [--large 200000] [--runs 3]

throughput: the sandbox enforces 3 requests/s per token and adds LATENCY to every answer. For N
pages the rate-limit bound is (N - 1) / 3 s + one latency. Beside exto, a plain sequential loop
(requests, one page after another, paced at 3/s) runs against the same server in the same run.
Each figure is the median of --runs runs; 429s are counted from the server's request log.

memory: peak RSS (ru_maxrss of the exto process) exporting SMALL and LARGE records with the
sandbox at zero latency and no rate limit, and the client's CPU seconds, from which the marginal
rows per second (the extra rows over the extra CPU time, start-up cancelled out) follow.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
from _server import Server, run


def run_exto(
    server: Server, tmp: Path, name: str, fmt: str, unpaced: bool = False
) -> tuple[float, int, float]:
    """Wall seconds, peak RSS in KiB and CPU seconds of one `exto get ... --all` run."""
    pacing = ["--rate", "0"] if unpaced else []
    return run(
        server, tmp, [*pacing, "get", "master", name, "--all", "-o", fmt, "--page-size", "1000"]
    )


def sequential_loop(server: Server, name: str, pages: int, rate: float = 3.0) -> float:
    """The plain baseline: one page after another, paced at `rate` requests per second."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {server.token}"
    url = f"{server.url}/api/v1/master-record/{name}"
    started = time.perf_counter()
    last_send = -1.0
    for page in range(1, pages + 1):
        wait = last_send + 1.0 / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        last_send = time.perf_counter()
        response = session.get(url, params={"page": page, "pageSize": 1000}, timeout=60)
        response.raise_for_status()
        response.json()
    return time.perf_counter() - started


def throughput(args: argparse.Namespace) -> None:
    pages = (args.records + 999) // 1000
    print(
        "| latency (s) | bound (s) | exto median (s) | exto / bound | plain loop median (s) "
        "| loop / bound | 429s (exto) | runs |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for latency in args.latencies:
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            server = Server(
                tmp, "--records", f"BENCH={args.records}", "--latency", str(latency), "--rate", "3"
            )
            try:
                exto_times, loop_times, limited = [], [], 0
                for _ in range(args.runs):
                    time.sleep(1.1)  # a fresh one-second window at the server
                    before = server.limited
                    exto_times.append(run_exto(server, tmp, "BENCH", "jsonl")[0])
                    limited += server.limited - before
                    time.sleep(1.1)
                    loop_times.append(sequential_loop(server, "BENCH", pages))
            finally:
                server.stop()
        bound = (pages - 1) / 3 + latency
        exto_s, loop_s = statistics.median(exto_times), statistics.median(loop_times)
        print(
            f"| {latency:g} | {bound:.2f} | {exto_s:.2f} | {exto_s / bound:.2f} | {loop_s:.2f} "
            f"| {loop_s / bound:.2f} | {limited} | {args.runs} |"
        )


def memory(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        server = Server(
            tmp,
            "--seed",
            "empty",
            "--records",
            f"SMALL={args.small}",
            "--records",
            f"LARGE={args.large}",
            "--rate",
            "0",
        )
        try:
            print(
                f"| format | peak RSS {args.small} rows (MiB) | peak RSS {args.large} rows (MiB) "
                f"| ratio | client CPU {args.small} (s) | client CPU {args.large} (s) "
                "| marginal rows/s |"
            )
            print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
            for fmt in args.formats:
                small = [run_exto(server, tmp, "SMALL", fmt, True) for _ in range(args.runs)]
                large = [run_exto(server, tmp, "LARGE", fmt, True) for _ in range(args.runs)]
                rss_s = statistics.median(r[1] for r in small) / 1024
                rss_l = statistics.median(r[1] for r in large) / 1024
                cpu_s = statistics.median(r[2] for r in small)
                cpu_l = statistics.median(r[2] for r in large)
                rate = (args.large - args.small) / (cpu_l - cpu_s)
                print(
                    f"| {fmt} | {rss_s:.1f} | {rss_l:.1f} | {rss_l / rss_s:.2f} | {cpu_s:.2f} "
                    f"| {cpu_l:.2f} | {rate:,.0f} |"
                )
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--records", type=int, default=30_000)
    t.add_argument("--latencies", type=float, nargs="+", default=[0.05, 0.5, 1.0])
    t.add_argument("--runs", type=int, default=3)
    m = sub.add_parser("memory")
    m.add_argument("--small", type=int, default=20_000)
    m.add_argument("--large", type=int, default=200_000)
    m.add_argument("--formats", nargs="+", default=["jsonl", "json", "csv"])
    m.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    throughput(args) if args.what == "throughput" else memory(args)


if __name__ == "__main__":
    main()
