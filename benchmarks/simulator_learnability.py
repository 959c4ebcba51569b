"""Benchmark: is the sparse LINCS-scale simulator learnable from structure on unseen compounds?

    .venv/bin/python benchmarks/simulator_learnability.py [--profile smoke|quick|full] [--seed 0]

Draws :func:`perturbx.datasets.simulate.lincs_scale_config` for the profile and prints
:func:`perturbx.evaluation.learnability.learnability_table` (see that module for what (a)-(d) are) with the sizes and
times.
"""

from __future__ import annotations

import argparse
import time

from perturbx.datasets.simulate import lincs_scale_config, simulate
from perturbx.evaluation.learnability import learnability_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("smoke", "quick", "full"), default="quick")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    simulation = simulate(lincs_scale_config(args.profile, seed=args.seed))
    meta = simulation.data.metadata
    print(f"profile {args.profile}, seed {args.seed}: simulated in {time.perf_counter() - started:.1f} s; "
          f"{meta['compound_id'].nunique():,} compounds, {len(simulation.truth.conditions):,} conditions, "
          f"{len(meta):,} profiles, {meta['cell_id'].nunique()} cell lines")
    table = learnability_table(simulation, seed=args.seed)
    print(f"unseen-compound split: train {table.attrs['train']}, test {table.attrs['test']}")
    print(f"{'':36s} Pearson of change: vs observed (profiles, compounds), vs true mean")
    for row in table.itertuples():
        print(f"{row.predictor:36s} {row.r_profiles:.3f} {row.r_compounds:.3f} {row.r_true_mean:.3f} "
              f"({row.seconds:.1f} s{', ' + row.note if row.note else ''})")
    print(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
