"""The interpretable-graph chapter's protocol: every model of drug-induced expression on the same splits.

Models (:data:`MODELS`; all predict the change from basal, the predicted profile is basal + change): the
baselines of :mod:`perturbx.experiments.l1000` (no change, the training mean per cell line, ridge, random forest,
gradient boosting, MLP), the ``graph_model`` (:class:`perturbx.models.gnn.PerturbationGNN`) and, on simulated
data only, ``true_mean``: the generator's exact conditional mean, the best any model can do against noisy
replicates (a ceiling, not a competitor). Nothing is fitted on test profiles (basal standardisation, dose/time
scaling, target PCA, feature scaling, early stopping all use the training or validation rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from ..explain import Attributions, attributions
from ..metrics import EXPRESSION_METRICS, compare_models, expression_metrics
from ..models.classical import EXPRESSION_REGRESSORS
from ..models.gnn import GNNConfig, PerturbationGNN, gnn_loss
from ..splits import Split
from ..training import FitConfig, FitResult, fit, to_device
from . import protocol
from .l1000 import BASELINES, Inputs, L1000Context, Prepared, batch, highest_dose_rows, make_split, prepare
from .protocol import ModelOutput, ModelRegistry, ModelSpec, ProfileSettings, SplitResult


@dataclass
class ExpressionSettings(ProfileSettings):
    """How much work one split costs: the graph model's sizes and optimisation, the classical models' sizes."""

    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=60, batch_size=64, lr=1e-3,
                                                             early_stopping_patience=8, plateau_patience=3,
                                                             plateau_factor=0.5))
    gnn: GNNConfig = field(default_factory=GNNConfig)
    n_target_components: int = 32
    n_estimators: int = 200

    @classmethod
    def smoke(cls, device: str = "cpu") -> ExpressionSettings:
        """Seconds on a CPU: tiny graph model, 2 epochs."""
        return cls(FitConfig(epochs=2, batch_size=64, lr=1e-3, device=device, progress=False),
                   GNNConfig(width=16, compound_layers=2, compound_heads=2, transformer_heads=2, head_hidden=64),
                   n_target_components=8, n_estimators=20)

    @classmethod
    def quick(cls, device: str = "cpu") -> ExpressionSettings:
        """Minutes on a laptop CPU."""
        return cls(FitConfig(epochs=20, batch_size=64, lr=1e-3, early_stopping_patience=5, plateau_patience=2,
                             plateau_factor=0.5, device=device),
                   GNNConfig(width=32, transformer_heads=4, head_hidden=256), n_target_components=16,
                   n_estimators=100)

    @classmethod
    def full(cls, device: str = "cpu") -> ExpressionSettings:
        """The book's tables; meant for a GPU."""
        settings = cls()
        settings.fit.device = device
        return settings


def new_graph_model(inputs: Inputs, config: GNNConfig) -> PerturbationGNN:
    """An untrained graph model over the compounds and the gene graph of ``inputs``."""
    graph = inputs.gene_graph
    if graph is None:
        raise ValueError("these inputs have no gene graph; build them with l1000.build_inputs(data, gene_graph)")
    return PerturbationGNN(inputs.graphs, graph.edge_index, graph.edge_weight, graph.n_genes, config)


def fit_graph_model(inputs: Inputs, prepared: Prepared, split: Split, settings: ExpressionSettings,
                    seed: int, description: str = "graph model") -> tuple[PerturbationGNN, FitResult]:
    """Train :class:`PerturbationGNN` on ``split.train`` with early stopping on ``split.val``."""
    torch.manual_seed(seed)
    model = new_graph_model(inputs, settings.gnn)
    config = replace(settings.fit, seed=seed, description=description)
    val = batch(inputs, prepared, split.val) if len(split.val) else None
    return model, fit(model, gnn_loss, batch(inputs, prepared, split.train), val, config)


@torch.no_grad()
def predict_graph_model(model: PerturbationGNN, inputs: Inputs, prepared: Prepared, rows: np.ndarray,
                        batch_size: int = 256) -> np.ndarray:
    """(len(rows), genes) predicted changes, in batches, model in eval mode on its own device."""
    model.eval()
    device = next(model.parameters()).device
    parts = []
    for start in range(0, len(rows), batch_size):
        b = to_device(batch(inputs, prepared, rows[start:start + batch_size]), device)
        parts.append(model(b.compound, b.basal, b.dose, b.time).cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, inputs.n_genes), np.float32)


def _graph_model(context: L1000Context, seed: int) -> ModelOutput:
    split = context.split
    model, result = fit_graph_model(context.inputs, context.prepared, split, context.settings, seed,
                                    f"graph model, {split.kind}, seed {context.seed}")
    return ModelOutput(predict_graph_model(model, context.inputs, context.prepared, split.test), model, result)


@dataclass
class ExpressionContext(L1000Context):
    """:class:`~perturbx.experiments.l1000.L1000Context` plus, on simulated data, the exact mean change of every
    profile's condition (n, genes)."""

    true_change: np.ndarray | None = None


def _true_mean(context: ExpressionContext, seed: int) -> ModelOutput:
    if context.true_change is None:
        raise ValueError("the true mean is known on simulated data only: pass true_change=l1000.true_changes(sim)")
    return ModelOutput(context.true_change[context.split.test])


