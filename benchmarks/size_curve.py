"""Benchmark report: run time against interval width for one headline comparison per chapter.

    .venv/bin/python benchmarks/size_curve.py RESULTS_DIR [RESULTS_DIR ...] [--seeds 3 5 10 20]

Each ``RESULTS_DIR`` is a results folder that ``perturbx book run`` wrote (``book/results`` for the published
run, or the ``book/results`` of a clone that ran another profile). For every chapter in :data:`HEADLINES` found
there, it prints the measured point of each run: profile, seeds, wall time of the chapter's kernel (minutes), the
paired difference of the headline comparison and the width of its 95 % interval (``claims_evidence.csv``). It then
projects the width for other seed counts from the SD of the largest run's paired differences,
``2 t(n - 1) sd / sqrt(n)``, with the time scaled in proportion to the seeds (an upper bound: data loading and
the unseeded parts of the chapter do not grow). The measured rows are measurements; the projected rows say what
more seeds would buy at that run's size.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from perturbx.book.chapter import EVIDENCE_TABLE
from perturbx.book.reproduction import Results


class Headline(NamedTuple):
    """One comparison of a claim: the claim id, text that picks its row of evidence, and the metric."""

    claim_id: str
    contains: str
    metric: str


HEADLINES = {
    "02_drp": Headline("ccle_beats_deepdra", "(paper protocol)", "roc_auc"),
    "03_gnn": Headline("generalises_to_unseen", "unseen compound: graph model does", "pearson_change"),
    "04_diffusion": Headline("mean_beats_cell_line_mean", "held-out dose: diffusion", "pearson_change"),
}


def measured(results: Results, chapter: str, headline: Headline) -> dict | None:
    """The headline comparison of ``chapter`` in one results folder (None where the chapter has no evidence
    table or the comparison is missing)."""
    if not (results.folder / chapter / f"{EVIDENCE_TABLE}.csv").exists():
        return None
    evidence = results.table(chapter, EVIDENCE_TABLE)
    rows = evidence[(evidence["claim_id"] == headline.claim_id) & (evidence["metric"] == headline.metric)
                    & evidence["evidence"].str.contains(headline.contains, regex=False)]
    if rows.empty:
        return None
    row, record = rows.iloc[0], results.provenance[chapter]
    return {"chapter": chapter, "profile": record["profile"], "kind": "measured", "seeds": int(row["pairs"]),
            "minutes": record["kernel_wall_time_s"] / 60, "difference": row["difference"], "sd": row["sd"],
            "ci_width": row["ci_high"] - row["ci_low"], "comparison": row["evidence"].split(" (paired")[0]}


def projected(largest: dict, seed_counts: list[int]) -> list[dict]:
    """Widths for ``seed_counts`` from the SD of ``largest``'s paired differences, time scaled by seeds."""
    return [largest | {"kind": "projected", "seeds": n, "minutes": largest["minutes"] * n / largest["seeds"],
                       "ci_width": 2 * stats.t.ppf(0.975, n - 1) * largest["sd"] / np.sqrt(n)}
            for n in seed_counts if n >= 2 and n != largest["seeds"]]


def size_curve(folders: list[Path], seed_counts: list[int]) -> pd.DataFrame:
    """Measured and projected rows for every chapter of :data:`HEADLINES` in ``folders``."""
    frames = []
    for chapter, headline in HEADLINES.items():
        points = [point for folder in folders if (point := measured(Results.load(folder), chapter, headline))]
        if points:
            largest = max(points, key=lambda point: (point["minutes"], point["seeds"]))
            frames.append(pd.DataFrame(points + projected(largest, seed_counts)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="results folders written by perturbx book run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10, 20], help="seed counts to project")
    arguments = parser.parse_args()
    table = size_curve(arguments.folders, arguments.seeds)
    if table.empty:
        raise SystemExit(f"no {EVIDENCE_TABLE}.csv with a headline comparison under {arguments.folders}")
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table.sort_values(["chapter", "kind", "minutes"]).to_string(index=False, float_format="{:.3f}".format))


if __name__ == "__main__":
    main()
