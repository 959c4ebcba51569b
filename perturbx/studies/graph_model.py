"""The interpretable-graph chapter's protocol: every model of drug-induced expression on the same splits.

Models (:data:`MODELS`; all predict the change from basal, the predicted profile is basal + change): the
baselines of :mod:`perturbx.tasks.l1000` (no change, the training mean per cell line, ridge, random forest,
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

from .. import chem, papers
from ..evaluation import explain
from ..evaluation.claims import Claim, Evidence
from ..evaluation.explain import Attributions, attributions
from ..evaluation.metrics import EXPRESSION_METRICS, expression_metrics
from ..models.classical import EXPRESSION_REGRESSORS
from ..models.gnn import TOKEN_NAMES, GNNConfig, GraphModelEstimator
from ..runtime import parallel_jobs
from ..splits import Split
from ..tasks.l1000 import Inputs, highest_dose_rows, make_split, prepare
from ..training import FitConfig
from . import protocol, signatures
from .l1000_baselines import BASELINES, L1000Context
from .protocol import ModelOutput, ModelRegistry, ModelSpec, ProfileSettings, SplitResult

# What chapter 03 shows of the layers below, under the study's name: a compound's graph (and the error a broken
# SMILES gives), pathways ranked by attribution, and the recovery of the simulator's known causes.
molecule_graph = chem.molecule_graph
InvalidSmilesError = chem.InvalidSmilesError
pathway_importance = explain.pathway_importance
recovery_table = explain.recovery_table


@dataclass
class ExpressionSettings(ProfileSettings):
    """How much work one split costs: the graph model's sizes and optimisation, the classical models' sizes.

    The graph model's budget is also counted in optimiser steps (:func:`perturbx.training.step_budget`): the epochs
    are raised to give at least ``min_steps`` steps and the early-stopping patience to wait ``min_patience_steps``,
    so that a batch sized for the LINCS-scale simulator (~12,000 training profiles) still trains a small real
    plate (a few hundred profiles) for as many steps.
    """

    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=120, batch_size=256, lr=2e-3, weight_decay=1e-5,
                                                             early_stopping_patience=6, plateau_patience=2,
                                                             plateau_factor=0.5))
    gnn: GNNConfig = field(default_factory=GNNConfig)
    n_target_components: int = 32
    n_estimators: int = 200
    min_steps: int = 300
    min_patience_steps: int = 100
    workers: int = 1  # jobs (splits x seeds) run at once, each in its own process (protocol.run_jobs)

    @classmethod
    def smoke(cls, device: str = "cpu") -> ExpressionSettings:
        """Seconds on a CPU: tiny graph model, 2 epochs."""
        return cls(FitConfig(epochs=2, batch_size=64, lr=1e-3, device=device, progress=False),
                   GNNConfig(width=16, compound_layers=2, compound_heads=2, transformer_heads=2, head_hidden=64),
                   n_target_components=8, n_estimators=20, min_steps=0, min_patience_steps=0)

    @classmethod
    def quick(cls, device: str = "cpu") -> ExpressionSettings:
        """Minutes on 2 CPU cores: the full profile's graph model on the quick simulator, smaller forests."""
        return replace(cls.full(device), n_estimators=30)

    @classmethod
    def full(cls, device: str = "cpu") -> ExpressionSettings:
        """The published tables: on the full LINCS-scale simulator (~12,000 training profiles, batches of 256)
        ~7 s per epoch on one core, best validation epoch ~13, early stop at ~16: ~2 minutes per fit."""
        return cls(FitConfig(epochs=60, batch_size=256, lr=3e-3, weight_decay=1e-5, early_stopping_patience=3,
                             plateau_patience=2, plateau_factor=0.5, device=device),
                   GNNConfig(width=32, transformer_heads=4, head_hidden=256), n_target_components=16,
                   n_estimators=50, min_steps=200, min_patience_steps=60, workers=parallel_jobs(device))


def graph_estimator(settings: ExpressionSettings) -> GraphModelEstimator:
    """An untrained graph-model estimator with the sizes and optimisation of ``settings``."""
    return GraphModelEstimator(settings.gnn, settings.fit, settings.min_steps, settings.min_patience_steps)


