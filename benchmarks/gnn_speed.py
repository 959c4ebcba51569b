"""Benchmark: training and prediction throughput of the interpretable graph model, and the smoke chapter's time.

    .venv/bin/python benchmarks/gnn_speed.py [--profile quick|full] [--device cpu|cuda] [--epochs 3]
                                             [--smoke-chapter]

Trains the graph model of chapter 03 (the profile's sizes) for a fixed number of epochs, without early stopping,
on the semi-synthetic benchmark of that profile, and prints profiles per second for training (forward + backward
+ optimiser step) and for prediction. ``--smoke-chapter`` also executes ``book/03_gnn.ipynb`` in the smoke profile
with papermill (into a temporary file) and prints its wall time (target: under 3 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from perturbx.book.runner import time_chapter
from perturbx.datasets import fetch
from perturbx.datasets.cmap import landmark_genes
from perturbx.datasets.simulate import simulate
from perturbx.pathways import gene_graph, read_gmt
from perturbx.runtime import describe_device, select_device
from perturbx.studies import graph_model
from perturbx.tasks import l1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("smoke", "quick", "full"), default="quick")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--smoke-chapter", action="store_true")
    args = parser.parse_args()
    device = select_device(args.device)
    settings = graph_model.ExpressionSettings.for_profile(args.profile, device=device)
    settings.fit.epochs, settings.fit.early_stopping_patience, settings.fit.progress = args.epochs, None, False

    simulation = simulate(l1000.simulation_for(args.profile))
    inputs = l1000.build_inputs(simulation.data, gene_graph(read_gmt(fetch("reactome_pathways")),
                                                                 landmark_genes()))
    split = l1000.make_split(inputs, "random", seed=0)
    split = type(split)(split.train, np.array([], dtype=int), split.test, split.kind)  # no validation passes
    fold = inputs.fold(split)
    print(f"{describe_device(device)}; profile {args.profile}: {len(split.train):,} training profiles, "
          f"{args.epochs} epochs, batch {settings.fit.batch_size}, {settings.gnn}")
    estimator = graph_model.graph_estimator(settings)
    result = estimator.fit(fold, seed=0)
    parameters = sum(p.numel() for p in estimator.network.parameters())
    print(f"graph model ({parameters:,} parameters): training {result.samples_per_second:,.0f} profiles/s "
          f"({result.seconds / args.epochs:.1f} s per epoch)")
    estimator.predict(fold, split.test[:256])  # warm-up
    started = time.perf_counter()
    estimator.predict(fold, split.test)
    print(f"prediction: {len(split.test) / (time.perf_counter() - started):,.0f} profiles/s "
          f"({len(split.test):,} test profiles)")
    if args.smoke_chapter:
        print(f"chapter 03 in the smoke profile: {time_chapter('03_gnn'):.1f} s wall time")


if __name__ == "__main__":
    main()
