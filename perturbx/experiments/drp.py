"""The drug-response chapter's protocol: preprocessing fitted on training pairs, every model on the same split.

The chapter calls :func:`cross_validate` and :func:`cross_dataset`; everything that touches the data between the
split and the metrics is here, so that every model sees the same features and the test pairs are never used to fit
anything (gene selection, scaling, PCA, priors, early stopping).

Models (:data:`MODELS`, by id): the feature-free priors ``drug_prior``, ``cell_prior``, ``drug_cell_prior``;
``gradient_boosting`` on PCA-reduced omics and drug features; the paper's baseline ``deepdra`` and its model
``cross_attention`` (one token per omics block and per drug feature block), and the ablation
``cross_attention_single`` (one token per side).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import MinMaxScaler

from .. import papers
from ..datasets.drp import MODALITIES, TEST_DATASET, TRAIN_DATASET, DRPData
from ..metrics import classification_metrics, summarise_runs
from ..models.classical import GradientBoostingDRP, sensitivity_priors
from ..models.drp import CrossAttentionDRP, DeepDRA, DRPOutput, drp_loss
from ..splits import Split, kfold, random_split
from ..training import FitConfig, FitResult, fit
from . import protocol
from .protocol import ModelOutput, ModelRegistry, ModelSpec, ProfileSettings, SplitResult

METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc", "auprc", "pr_auc_trapezoid"]


@dataclass
class DRPSettings(ProfileSettings):
    """How much work one split costs.

    Attributes:
        n_genes: genes kept per omics block, by variance across the training cell lines (None: all 6,163).
        fit: optimisation settings of the deep models.
        gbm_components: PCA components per omics block (and for fingerprints) for gradient boosting.
        max_train_pairs: subsample training pairs to at most this many (None: all); for the smoke profile.
    """

    n_genes: int | None = None
    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=25))
    gbm_components: int = 32
    max_train_pairs: int | None = None

    @classmethod
    def smoke(cls, device: str = "cpu") -> DRPSettings:
        """Seconds: 100 genes, 2 epochs, 2,000 training pairs."""
        return cls(n_genes=100, fit=FitConfig(epochs=2, batch_size=128, device=device, progress=False),
                   gbm_components=8, max_train_pairs=2000)

    @classmethod
    def quick(cls, device: str = "cpu") -> DRPSettings:
        """Minutes on a CPU: 500 genes, 10 epochs."""
        return cls(n_genes=500, fit=FitConfig(epochs=10, batch_size=128, device=device), gbm_components=32)

    @classmethod
    def full(cls, device: str = "cpu") -> DRPSettings:
        """DeepDRA's: all genes, 25 epochs, batch 64."""
        return cls(n_genes=None, fit=FitConfig(epochs=25, batch_size=64, device=device), gbm_components=32)


@dataclass
class Features:
    """Per-cell and per-drug feature blocks after preprocessing fitted on training pairs.

    cell_blocks: one float32 (n_cells, d) array per omics block (data.cells order); drug_blocks: descriptors
    (n_drugs, 209) and fingerprint (n_drugs, 2048) (data.drugs order).
    """

    cell_blocks: list[np.ndarray]
    drug_blocks: list[np.ndarray]
    genes: dict[str, list[str]]

    @property
    def cell_dims(self) -> list[int]:
        """Width of each cell block."""
        return [b.shape[1] for b in self.cell_blocks]

    @property
    def drug_dims(self) -> list[int]:
        """Width of each drug block."""
        return [b.shape[1] for b in self.drug_blocks]