def _graph_model(context: L1000Context, seed: int) -> ModelOutput:
    split, fold, estimator = context.split, context.fold, graph_estimator(context.settings)
    report = estimator.fit(fold, seed, f"graph model, {split.kind}, seed {context.seed}")
    return ModelOutput(estimator.predict(fold, split.test), estimator.network, report, estimator=estimator)


@dataclass
class ExpressionContext(L1000Context):
    """:class:`~perturbx.studies.l1000_baselines.L1000Context` plus, on simulated data, the exact mean change of every
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
        :class:`~perturbx.studies.protocol.SplitResult`; ``metrics`` has one row per (model id, test
        profile) with ``row`` and :data:`~perturbx.evaluation.metrics.EXPRESSION_METRICS`; ``context`` is the
        :class:`ExpressionContext` (its ``prepared`` scaling is needed to explain the graph model).
    """
    context = ExpressionContext(inputs, prepare(inputs, split.train), split, seed, settings, true_change)
    ids = [*models, "true_mean"] if true_change is not None and "true_mean" not in models else list(models)
    outputs = protocol.run_models(MODELS, ids, context, seed, split.kind)
    data, test = inputs.data, split.test
    frames = [expression_metrics(data.expression[test], data.basal[test] + output.prediction, data.basal[test])
              .assign(model=model_id, row=test) for model_id, output in outputs.items()]
    return SplitResult(split, seed, pd.concat(frames, ignore_index=True), outputs, context)


def summarise(result: SplitResult) -> pd.DataFrame:
    """One row per model (``model``: its id): mean of each metric over the test profiles, test size,
    fit-and-predict seconds."""
    means = protocol.mean_by_model(result.metrics, EXPRESSION_METRICS)
    means = means.assign(n_test=len(result.split.test), seconds=means["model"].map(result.seconds).fillna(0.0))
    return protocol.with_fit_epochs(means, result)


def run_experiments(inputs: Inputs, kinds: Sequence[str], seeds: Sequence[int], settings: ExpressionSettings,
                    models: Sequence[str] = DEFAULT_MODELS, true_change: np.ndarray | None = None,
                    progress: bool = True) -> tuple[pd.DataFrame, dict[tuple[str, int], SplitResult]]:
    """Every split kind x seed (a new split and new model seeds per seed).

    Returns:
        (runs, results): ``runs`` has one row per (split, seed, model id) with the mean of each metric over the
        test profiles, the test size and the fit time; ``results`` maps (split kind, seed) -> result.
    """
    def run_one(job: dict) -> SplitResult:
        split = make_split(inputs, job["split"], job["seed"])
        return run_split(inputs, split, settings, job["seed"], models, true_change)

    jobs = [{"split": kind, "seed": seed} for kind in kinds for seed in seeds]
    return protocol.run_jobs(jobs, run_one, summarise, "splits", progress, settings.workers)


def results_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds of each metric per (split, model id) (numbers in ``<metric>_mean`` / ``_sd`` too)."""
    return protocol.results_table(runs, ["split", "model"], EXPRESSION_METRICS)


def verdict_lines(runs: pd.DataFrame, dataset: str) -> list[str]:
    """One computed sentence per split of a runs table (:func:`run_experiments`): the graph model against the
    per-cell-line mean and ridge in Pearson of change, by paired per-seed differences
    (:func:`perturbx.evaluation.metrics.compare_models`), and the best classical model's mean; the sentences name
    the models by label."""
    pairs = [("graph_model", "cell_line_mean"), ("graph_model", "ridge")]
    found = protocol.paired_comparisons(runs, pairs, "pearson_change")
    lines = []
    for split, part in runs.groupby("split", sort=False):
        means = part.groupby("model", sort=False)["pearson_change"].mean()
        classical = means.reindex(list(EXPRESSION_REGRESSORS)).dropna()
        against = [f"{c.verdict} the {MODELS.label(c.baseline)} ({c.details})" for keys, c in found
                   if keys["split"] == split]
        best = (f"; best classical: {MODELS.label(classical.idxmax())} ({classical.max():.3f})" if len(classical)
                else "")
        lines.append(f"{dataset}, {split}: graph model Pearson of change {means.get('graph_model', np.nan):.3f}; it "
                     + "; it ".join(against) + best + ".")
    return lines


def ceiling_share(table: pd.DataFrame) -> pd.DataFrame:
    """Per split of a :func:`results_table` with the ``true_mean`` row: the simulator's ceiling (Pearson of change
    of its exact mean), the best learned model (its label) and its share of the ceiling, and the per-cell-line
    mean's share."""
    rows = []
    for split, part in table.groupby(level="split", sort=False):
        values = part.droplevel("split")["pearson_change_mean"]
        ceiling = values["true_mean"]
        learned = values.reindex(MODELS.ids("learned")).dropna()
        rows.append({"split": split, "ceiling (true mean)": ceiling,
                     "best learned model": MODELS.label(learned.idxmax()), "best learned": learned.max(),
                     "share of ceiling": learned.max() / ceiling,
                     "per-cell-line mean share": values["cell_line_mean"] / ceiling})
    return pd.DataFrame(rows).set_index("split")


