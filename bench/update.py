"""`exto update` into `exto sandbox serve`: a keyed load at the rate limit, and its memory.

    python bench/update.py throughput [--records 30000] [--latency 0.5] [--runs 3]
    python bench/update.py memory [--small 20000] [--large 200000] [--runs 3]

throughput: a keyed CSV of N records in batches of 1000 into a sandbox that allows 3 requests/s
and adds LATENCY to every answer. The bound for B batches is (B - 1) / 3 s + one latency.
Beside it, a plain sequential loop (requests, one batch after another, paced at 3/s) loads the
same rows in the same run. 429s are counted from the server's request log.

memory: peak RSS of `exto update` for SMALL and LARGE rows (sandbox at zero latency, no limit).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
from _server import Server, run

HEADER = ["code", "name", "city", "amount", "active", "day"]


def write_input(path: Path, count: int, variant: int = 0) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(HEADER)
        for i in range(1, count + 1):
            writer.writerow(
                [
                    f"B{i:07d}",
                    f"Item {i} v{variant}",
                    ["Pune", "Leeds"][i % 2],
                    i + variant,
                    "true" if i % 2 else "false",
                    "2025-01-15",
                ]
            )
    return path


def sequential_loop(server: Server, path: Path, rate: float = 3.0) -> float:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {server.token}"
    url = f"{server.url}/api/v1/master-record/BENCH"
    with open(path, newline="", encoding="utf-8") as f:
        records = [
            {**r, "amount": int(r["amount"]), "active": r["active"] == "true"}
            for r in csv.DictReader(f)
        ]
    started = time.perf_counter()
    last = -1.0
    for first in range(0, len(records), 1000):
        wait = last + 1.0 / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        last = time.perf_counter()
        session.post(url, json=records[first : first + 1000], timeout=60).raise_for_status()
    return time.perf_counter() - started


def throughput(args: argparse.Namespace) -> None:
    batches = (args.records + 999) // 1000
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        server = Server(
            tmp,
            "--seed",
            "empty",
            "--records",
            "BENCH=0",
            "--latency",
            str(args.latency),
            "--rate",
            "3",
        )
        try:
            exto_times, loop_times, limited = [], [], 0
            for run_number in range(args.runs):
                source = write_input(tmp / f"in{run_number}.csv", args.records, variant=run_number)
                time.sleep(1.1)
                before = server.limited
                exto_times.append(
                    run(
                        server,
                        tmp,
                        ["update", "master", "BENCH", str(source), "--key", "code", "--yes"],
                    )[0]
                )
                limited += server.limited - before
                time.sleep(1.1)
                loop_times.append(sequential_loop(server, source))
        finally:
            server.stop()
    bound = (batches - 1) / 3 + args.latency
    exto_s, loop_s = statistics.median(exto_times), statistics.median(loop_times)
    print(
        "| records | batches | latency (s) | bound (s) | exto median (s) | exto / bound "
        "| plain loop median (s) | loop / bound | 429s (exto) | runs |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {args.records} | {batches} | {args.latency:g} | {bound:.2f} | {exto_s:.2f} "
        f"| {exto_s / bound:.2f} | {loop_s:.2f} | {loop_s / bound:.2f} | {limited} | {args.runs} |"
    )


def memory(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        server = Server(tmp, "--seed", "empty", "--records", "BENCH=0", "--rate", "0")
        try:
            results = {}
            for count in (args.small, args.large):
                source = write_input(tmp / f"in{count}.csv", count)
                results[count] = [
                    run(
                        server,
                        tmp,
                        [
                            "--rate",
                            "0",
                            "update",
                            "master",
                            "BENCH",
                            str(source),
                            "--key",
                            "code",
                            "--yes",
                        ],
                    )
                    for _ in range(args.runs)
                ]
        finally:
            server.stop()
    small = statistics.median(r[1] for r in results[args.small]) / 1024
    large = statistics.median(r[1] for r in results[args.large]) / 1024
    print(f"| peak RSS {args.small} rows (MiB) | peak RSS {args.large} rows (MiB) | ratio | runs |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| {small:.1f} | {large:.1f} | {large / small:.2f} | {args.runs} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--records", type=int, default=30_000)
    t.add_argument("--latency", type=float, default=0.5)
    t.add_argument("--runs", type=int, default=3)
    m = sub.add_parser("memory")
    m.add_argument("--small", type=int, default=20_000)
    m.add_argument("--large", type=int, default=200_000)
    m.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    throughput(args) if args.what == "throughput" else memory(args)


if __name__ == "__main__":
    main()
