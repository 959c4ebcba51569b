"""Benchmark: training throughput and wall time of the drug-response experiments.

    .venv/bin/python benchmarks/drp_speed.py [--profile quick|full] [--device cpu|cuda] [--seeds 10]
                                             [--genes 500|2000|all] [--protocols paper leakage-free]
                                             [--models deepdra cross_attention] [--workers N] [--cv]

For each protocol (``paper``: DeepDRA's code; ``leakage-free``: early stopping on validation), prints the wall time
of the CTRP+GDSC -> CCLE run over ``--seeds`` seeds (the chapter's ten-seed experiment by default) and each deep
model's mean training throughput in pairs per second (validation included), epochs run and seconds per fit.
``--cv`` times one 5-fold cross-validation per model instead (one seed). ``--genes`` overrides the profile's genes
per omics block. Run it on a GPU machine with ``--device cuda`` to compare.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import pandas as pd

from perturbx.datasets.drug_response import TRAIN_DATASET, load_drp
from perturbx.runtime import describe_device, select_device
from perturbx.splits import kfold
from perturbx.studies import drug_response


def ccle_rows(data, settings: drug_response.DRPSettings, models: list[str], protocols: list[str],
              seeds: int) -> list[dict]:
    """One row per protocol and model: wall time of the whole run, and per fit throughput, epochs and seconds."""
    rows = []
    for protocol in protocols:
        started = time.perf_counter()
        ccle = drug_response.cross_dataset(data, models, settings, list(range(seeds)), protocol=protocol,
                                           progress=False)
        wall = time.perf_counter() - started
        for model_id in models:
            fits = [r.outputs[model_id].fit for r in ccle.results.values()]
            rows.append({"protocol": protocol, "model": model_id, "seeds": seeds, "run wall time (s)": wall,
                         "pairs / s": sum(f.samples_per_second for f in fits) / len(fits),
                         "epochs": sum(len(f.history) for f in fits) / len(fits),
                         "s / fit": sum(f.seconds for f in fits) / len(fits)})
    return rows


def cv_rows(data, settings: drug_response.DRPSettings, models: list[str]) -> list[dict]:
    """One row per model: wall time of one 5-fold cross-validation on CTRP+GDSC and its mean throughput."""
    pairs, rows = data.dataset(TRAIN_DATASET), []
    for model_id in models:
        started, fits = time.perf_counter(), []
        for split in kfold(len(pairs), k=5, seed=0, labels=pairs["label"].to_numpy()):
            train, val, test = pairs.iloc[split.train], pairs.iloc[split.val], pairs.iloc[split.test]
            result = drug_response.run_split(data, train, val, test,
                                   [model_id], settings, seed=0)
            fits += list(result.fits.values())
        rows.append({"model": model_id, "5-fold CV wall time (s)": time.perf_counter() - started,
                     "pairs / s": sum(f.samples_per_second for f in fits) / len(fits) if fits else float("nan")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("smoke", "quick", "full"), default="quick")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--genes", default=None, help="genes per omics block: a number or 'all' (default: profile)")
    parser.add_argument("--protocols", nargs="+", default=list(drug_response.PROTOCOLS),
                        choices=list(drug_response.PROTOCOLS))
    parser.add_argument("--models", nargs="+", default=["deepdra", "cross_attention"],
                        choices=drug_response.MODELS.ids("learned"))
    parser.add_argument("--workers", type=int, default=None, help="seeds trained at once (default: the profile's)")
    parser.add_argument("--cv", action="store_true", help="time one 5-fold cross-validation per model instead")
    args = parser.parse_args()
    device = select_device(args.device)
    settings = drug_response.DRPSettings.for_profile(args.profile, device=device)
    if args.genes is not None:
        settings = replace(settings, n_genes=None if args.genes == "all" else int(args.genes))
    if args.workers is not None:
        settings = replace(settings, workers=args.workers)
    settings.fit.progress = settings.paper_fit.progress = False
    data = load_drp()
    print(f"{describe_device(device)}; profile {args.profile}: {settings.n_genes or len(data.genes)} genes per omics "
          f"block; paper protocol {settings.paper_fit.epochs} epochs of batch {settings.paper_fit.batch_size}; "
          f"leakage-free up to {settings.fit.epochs} epochs of batch {settings.fit.batch_size} "
          f"(patience {settings.fit.early_stopping_patience}); {settings.workers} seed(s) at once")
    rows = cv_rows(data, settings, args.models) if args.cv else ccle_rows(data, settings, args.models,
                                                                           args.protocols, args.seeds)
    with pd.option_context("display.width", 200, "display.precision", 1):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