def _paired(runs: pd.DataFrame, dataset: str, pairs: Sequence[tuple[str, str]], metric: str,
            splits: Sequence[str], registry: ModelRegistry = MODELS) -> list[Evidence]:
    """Evidence from paired per-seed comparisons of model id ``pairs`` within the given splits of ``runs``; the
    texts name the models by their labels in ``registry``."""
    found = protocol.paired_comparisons(runs[runs["split"].isin(splits)], pairs, metric)
    return [Evidence.from_comparison(c, f"{dataset}, {keys['split']}: {registry.label(c.model)}",
                                     label=registry.label) for keys, c in found]


def decide_claims(simulated_runs: pd.DataFrame, shares: pd.DataFrame, consensus_runs: pd.DataFrame,
                  recovery: pd.DataFrame, faithfulness: pd.DataFrame, data: str, target_share: float = 0.6,
                  pharmacophores: pd.DataFrame | None = None) -> list[Claim]:
    """The graph paper's claims, decided from this chapter's tables, with the ids ``beats_classical_regressors``,
    ``generalises_to_unseen``, ``reaches_ceiling_share`` and ``attributions_point_at_causes``.

    Args:
        simulated_runs: :func:`run_experiments` runs on the simulator (random, unseen compound, unseen cell;
            ``model`` holds ids).
        shares: :func:`ceiling_share` of the simulator's results table.
        consensus_runs: per-seed means of the structure-only models on the consensus signatures
            (:func:`perturbx.studies.signatures.seed_means`, ids of :data:`perturbx.studies.signatures.MODELS`),
            with a ``split`` column.
        recovery: :func:`perturbx.evaluation.explain.recovery_table` (AUROC / precision against chance).
        faithfulness: rows with ``top > random (fraction)`` per masked input kind.
        data: what the claims were tested on.
        target_share: the share of the ceiling the best learned model must reach on unseen compounds.
        pharmacophores: real drugs' attributions against a known motif
            (:func:`perturbx.studies.signatures.explain_drugs`: ``top_in_motif`` and its ``chance``); the mean
            share of top atoms on the motif must exceed the mean chance.
    """
    title = papers.GRAPH.title
    classical = [("graph_model", i) for i in EXPRESSION_REGRESSORS]
    unseen = [("graph_model", "cell_line_mean"), ("graph_model", "ridge")]
    structure = [("gat_regressor", i) for i in ("mean_signature", "ridge")]
    share = float(shares.loc["unseen compound", "share of ceiling"])
    attribution = [Evidence.bound(f"{row['what']} ({row['score']}, chance {row['chance']:.3f})", row["mean"],
                                  row["chance"], below=False) for _, row in recovery.iterrows()]
    attribution += [Evidence.bound(f"{row['masked']} ({row['dataset']}): masking top-attributed inputs moves the "
                                   "prediction more than random ones, fraction of profiles",
                                   row["top > random (fraction)"], 0.5, below=False)
                    for _, row in faithfulness.iterrows()]
    if pharmacophores is not None and len(pharmacophores):
        attribution.append(Evidence.bound(
            f"real kinase inhibitors ({len(pharmacophores)}): share of the top atoms on the hinge-binding motif "
            f"(chance {pharmacophores['chance'].mean():.3f})", pharmacophores["top_in_motif"].mean(),
            pharmacophores["chance"].mean(), below=False))
    return [
        Claim("beats_classical_regressors", title,
              "The graph model predicts drug-induced expression better than classical regressors", data,
              tuple(_paired(simulated_runs, "simulator", classical, "pearson_change", ["random"]))),
        Claim("generalises_to_unseen", title,
              "... also for compounds and cell lines it has never seen (book's question)", data,
              tuple(_paired(simulated_runs, "simulator", unseen, "pearson_change", ["unseen compound", "unseen cell"])
                    + _paired(consensus_runs, "DrugBank consensus", structure, "pearson", ["scaffold CV"],
                              signatures.MODELS))),
        Claim("reaches_ceiling_share", title,
              f"A learned model reaches {target_share:.0%} of the simulator's ceiling on unseen compounds "
              "(book's target)", data,
              (Evidence.bound(f"best learned model ({shares.loc['unseen compound', 'best learned model']}), share "
                              "of the true mean's Pearson of change", share, target_share, below=False),)),
        Claim("attributions_point_at_causes", title, "Its attributions point at the inputs that cause the response",
              data, tuple(attribution)),
    ]


