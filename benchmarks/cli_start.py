"""Benchmark: how long `perturbx --help` takes to start, beside a bare Python interpreter, in the same run.

    .venv/bin/python benchmarks/cli_start.py [--repeats 10]

Prints the fastest and the median wall time of ``python -c pass``, ``perturbx --help`` and ``perturbx data list``
(each a fresh process) and their ratios to the bare interpreter. Target: `perturbx --help` within 1 s, or within 8
times the bare interpreter's start.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall_times(command: list[str], repeats: int) -> list[float]:
    """Seconds of ``repeats`` fresh runs of ``command`` (output discarded)."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "perturbx.cli"]
    commands = {"python -c pass": [sys.executable, "-c", "pass"], "perturbx --help": [*cli, "--help"],
                "perturbx data list": [*cli, "data", "list"]}
    bare = None
    for name, command in commands.items():
        seconds = wall_times(command, args.repeats)
        fastest, median = min(seconds), statistics.median(seconds)
        bare = bare or median
        print(f"{name:20s} fastest {fastest:6.3f} s, median {median:6.3f} s ({median / bare:4.1f} x bare python, "
              f"{args.repeats} runs)")


if __name__ == "__main__":
    main()
