"""Benchmark: training throughput and wall time of one 5-fold cross-validation per drug-response model.

    .venv/bin/python benchmarks/drp_speed.py [--profile quick|full] [--device cpu|cuda] [--models DeepDRA ...]

Prints, for each model, the wall time of a full 5-fold cross-validation on CTRP+GDSC (one seed, the chapter's
settings for the profile) and the mean training throughput of its deep-model fits in pairs per second.
Run it on a GPU machine with --device cuda to compare.
"""

from __future__ import annotations

import argparse
import time

from perturbx.datasets.drp import TRAIN_DATASET, load_drp
from perturbx.experiments import drp
from perturbx.runtime import describe_device, select_device
from perturbx.splits import kfold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("smoke", "quick", "full"), default="quick")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--models", nargs="+", default=["gradient_boosting", "deepdra", "cross_attention"],
                        choices=drp.MODELS.ids())
    args = parser.parse_args()
    device = select_device(args.device)
    settings = drp.DRPSettings.for_profile(args.profile, device=device)
    settings.fit.progress = False
    data = load_drp()
    pairs = data.dataset(TRAIN_DATASET)
    print(f"{describe_device(device)}; profile {args.profile}: {settings.n_genes or 'all'} genes per omics block, "
          f"{settings.fit.epochs} epochs (early stopping patience {settings.fit.early_stopping_patience}), "
          f"{len(pairs):,} CTRP+GDSC pairs")
    for model in args.models:
        started = time.perf_counter()
        throughputs = []
        for split_result in _folds(data, pairs, model, settings):
            throughputs += [f.samples_per_second for f in split_result.fits.values()]
        wall = time.perf_counter() - started
        rate = f"{sum(throughputs) / len(throughputs):,.0f} pairs/s" if throughputs else "n/a (not a torch model)"
        print(f"{model:>20}: 5-fold CV wall time {wall:7.1f} s; training throughput {rate}")


def _folds(data, pairs, model, settings):
    for split in kfold(len(pairs), k=5, seed=0, labels=pairs["label"].to_numpy()):
        yield drp.run_split(data, pairs.iloc[split.train], pairs.iloc[split.val], pairs.iloc[split.test], [model],
                            settings, seed=0)


if __name__ == "__main__":
    main()
