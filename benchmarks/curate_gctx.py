"""Benchmark: curate a 100,000-profile x 12,328-gene CLUE-layout GCTX to landmark arrays.

Prints the wall time and peak RSS of `perturbx lincs curate` run in a fresh process (target on a 2-core machine:
under 30 s and under 2 GiB), and the time of a second run that finds its cached result.

    .venv/bin/python benchmarks/curate_gctx.py [--profiles 100000] [--workdir DIR]

The input is drawn once by the semi-synthetic generator (perturbx.datasets.simulate), written in the CLUE layout by
perturbx.datasets.cmap_write.write_clue_gctx (about 4.9 GB for the default size), and reused by later runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from perturbx.datasets import cache_dir
from perturbx.datasets.cmap_write import write_clue_gctx
from perturbx.datasets.simulate import SimulationConfig, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=12_328)
    parser.add_argument("--workdir", type=Path, default=cache_dir() / "benchmarks" / "curate_gctx")
    args = parser.parse_args()

    folder = args.workdir / f"clue_n{args.profiles}x{args.genes}"
    matrix = folder / f"level3_sim_n{args.profiles}x{args.genes}.gctx"
    if not matrix.exists():
        started = time.perf_counter()
        config = SimulationConfig(n_compounds=1000, n_cells=30, n_replicates=2, n_conditions=args.profiles // 2)
        simulation = simulate(config)
        write_clue_gctx(simulation.data.expression, simulation.data.metadata, folder, n_genes=args.genes)
        print(f"input written in {time.perf_counter() - started:.1f} s: {matrix} "
              f"({matrix.stat().st_size / 2**30:.2f} GiB)")
    out = args.workdir / "curated"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "perturbx.cli", "lincs", "curate", "--matrix", str(matrix),
               "--meta", str(folder / "siginfo_beta.txt"), "--compounds", str(folder / "compoundinfo_beta.txt"),
               "--genes", str(folder / "geneinfo_beta.txt"), "--level", "3", "--out", str(out)]
    for label in ("cold (no cached result)", "warm (cached result reused)"):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux
        print(f"curate {args.profiles:,} x {args.genes:,} [{label}]: wall {wall:.1f} s, "
              f"peak RSS of the largest run so far {peak_gib:.2f} GiB")
    print(f"machine: {os.cpu_count()} cores; targets: < 30 s and < 2 GiB")


if __name__ == "__main__":
    main()
