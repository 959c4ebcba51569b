"""Benchmark report: each chapter's wall time per profile and device against its budget, from the runs log.

    .venv/bin/python benchmarks/chapter_times.py [--runs book/results/runs.csv]

Reads the runs the runner logged (``book/results/runs.csv``; every ``perturbx book run`` appends to it) and prints,
for the latest successful run of each chapter, profile and device kind: the minutes it took, the commit and device
it ran on, and whether it is within the profile's budget (:data:`perturbx.profiles.PROFILE_BUDGETS`: 2 CPU cores,
or one GPU for ``cuda`` runs). A run on a machine with other work, or with more or fewer cores, is not a
measurement of the budget; the device name column says where each ran.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from perturbx.book.chapter import RESULTS_DIR, RUNS_LOG
from perturbx.book.reproduction import budget_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=RESULTS_DIR / RUNS_LOG)
    arguments = parser.parse_args()
    table = budget_table(pd.read_csv(arguments.runs))
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.max_colwidth", 48):
        print(table.to_string(index=False, float_format=lambda value: f"{value:.1f}"))
    over = table[table["within budget"] == False]  # noqa: E712 (NA rows are neither)
    named = ", ".join(f"{r.chapter} {r.profile} on {r.device}" for r in over.itertuples())
    print(f"\n{len(over)} of {len(table)} latest runs over their profile's budget" + (f": {named}" if named else ""))


if __name__ == "__main__":
    main()