def _min_max(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Min-max scale columns with the minimum and maximum over ``rows``; values outside that range are clipped to
    it (an unseen drug's descriptor can exceed the training maximum by orders of magnitude); NaN -> 0."""
    scaler = MinMaxScaler(clip=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        scaler.fit(values[rows])
        return np.nan_to_num(scaler.transform(values), nan=0.0).astype(np.float32)


def prepare_features(data: DRPData, train: pd.DataFrame, n_genes: int | None = None) -> Features:
    """Select and scale features using the cell lines and drugs of the ``train`` pairs only.

    Omics: the ``n_genes`` most variable genes per block across the training cell lines, then min-max scaling with
    the training cell lines' minimum and maximum (DeepDRA scales to [0, 1] too, but over all cell lines at once).
    Descriptors: min-max scaling on the training drugs, then NaN -> 0 (as DeepDRA). Values of test cell lines or
    drugs outside the training range are clipped to [0, 1]. Fingerprints: unchanged bits.
    """
    cells, drugs = np.unique(train["cell_index"]), np.unique(train["drug_index"])
    blocks, genes = [], {}
    for modality in MODALITIES:
        values = data.cell_features[modality]
        keep = np.arange(values.shape[1])
        if n_genes is not None and n_genes < values.shape[1]:
            keep = np.sort(np.argsort(-values[cells].var(axis=0), kind="stable")[:n_genes])
        blocks.append(_min_max(values[:, keep], cells))
        genes[modality] = [data.genes[i] for i in keep]
    descriptors = _min_max(data.drug_features["descriptors"], drugs)
    return Features(blocks, [descriptors, data.drug_features["fingerprint"]], genes)


def undersample(pairs: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Drop random majority-class pairs until both classes are equally frequent (DeepDRA's RandomUnderSampler)."""
    rng = np.random.default_rng(seed)
    counts = pairs["label"].value_counts()
    majority, n_keep = counts.idxmax(), counts.min()
    rows = np.flatnonzero(pairs["label"].to_numpy() == majority)
    drop = rng.choice(rows, size=len(rows) - n_keep, replace=False)
    keep = np.setdiff1d(np.arange(len(pairs)), drop)  # by position: the index may repeat labels
    return pairs.iloc[keep].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------- deep models

class PairBatch(NamedTuple):
    """A batch of cell line x drug pairs: long (b,) cell and drug rows of the feature blocks, float32 (b,) label
    (1 = sensitive)."""

    cell: torch.Tensor
    drug: torch.Tensor
    label: torch.Tensor


def pair_batch(pairs: pd.DataFrame) -> PairBatch:
    """The :class:`PairBatch` of ``pairs`` (columns cell_index, drug_index, label)."""
    return PairBatch(torch.as_tensor(pairs["cell_index"].to_numpy()), torch.as_tensor(pairs["drug_index"].to_numpy()),
                     torch.as_tensor(pairs["label"].to_numpy(), dtype=torch.float32))


class FeatureBlocks:
    """Feature blocks as tensors on a device, gathered per batch by cell and drug index."""

    def __init__(self, features: Features, device: str):
        self.cells = [torch.from_numpy(b).to(device) for b in features.cell_blocks]
        self.drugs = [torch.from_numpy(b).to(device) for b in features.drug_blocks]

    def __call__(self, batch: PairBatch) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(cell blocks, drug blocks) of the batch's pairs."""
        return [b[batch.cell] for b in self.cells], [b[batch.drug] for b in self.drugs]


class PairLoss:
    """The fit loop's ``loss(model, batch)`` of a DRP model: gathers the pairs' features and applies
    :func:`perturbx.models.drp.drp_loss` (autoencoder MSEs + BCE)."""

    def __init__(self, blocks: FeatureBlocks):
        self.blocks = blocks

    def __call__(self, model: torch.nn.Module, batch: PairBatch) -> dict[str, torch.Tensor]:
        """Loss parts of ``model`` on ``batch``: ``loss`` (the sum), ``cell_ae``, ``drug_ae``, ``bce``."""
        cell_x, drug_x = self.blocks(batch)
        return drp_loss(model(cell_x, drug_x), cell_x, drug_x, batch.label)


def train_deep(build: Callable[[Features], torch.nn.Module], features: Features, train: pd.DataFrame,
               val: pd.DataFrame, config: FitConfig) -> tuple[torch.nn.Module, FitResult]:
    """Train the model ``build(features)`` through the package's fit loop (early stopping on ``val``)."""
    torch.manual_seed(config.seed)  # identical initial weights for a given seed
    model = build(features)
    loss = PairLoss(FeatureBlocks(features, config.device))
    return model, fit(model, loss, pair_batch(train), pair_batch(val), config)


@torch.no_grad()
def predict_deep(model: torch.nn.Module, features: Features, pairs: pd.DataFrame, device: str = "cpu",
                 batch_size: int = 4096) -> tuple[np.ndarray, list[DRPOutput]]:
    """Probabilities of sensitive (len(pairs),) and the raw outputs per batch (for attention maps)."""
    model.eval()
    blocks, whole = FeatureBlocks(features, device), pair_batch(pairs)
    scores, outputs = [], []
    for start in range(0, len(pairs), batch_size):
        part = PairBatch(*(t[start:start + batch_size].to(device) for t in whole))
        output = model(*blocks(part))
        scores.append(torch.sigmoid(output.logit).cpu().numpy())
        outputs.append(output)
    return np.concatenate(scores), outputs


# --------------------------------------------------------------------------------------------------- the models

@dataclass
class DRPContext:
    """What a model sees on one split: the data, training-fitted features, the pairs of each part, settings."""

    data: DRPData
    features: Features
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    settings: DRPSettings


def _prior(model_id: str):
    def run(context: DRPContext, seed: int) -> ModelOutput:
        return ModelOutput(sensitivity_priors(context.train, context.test)[model_id])
    return run


def _gradient_boosting(context: DRPContext, seed: int) -> ModelOutput:
    features = context.features
    booster = GradientBoostingDRP(n_components=context.settings.gbm_components, seed=seed)
    booster.fit(features.cell_blocks, features.drug_blocks, context.train)
    return ModelOutput(booster.predict_proba(features.cell_blocks, features.drug_blocks, context.test))


def _deep(label: str, build: Callable[[Features], torch.nn.Module]):
    def run(context: DRPContext, seed: int) -> ModelOutput:
        config = replace(context.settings.fit, seed=seed, description=label)
        model, result = train_deep(build, context.features, context.train, context.val, config)
        return ModelOutput(predict_deep(model, context.features, context.test, config.device)[0], model, result)
    return run


def _deep_spec(model_id: str, label: str, build: Callable[[Features], torch.nn.Module], description: str):
    return ModelSpec(model_id, label, _deep(label, build), "learned", description)


MODELS = ModelRegistry("drug response", [
    ModelSpec("drug_prior", "drug prior", _prior("drug_prior"), "baseline", "training sensitive rate of the drug"),
    ModelSpec("cell_prior", "cell prior", _prior("cell_prior"), "baseline",
              "training sensitive rate of the cell line"),
    ModelSpec("drug_cell_prior", "drug + cell prior", _prior("drug_cell_prior"), "baseline",
              "the two rates' log-odds added"),
    ModelSpec("gradient_boosting", "gradient boosting", _gradient_boosting, "baseline",
              "boosted trees on PCA-reduced omics and drug features"),
    _deep_spec("deepdra", "DeepDRA", lambda f: DeepDRA(f.cell_dims, f.drug_dims),
               "cell and drug autoencoders, concatenated latents, MLP"),
    _deep_spec("cross_attention", "cross-attention",
               lambda f: CrossAttentionDRP(f.cell_dims, f.drug_dims, tokens="blocks"),
               "bidirectional cross-attention, one token per feature block"),
    _deep_spec("cross_attention_single", "cross-attention, one token per side",
               lambda f: CrossAttentionDRP(f.cell_dims, f.drug_dims, tokens="single"),
               "bidirectional cross-attention, one token per side (ablation)"),
])
DEFAULT_MODELS = ("drug_prior", "cell_prior", "drug_cell_prior", "gradient_boosting", "deepdra", "cross_attention")


# --------------------------------------------------------------------------------------------------- one split

def run_split(data: DRPData, train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame,
              models: Sequence[str] = DEFAULT_MODELS, settings: DRPSettings | None = None, seed: int = 0,
              test_subsets: dict[str, np.ndarray] | None = None, kind: str = "split") -> SplitResult:
    """Fit every model id in ``models`` on ``train`` (deep models stop early on ``val``) and score ``test``.

    Args:
        test_subsets: optional extra evaluations, name -> boolean mask over ``test`` (e.g. CCLE pairs not
            labelled in training); their rows get ``subset`` = that name.
        kind: names the split in the result.

    Returns:
        :class:`~perturbx.experiments.protocol.SplitResult`; ``metrics`` has columns model (label), subset,
        n_test, positive_rate and the metrics of :func:`~perturbx.metrics.classification_metrics`, plus
        train_seconds for the deep models; ``predictions`` are (len(test),) probabilities of sensitive;
        ``context`` is the :class:`DRPContext` (features and test pairs).
    """
    settings = settings or DRPSettings()
    if settings.max_train_pairs is not None and len(train) > settings.max_train_pairs:
        train = train.sample(settings.max_train_pairs, random_state=seed)
    test = test.reset_index(drop=True)
    context = DRPContext(data, prepare_features(data, train, settings.n_genes), train, val, test, settings)
    outputs = protocol.run_models(MODELS, models, context, seed, kind)
    subsets = {"all": np.ones(len(test), dtype=bool)} | dict(test_subsets or {})
    rows = []
    for model_id, output in outputs.items():
        for subset, mask in subsets.items():
            labels = test["label"].to_numpy()[mask]
            row = {"model": MODELS.label(model_id), "subset": subset, "n_test": int(mask.sum()),
                   "positive_rate": labels.mean()} | classification_metrics(labels, output.prediction[mask])
            if output.fit is not None:
                row["train_seconds"] = output.fit.seconds
            rows.append(row)
    split = Split(train.index.to_numpy(), val.index.to_numpy(), np.arange(len(test)), kind)
    return SplitResult(split, seed, pd.DataFrame(rows), outputs, context, {i: MODELS.label(i) for i in outputs})


def per_drug_auc(test: pd.DataFrame, scores: np.ndarray, min_pairs: int = 10) -> pd.DataFrame:
    """ROC AUC within each drug that has both classes and at least ``min_pairs`` test pairs."""
    rows = []
    for drug, group in test.assign(score=scores).groupby("drug_name"):
        if len(group) >= min_pairs and group["label"].nunique() == 2:
            rows.append({"drug_name": drug, "n": len(group), "auc": roc_auc_score(group["label"], group["score"])})
    return pd.DataFrame(rows)


def results_table(runs: pd.DataFrame, experiment: str | None = None, subset: str = "all") -> pd.DataFrame:
    """Mean ± sd over runs per model as text, the same as numbers (``<metric>_mean``, ``<metric>_sd``), and the
    paper's reported values (where it has them) as extra columns ``paper <metric>`` (reference numbers from the
    paper's tables, :data:`perturbx.papers.DRP_REPORTED`)."""
    chosen = runs[runs["subset"] == subset]
    table = summarise_runs(chosen, ["model"], METRICS)  # every metric, NaN where a subset has one class
    shown = table[METRICS + ["runs"] + [f"{m}_{stat}" for m in METRICS for stat in ("mean", "sd")]].copy()
    if experiment in papers.DRP_REPORTED:
        ids = {MODELS.label(i): i for i in MODELS.ids()}
        for metric in ("roc_auc", "auprc", "accuracy", "f1"):
            reported = [papers.drp_reported(experiment, ids.get(label, ""), metric) for label in shown.index]
            shown[f"paper {metric}"] = [np.nan if r is None else r for r in reported]
    return shown


def cross_validate(data: DRPData, pairs: pd.DataFrame, models: Sequence[str], settings: DRPSettings,
                   seeds: Sequence[int], k: int = 5, group_by: str | None = None, undersample_first: bool = False,
                   max_folds: int | None = None, progress: bool = True) -> tuple[pd.DataFrame, SplitResult]:
    """k-fold cross-validation of ``models`` over ``seeds``; one :func:`run_split` per fold.

    Args:
        group_by: ``None`` for folds stratified by label (random pairs); ``"drug_id"`` or ``"cell_id"`` for folds
            that hold out whole drugs or cell lines (the validation part is grouped the same way).
        undersample_first: DeepDRA's protocol: drop majority-class pairs from the whole dataset *before* splitting,
            so that test folds are balanced too. The default keeps test folds at their natural class balance.
        max_folds: run only the first folds of each seed (to save time in small profiles).

    Returns:
        (runs, last): one metrics row per model, fold and seed (columns ``seed`` and ``fold`` first), and the
        result of the last fold.
    """
    inner = replace(settings, fit=replace(settings.fit, progress=False))  # one bar: folds, not epochs
    flavour = (f"held-out {group_by}" if group_by else "stratified") + (", undersampled" if undersample_first else "")
    folds = {}
    for seed in seeds:
        used = undersample(pairs, seed) if undersample_first else pairs.reset_index(drop=True)
        parts = list(kfold(len(used), k=k, seed=seed, labels=None if group_by else used["label"].to_numpy(),
                           groups=used[group_by].to_numpy() if group_by else None))
        folds[seed] = (used, parts[:min(k, max_folds or k)])

    def run_one(job: dict) -> SplitResult:
        used, parts = folds[job["seed"]]
        split = parts[job["fold"] - 1]
        return run_split(data, used.iloc[split.train], used.iloc[split.val], used.iloc[split.test], models, inner,
                         job["seed"], kind=f"{flavour} fold {job['fold']}")

    jobs = [{"seed": seed, "fold": fold} for seed in seeds for fold in range(1, len(folds[seed][1]) + 1)]
    runs, results = protocol.run_jobs(jobs, run_one, lambda r: r.metrics, "folds", progress)
    return runs, results[tuple(jobs[-1].values())]


def cross_dataset(data: DRPData, models: Sequence[str], settings: DRPSettings, seeds: Sequence[int],
                  val_size: float = 0.1) -> tuple[pd.DataFrame, SplitResult, pd.DataFrame]:
    """Train on all CTRP+GDSC pairs (a random ``val_size`` of them for early stopping), test on CCLE.

    Test subsets: ``all`` CCLE pairs and ``not labelled in training`` (the cell line and drug pair has no label
    in CTRP+GDSC, after matching names and structures).

    Returns:
        (runs, last, test): metrics rows per seed, model and subset; the result of the last seed; the CCLE pairs.
    """
    train_all, test = data.dataset(TRAIN_DATASET), data.dataset(TEST_DATASET)
    subsets = {"not labelled in training": ~test["labelled_in_training"].to_numpy()}

    def run_one(job: dict) -> SplitResult:
        split = random_split(len(train_all), test_size=val_size, val_size=0.0, seed=job["seed"])
        return run_split(data, train_all.iloc[split.train], train_all.iloc[split.test], test, models, settings,
                         job["seed"], test_subsets=subsets, kind=f"{TRAIN_DATASET} -> {TEST_DATASET}")

    runs, results = protocol.run_jobs([{"seed": s} for s in seeds], run_one, lambda r: r.metrics, "seeds",
                                      progress=False)
    return runs, results[(seeds[-1],)], test