def token_attention_table(found: Attributions) -> pd.DataFrame:
    """Mean attention each token (compound, cell line, dose, time) receives in the last Transformer layer, over the
    querying tokens and the explained profiles: one row per token, column ``mean attention received``."""
    return found.token_attention.mean().rename("mean attention received").to_frame()


@torch.no_grad()
def token_attention_layers(result: SplitResult, row: int) -> list[pd.DataFrame]:
    """The graph model's token attention for profile ``row`` (a position in the inputs): one table per Transformer
    layer, rows the querying tokens and columns the tokens attended to (compound, cell line, dose, time)."""
    model, fold = result.models["graph_model"], result.context.fold
    device = next(model.parameters()).device
    b = fold.batch(np.array([row]))
    layers = model(*[t.to(device) for t in (b.compound, b.basal, b.dose, b.time)], details=True)[1]["token_attention"]
    return [pd.DataFrame(layer[0].cpu().numpy(), index=list(TOKEN_NAMES), columns=list(TOKEN_NAMES))
            for layer in layers]


FAITHFULNESS_MASKS = (("atoms", 0.2), ("genes", 50))
"""What the faithfulness test masks: a fifth of each molecule's atoms, and 50 basal genes."""


def faithfulness_table(result: SplitResult, found: Attributions, seed: int, dataset: str = "simulator",
                       masks: Sequence[tuple[str, int | float]] = FAITHFULNESS_MASKS) -> pd.DataFrame:
    """Does masking the top-attributed inputs move the graph model's prediction more than masking random ones
    (:func:`perturbx.evaluation.explain.faithfulness`)? One row per masked kind: the profiles, the mean effect of
    the top-attributed and of random masks, and the fraction of profiles where the top ones moved it more."""
    rows = []
    for kind, n_masked in masks:
        effect = explain.faithfulness(result.models["graph_model"], result.context.inputs, result.context.prepared,
                                      found, kind, n_masked, seed=seed)
        rows.append({"dataset": dataset, "masked": f"top {kind}", "profiles": len(effect),
                     "effect of top-attributed": effect["top"].mean(), "effect of random": effect["random"].mean(),
                     "top > random (fraction)": (effect["top"] > effect["random"]).mean()})
    return pd.DataFrame(rows)


def explain_split(result: SplitResult, per_compound: int = 1, limit: int = 48) -> Attributions:
    """Attributions of the graph model of ``result`` for its test profiles: the ``per_compound`` highest-dose
    profiles of each compound, at most ``limit``."""
    context = result.context
    rows = highest_dose_rows(context.inputs, result.split.test, per_compound, limit)
    return attributions(result.models["graph_model"], context.inputs, context.prepared, rows)
