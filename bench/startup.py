"""Median wall time of `exto --version`, `exto --help` and `python -c "import typer"`.

The three commands run interleaved, round after round, so that machine noise hits them alike;
the figure to read is the ratio to the `import typer` baseline measured in the same run.

Run: python bench/startup.py [--rounds 21]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c 'import typer' (baseline)": [sys.executable, "-c", "import typer"],
    "exto --version": [sys.executable, "-m", "exto_cli", "--version"],
    "exto --help": [sys.executable, "-m", "exto_cli", "--help"],
}


def measure(rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(rounds):
        for name, cmd in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    medians = measure(args.rounds)
    baseline = next(iter(medians.values()))
    print(f"| command | median of {args.rounds} (ms) | ratio to baseline |")
    print("| --- | ---: | ---: |")
    for name, value in medians.items():
        print(f"| `{name}` | {value * 1000:.0f} | {value / baseline:.2f} |")


if __name__ == "__main__":
    main()
