"""Time for the sandbox to answer one 1000-row page of a 100,000-record master.

Pages are fetched over real HTTP on 127.0.0.1 (werkzeug's threaded server, rate limit off),
with and without a simple filter, from the first, middle and last page. Each figure is the
median of --repeat requests; beside it, the median of a request to /health/liveness measured
in the same run (the server's fixed cost per request).

Run: python bench/sandbox_page.py [--records 100000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import requests

from exto_cli.sandbox.adapter import open_app
from exto_cli.sandbox.app import Faults
from exto_cli.sandbox.seed import add_generated
from exto_cli.sandbox.serve import base_url, start_background


def median_ms(session: requests.Session, url: str, params: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = session.get(url, params=params, timeout=30)
        response.raise_for_status()
        response.content  # noqa: B018 - the whole body
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = open_app(Path(tmp) / "bench.sqlite", seed="empty", faults=Faults(rate_per_second=0))
        started = time.perf_counter()
        add_generated(app.store, "BENCH", args.records)
        load_s = time.perf_counter() - started
        server, _ = start_background(app)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {app.mint_token()}"
        url = base_url(server) + "/api/v1/master-record/BENCH"
        last = str((args.records + 999) // 1000)
        cases = {
            "liveness (fixed cost per request)": (base_url(server) + "/api/v1/health/liveness", {}),
            "page 1, no filter": (url, {"pageSize": "1000", "page": "1"}),
            f"page {last}, no filter": (url, {"pageSize": "1000", "page": last}),
            "page 1, filter city:eq:Pune": (url, {"pageSize": "1000", "filter": "city:eq:Pune"}),
            "page 5, filter amount:gt:50000": (
                url,
                {"pageSize": "1000", "page": "5", "filter": "amount:gt:50000"},
            ),
            "page 1, filter amount:gt:50000:and:city:eq:Pune (compound)": (
                url,
                {"pageSize": "1000", "filter": "amount:gt:50000:and:city:eq:Pune"},
            ),
        }
        print(f"loaded {args.records} generated records in {load_s:.2f} s")
        print(f"| request ({args.records} records) | median of {args.repeat} (ms) |")
        print("| --- | ---: |")
        for name, (target, params) in cases.items():
            print(f"| {name} | {median_ms(session, target, params, args.repeat):.1f} |")
        server.shutdown()
        app.store.close()


if __name__ == "__main__":
    main()
