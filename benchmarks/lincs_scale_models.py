"""Benchmark: every learned model of chapters 03-04 on an unseen-compound split of the LINCS-scale simulator.

    .venv/bin/python benchmarks/lincs_scale_models.py [--profile smoke|quick] [--seed 0] [--conditions 400]
                                                      [--temperatures 1,0.7,0.5,0] [--models graph,ed,diffusion]

Simulates ``lincs_scale_config(profile, seed)``, makes the unseen-compound split of ``seed`` (its validation part
holds out other compounds, like the test part) and prints, for the per-cell-line mean, ridge, the graph model, the
encoder-decoder, the diffusion model and the simulator's true mean: the mean Pearson of the predicted change with
the observed change on the test profiles (the generative models: the mean of ``n_samples`` samples of each test
condition, scored on ``--conditions`` conditions drawn at random, next to the true mean on the same ones), and for
the trained networks the best epoch, the epochs run, seconds per epoch and per fit. The diffusion model is sampled
at each ``--temperatures`` (start and added noise scaled, :meth:`ConditionalDiffusion.sample`) on the validation
and the test conditions, with the spread ratio (sample SD / true SD, mean over genes and conditions): choose the
temperature on the validation rows, read its test row. Sizes and optimisation are the chapters' own profile
settings (``ExpressionSettings`` / ``GenerativeSettings``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from perturbx.datasets import fetch
from perturbx.datasets.cmap import landmark_genes
from perturbx.datasets.simulate import lincs_scale_config, simulate
from perturbx.evaluation.metrics import pearson_rows, spread_ratio
from perturbx.pathways import gene_graph, read_gmt
from perturbx.studies import generative, graph_model, l1000_baselines
from perturbx.tasks import l1000


def _pearson(predicted: np.ndarray, observed: np.ndarray) -> float:
    """Mean over rows of the Pearson of predicted with observed change, both (n, genes) log2 units."""
    return float(np.nanmean(pearson_rows(predicted, observed)))


def _fit_row(model: str, result) -> dict:
    """Best epoch, epochs run, seconds per epoch and per fit of a :class:`~perturbx.training.FitReport`."""
    epochs = len(result.history)
    return {"model": model, "best_epoch": result.best_epoch, "epochs": epochs,
            "s_per_epoch": result.seconds / epochs, "s_fit": result.seconds}


def _sampled(model, inputs, prepared, rows: np.ndarray, truth: l1000.Truth, n_samples: int,
             **sampling) -> tuple[float, float]:
    """(Pearson of the sample mean with the observed change, spread ratio) over the conditions of ``rows``
    (one profile each, (len(rows),) positions)."""
    means, spreads = np.zeros((len(rows), inputs.n_genes)), []
    true_sd = truth.moments(rows)[1]
    for part, samples in generative.generate(model, inputs, prepared, rows, n_samples, **sampling):
        means[part] = samples.mean(axis=1)
        spreads += [spread_ratio(s, sd) for s, sd in zip(samples, true_sd[part])] if n_samples > 1 else []
    return _pearson(means, inputs.data.change[rows]), float(np.mean(spreads)) if spreads else float("nan")


def _condition_rows(inputs, rows: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """One profile per condition of ``rows``, at most ``limit`` conditions drawn at random (sorted positions)."""
    first = l1000.test_conditions(inputs, rows)["row"].to_numpy()
    if len(first) > limit:
        first = np.random.default_rng(seed).choice(first, limit, replace=False)
    return np.sort(first)


def point_models(inputs, split, true_change: np.ndarray, settings: graph_model.ExpressionSettings,
                 models: set[str], seed: int) -> tuple[list[dict], list[dict]]:
    """Scores (and fit rows) of the per-cell-line mean, ridge, the graph model and the true mean on ``split.test``."""
    context = l1000_baselines.L1000Context(inputs, l1000.prepare(inputs, split.train), split, seed, settings)
    observed, scores, fits = inputs.data.change[split.test], [], []
    for model_id in ("cell_line_mean", "ridge"):
        started = time.perf_counter()
        predicted = graph_model.MODELS[model_id].run(context, seed).prediction
        scores.append({"model": model_id, "rows": "test", "pearson_change": _pearson(predicted, observed),
                       "seconds": time.perf_counter() - started})
    if "graph" in models:
        estimator = graph_model.graph_estimator(settings)
        result = estimator.fit(context.fold, seed)
        predicted = estimator.predict(context.fold, split.test)
        scores.append({"model": "graph_model", "rows": "test", "pearson_change": _pearson(predicted, observed),
                       "seconds": result.seconds})
        fits.append(_fit_row("graph_model", result))
    scores.append({"model": "true_mean", "rows": "test",
                   "pearson_change": _pearson(true_change[split.test], observed)})
    return scores, fits


def generative_models(inputs, split, simulation, settings: generative.GenerativeSettings, models: set[str],
                      temperatures: list[float], limit: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Scores of the encoder-decoder (sample mean) and of the diffusion model at each temperature, on validation
    and test conditions, with the true mean on the same conditions; fit rows of both networks."""
    fold, truth = inputs.fold(split, standardise_target=True), l1000.Truth(simulation, settings.n_reference)
    prepared = fold.generative
    true_change = l1000.true_changes(simulation)
    parts = {"val": _condition_rows(inputs, split.val, limit, seed), "test": _condition_rows(inputs, split.test,
                                                                                             limit, seed)}
    scores = [{"model": "true_mean", "rows": f"{name} conditions", "pearson_change": _pearson(
        true_change[rows], inputs.data.change[rows])} for name, rows in parts.items()]
    fits, n = [], settings.n_samples
    grid = {"encoder_decoder": [("encoder-decoder", {"from_variance": False})],
            "diffusion": [(f"diffusion T={t:g}", {"method": "ddim", "steps": settings.ddim_steps,
                                                   "guidance": settings.guidance, "temperature": t})
                          for t in temperatures]}
    for network in (k for k, key in (("encoder_decoder", "ed"), ("diffusion", "diffusion")) if key in models):
        estimator = generative.generative_estimator(network, settings)
        result, model = estimator.fit(fold, seed, network), estimator.network
        fits.append(_fit_row(network, result))
        for label, sampling in grid[network]:
            for name, rows in parts.items():
                r, spread = _sampled(model, inputs, prepared, rows, truth, n, **sampling)
                scores.append({"model": label, "rows": f"{name} conditions", "pearson_change": r,
                               "spread_ratio": spread})
    return scores, fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("smoke", "quick"), default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conditions", type=int, default=400)
    parser.add_argument("--temperatures", default="1,0.7,0.5,0")
    parser.add_argument("--models", default="graph,ed,diffusion")
    args = parser.parse_args()
    torch.set_num_threads(1)
    models, temperatures = set(args.models.split(",")), [float(t) for t in args.temperatures.split(",")]
    simulation = simulate(lincs_scale_config(args.profile, seed=args.seed))
    graph = gene_graph(read_gmt(fetch("reactome_pathways")), landmark_genes(), max_pathway_size=100,
                       max_neighbours=16)
    inputs = l1000.build_inputs(simulation.data, graph)
    split = l1000.make_split(inputs, "unseen compound", args.seed)
    print(f"{len(simulation.data):,} profiles; train / val / test {len(split.train):,} / {len(split.val):,} / "
          f"{len(split.test):,}")
    settings = generative.GenerativeSettings.for_profile(args.profile)
    settings.diffusion_fit.progress = settings.encoder_decoder_fit.progress = settings.expression.fit.progress = False
    scores, fits = point_models(inputs, split, l1000.true_changes(simulation), settings.expression, models, args.seed)
    more_scores, more_fits = generative_models(inputs, split, simulation, settings, models, temperatures,
                                               args.conditions, args.seed)
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(pd.DataFrame(scores + more_scores).to_string(index=False))
        print(pd.DataFrame(fits + more_fits).to_string(index=False))


if __name__ == "__main__":
    main()
