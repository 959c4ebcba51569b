"""Benchmark: wall time of the real-data readers and the smoke simulator (what unit tests must not assert).

    .venv/bin/python benchmarks/reader_speed.py [--repeats 3]

Needs the registered files (``PERTURBX_DATA_MIRROR`` or a filled cache). Prints, for each step, the fastest and the
slowest of ``--repeats`` runs in seconds: the SKBR3 PharmacoSet, the DrugBank consensus tables with 150 signatures
curated, the two new plates (CPC006 A375, DPK.CP003 PC3 joined to its annotations) and the smoke LINCS-scale
simulator. Steps read from the cache after the first repeat where the readers cache.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from perturbx.datasets import fetch
from perturbx.datasets.cmap import read_matrix, read_table
from perturbx.datasets.consensus import curate_consensus, read_signature_table, read_structure_table
from perturbx.datasets.lincs import curate, curate_well_annotated
from perturbx.datasets.pharmacoset import read_pharmacoset
from perturbx.datasets.simulate import lincs_scale_config, simulate


def consensus_150() -> None:
    signatures = read_signature_table(fetch("lincs_consensus_drugbank"))
    structures = read_structure_table(fetch("drugbank_structures"))
    curate_consensus(signatures.iloc[:150], structures, source="lincs_consensus_drugbank")


def replicate_plate() -> None:
    annotations = fetch("l1000_replicate_pc3_annotations")
    curate_well_annotated(read_matrix(fetch("l1000_replicate_pc3_plate")), read_table(annotations), annotations.name)


STEPS: dict[str, Callable[[], object]] = {
    "SKBR3 PharmacoSet (read_pharmacoset)": read_pharmacoset,
    "DrugBank consensus, 150 curated": consensus_150,
    "CPC006 A375 plate (read + curate)": lambda: curate(read_matrix(fetch("l1000_level3_a375_6h_plate"))),
    "DPK.CP003 PC3 plate (read + join + curate)": replicate_plate,
    "LINCS-scale simulator, smoke": lambda: simulate(lincs_scale_config("smoke", seed=0)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name, step in STEPS.items():
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - started)
        print(f"{name:45s} fastest {min(seconds):6.2f} s, slowest {max(seconds):6.2f} s ({args.repeats} runs)")


if __name__ == "__main__":
    main()