MODELS = ModelRegistry("graph model", [
    *BASELINES,
    ModelSpec("graph_model", "graph model", _graph_model, "learned",
              "compound GAT + pathway gene graph + dose/time tokens through a Transformer"),
    ModelSpec("true_mean", "true mean (simulator)", _true_mean, "oracle",
              "the simulator's exact conditional mean (a ceiling)"),
])
DEFAULT_MODELS = tuple(MODELS.ids("baseline") + MODELS.ids("learned"))


def run_split(inputs: Inputs, split: Split, settings: ExpressionSettings, seed: int,
              models: Sequence[str] = DEFAULT_MODELS, true_change: np.ndarray | None = None) -> SplitResult:
    """Fit every model id in ``models`` on ``split.train`` and score it on ``split.test``.

    Args:
        true_change: (n, genes) the simulator's exact mean change of each profile's condition; adds the
            ``true_mean`` row.

    Returns:
        :class:`~perturbx.experiments.protocol.SplitResult`; ``metrics`` has one row per (model label, test
        profile) with ``row`` and :data:`~perturbx.metrics.EXPRESSION_METRICS`; ``context`` is the
        :class:`ExpressionContext` (its ``prepared`` scaling is needed to explain the graph model).
    """
    context = ExpressionContext(inputs, prepare(inputs, split.train), split, seed, settings, true_change)
    ids = [*models, "true_mean"] if true_change is not None and "true_mean" not in models else list(models)
    outputs = protocol.run_models(MODELS, ids, context, seed, split.kind)
    data, test = inputs.data, split.test
    frames = [expression_metrics(data.expression[test], data.basal[test] + output.prediction, data.basal[test])
              .assign(model=MODELS.label(model_id), row=test) for model_id, output in outputs.items()]
    return SplitResult(split, seed, pd.concat(frames, ignore_index=True), outputs, context,
                       {i: MODELS.label(i) for i in outputs})


def summarise(result: SplitResult) -> pd.DataFrame:
    """One row per model: mean of each metric over the test profiles, test size, fit-and-predict seconds."""
    means = protocol.mean_by_model(result.metrics, EXPRESSION_METRICS)
    seconds = {result.labels[i]: s for i, s in result.seconds.items()}
    return means.assign(n_test=len(result.split.test), seconds=means["model"].map(seconds).fillna(0.0))


def run_experiments(inputs: Inputs, kinds: Sequence[str], seeds: Sequence[int], settings: ExpressionSettings,
                    models: Sequence[str] = DEFAULT_MODELS, true_change: np.ndarray | None = None,
                    progress: bool = True) -> tuple[pd.DataFrame, dict[tuple[str, int], SplitResult]]:
    """Every split kind x seed (a new split and new model seeds per seed).

    Returns:
        (runs, results): ``runs`` has one row per (split, seed, model) with the mean of each metric over the
        test profiles, the test size and the fit time; ``results`` maps (split kind, seed) -> result.
    """
    def run_one(job: dict) -> SplitResult:
        split = make_split(inputs, job["split"], job["seed"])
        return run_split(inputs, split, settings, job["seed"], models, true_change)

    jobs = [{"split": kind, "seed": seed} for kind in kinds for seed in seeds]
    return protocol.run_jobs(jobs, run_one, summarise, "splits", progress)


def results_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds of each metric per (split, model) (numbers in ``<metric>_mean`` / ``_sd`` too)."""
    return protocol.results_table(runs, ["split", "model"], EXPRESSION_METRICS)


def verdict_lines(table: pd.DataFrame, dataset: str) -> list[str]:
    """One computed sentence per split of a :func:`results_table`: does the graph model beat the per-cell-line mean
    in Pearson of change (:func:`perturbx.metrics.compare_models`), and which classical model is best?"""
    graph, mean = MODELS.label("graph_model"), MODELS.label("cell_line_mean")
    lines = []
    for split, part in table.groupby(level="split", sort=False):
        part = part.droplevel("split")
        classical = part.loc[MODELS.labels(list(EXPRESSION_REGRESSORS)), "pearson_change_mean"]
        lines.append(f"{dataset}, {split}: graph model Pearson of change {part.loc[graph, 'pearson_change_mean']:.3f}; "
                     f"it {compare_models(part, graph, mean, 'pearson_change')} the {mean} "
                     f"({part.loc[mean, 'pearson_change_mean']:.3f}); best classical: {classical.idxmax()} "
                     f"({classical.max():.3f}).")
    return lines


def ceiling_gap_lines(table: pd.DataFrame, dataset: str = "semi-synthetic") -> list[str]:
    """One sentence per split: how far the graph model's mean Pearson of change is below the simulator's."""
    lines = []
    for split, part in table.groupby(level="split", sort=False):
        values = part.droplevel("split")["pearson_change_mean"]
        gap = values[MODELS.label("true_mean")] - values[MODELS.label("graph_model")]
        lines.append(f"{dataset}, {split}: the graph model is {gap:.3f} below the simulator's true mean in Pearson "
                     "of change.")
    return lines


def explain_split(result: SplitResult, per_compound: int = 1, limit: int = 48) -> Attributions:
    """Attributions of the graph model of ``result`` for its test profiles: the ``per_compound`` highest-dose
    profiles of each compound, at most ``limit``."""
    context = result.context
    rows = highest_dose_rows(context.inputs, result.split.test, per_compound, limit)
    return attributions(result.models["graph_model"], context.inputs, context.prepared, rows)
