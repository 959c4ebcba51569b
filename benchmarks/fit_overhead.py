"""Benchmark: the overhead of the one fit loop (perturbx.training.fit) against a plain PyTorch loop, per model.

    .venv/bin/python benchmarks/fit_overhead.py [--profile quick|full] [--device cpu|cuda] [--epochs 3]
                                                [--models deepdra cross_attention encoder_decoder diffusion graph_model]

For each deep model of chapters 02-04, the model's estimator builds its network, loss and typed training batch as
in the chapter (the profile's sizes and batch size; DRP on CTRP+GDSC pairs, the L1000 models on the smoke-size
LINCS-scale simulator). That network is then trained for ``--epochs`` epochs twice from the same initial weights:
by ``training.fit`` without validation, and by a plain loop over the same module, loss, batch size and in-memory
tensors (torch's default Adam, randperm batches, the same gradient clipping), each after a warm-up epoch. Prints
the training samples per second of each and their ratio (target: fit >= 0.95 of the plain loop), and the seconds a
validation pass adds per epoch in ``fit``. One run per model: compare ratios, not the absolute speeds of a busy
machine.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from dataclasses import replace

import pandas as pd
import torch

from perturbx import training
from perturbx.models import drug_response as drp_models
from perturbx.models import generative as generative_models
from perturbx.models import gnn as gnn_models
from perturbx.runtime import describe_device, select_device
from perturbx.studies import drug_response, generative, graph_model, l1000_data
from perturbx.tasks.drug_cell_pairs import PairFold, prepare_features


class _Captured(Exception):
    """Raised by the recorder that stands in for training.fit: the estimator's own training is not needed."""


DRP_PAIRS = 10_000  # CTRP+GDSC training pairs used (throughput does not depend on how many)


def captured_fit(module, run_estimator: Callable[[], object]) -> dict:
    """The arguments the estimator passes to ``fit`` (its module's name for training.fit) and the network's initial
    weights; the estimator's own fit is skipped (returns at once)."""
    captured = {}

    def recorder(model, loss_fn, train, val=None, config=None, epoch_metrics=None):
        captured.update(model=model, initial=copy.deepcopy(model.state_dict()), loss_fn=loss_fn, train=train,
                        val=val, config=config)
        raise _Captured  # the estimator's fit ends here

    original, module.fit = module.fit, recorder
    try:
        run_estimator()
    except _Captured:
        pass
    finally:
        module.fit = original
    return captured


def plain_loop(model, loss_fn, train, config: training.FitConfig, epochs: int) -> float:
    """Seconds of ``epochs`` epochs of a textbook loop over the in-memory ``train`` tensors."""
    device = torch.device(config.device)
    model.to(device).train()
    tensors = [t.to(device) for t in train]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator, n = torch.Generator().manual_seed(0), len(tensors[0])
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, config.batch_size):
            rows = order[start:start + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model, type(train)(*[t[rows] for t in tensors]))["loss"].backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def measure(name: str, captured: dict, epochs: int) -> dict:
    """Throughput of training.fit and of the plain loop on one captured model, and fit's validation seconds."""
    model, config, train = captured["model"], captured["config"], captured["train"]
    config = replace(config, epochs=epochs, early_stopping_patience=None, progress=False)
    n = len(train[0]) * epochs
    training.fit(model, captured["loss_fn"], train, None, replace(config, epochs=1))  # warm-up: allocator, kernels
    plain_loop(model, captured["loss_fn"], train, config, 1)
    model.load_state_dict(captured["initial"])
    fitted = training.fit(model, captured["loss_fn"], train, None, config).seconds
    validated = fitted
    if captured["val"] is not None:
        model.load_state_dict(captured["initial"])
        validated = training.fit(model, captured["loss_fn"], train, captured["val"], config).seconds
    model.load_state_dict(captured["initial"])
    plain = plain_loop(model, captured["loss_fn"], train, config, epochs)
    return {"model": name, "batch size": config.batch_size, "training rows": len(train[0]), "epochs": epochs,
            "fit samples / s": n / fitted, "plain samples / s": n / plain, "fit / plain": plain / fitted,
            "validation s / epoch": (validated - fitted) / epochs}


def drp_runs(profile: str, device: str, models: list[str]) -> dict[str, Callable[[], dict]]:
    """Per DRP architecture, a function that captures its fit on CTRP+GDSC pairs at the profile's sizes."""
    settings = drug_response.DRPSettings.for_profile(profile, device)
    data = drug_response.load_data()
    pairs = data.dataset(drug_response.TRAIN_DATASET)
    pairs = pairs.sample(min(DRP_PAIRS, len(pairs)), random_state=0)
    train, val = pairs.iloc[: len(pairs) * 9 // 10], pairs.iloc[len(pairs) * 9 // 10:]
    fold = PairFold(prepare_features(data, train, settings.n_genes), train, val)
    return {name: (lambda name=name: captured_fit(drp_models, lambda: drp_models.DRPEstimator(
        name, settings.fit).fit(fold, seed=0))) for name in models if name in drp_models.ARCHITECTURES}


def l1000_runs(profile: str, device: str, models: list[str]) -> dict[str, Callable[[], dict]]:
    """Per L1000 network, a function that captures its fit on the smoke-size simulator at the profile's sizes."""
    gene_sets = l1000_data.landmark_gene_sets()
    _, inputs = l1000_data.simulated_benchmark("smoke", seed=0, graph=gene_sets.graph)
    split = inputs.split("random", seed=0)
    runs = {}
    if "graph_model" in models:
        graph = graph_model.graph_estimator(graph_model.ExpressionSettings.for_profile(profile, device))
        runs["graph_model"] = lambda: captured_fit(gnn_models, lambda: graph.fit(inputs.fold(split), seed=0))
    settings = generative.GenerativeSettings.for_profile(profile, device)
    for network in ("encoder_decoder", "diffusion"):
        if network in models:
            estimator = generative.generative_estimator(network, settings)
            runs[network] = (lambda estimator=estimator: captured_fit(generative_models, lambda: estimator.fit(
                inputs.fold(split, standardise_target=True), seed=0)))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    parser.add_argument("--device", default=None, choices=("cpu", "cuda"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", nargs="+",
                        default=["deepdra", "cross_attention", "encoder_decoder", "diffusion", "graph_model"])
    arguments = parser.parse_args()
    device = select_device(arguments.device)
    print(f"{describe_device(device)}; profile {arguments.profile}; {arguments.epochs} epochs per loop")
    runs = drp_runs(arguments.profile, device, arguments.models) | l1000_runs(arguments.profile, device,
                                                                              arguments.models)
    rows = [measure(name, capture(), arguments.epochs) for name, capture in runs.items()]
    with pd.option_context("display.width", 160, "display.max_columns", None):
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda value: f"{value:,.2f}"))


if __name__ == "__main__":
    main()
