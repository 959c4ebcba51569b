"""Drug-response experiments: preprocessing fitted on training pairs, every model on the same split.

The chapter calls :func:`run_split` for each split of each experiment; everything that touches the data between
the split and the metrics is here, so that every model sees the same features and the test pairs are never used
to fit anything (gene selection, scaling, PCA, priors, early stopping).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import MinMaxScaler

from .datasets.drp import MODALITIES, DRPData
from .metrics import classification_metrics
from .models.classical import GradientBoostingDRP, sensitivity_priors
from .models.drp import CrossAttentionDRP, DeepDRA, DRPOutput, drp_loss
from .training import FitConfig, FitResult, fit

PRIORS = ("drug prior", "cell prior", "drug + cell prior")
DEEP_MODELS = ("DeepDRA", "cross-attention", "cross-attention, one token per side")
ALL_MODELS = (*PRIORS, "gradient boosting", "DeepDRA", "cross-attention")


@dataclass
class DRPSettings:
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


def settings_for(profile: str, device: str = "cpu") -> DRPSettings:
    """The settings of a chapter profile: ``smoke`` (seconds), ``quick`` (minutes on a CPU), ``full`` (DeepDRA's)."""
    if profile == "smoke":
        return DRPSettings(n_genes=100, fit=FitConfig(epochs=2, batch_size=128, device=device, progress=False),
                           gbm_components=8, max_train_pairs=2000)
    if profile == "quick":
        return DRPSettings(n_genes=500, fit=FitConfig(epochs=10, batch_size=128, device=device), gbm_components=32)
    return DRPSettings(n_genes=None, fit=FitConfig(epochs=25, batch_size=64, device=device), gbm_components=32)


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
        return [b.shape[1] for b in self.cell_blocks]

    @property
    def drug_dims(self) -> list[int]:
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

def build_model(name: str, features: Features) -> torch.nn.Module:
    """A fresh deep model by name (see :data:`DEEP_MODELS`)."""
    if name == "DeepDRA":
        return DeepDRA(features.cell_dims, features.drug_dims)
    if name == "cross-attention":
        return CrossAttentionDRP(features.cell_dims, features.drug_dims, tokens="blocks")
    if name == "cross-attention, one token per side":
        return CrossAttentionDRP(features.cell_dims, features.drug_dims, tokens="single")
    raise ValueError(f"unknown deep model {name!r}; use one of {', '.join(DEEP_MODELS)}")


class _Blocks:
    """Feature blocks as tensors on a device, gathered per batch by cell and drug index."""

    def __init__(self, features: Features, device: str):
        self.cells = [torch.from_numpy(b).to(device) for b in features.cell_blocks]
        self.drugs = [torch.from_numpy(b).to(device) for b in features.drug_blocks]

    def __call__(self, cell_index: torch.Tensor, drug_index: torch.Tensor):
        return [b[cell_index] for b in self.cells], [b[drug_index] for b in self.drugs]


def _tensors(pairs: pd.DataFrame) -> list[torch.Tensor]:
    return [torch.as_tensor(pairs["cell_index"].to_numpy()), torch.as_tensor(pairs["drug_index"].to_numpy()),
            torch.as_tensor(pairs["label"].to_numpy(), dtype=torch.float32)]


def train_deep(name: str, features: Features, train: pd.DataFrame, val: pd.DataFrame,
               config: FitConfig) -> tuple[torch.nn.Module, FitResult]:
    """Train a deep model through the package's fit loop (early stopping on ``val``)."""
    blocks = _Blocks(features, config.device)

    def loss(model: torch.nn.Module, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        cell_x, drug_x = blocks(batch[0], batch[1])
        return drp_loss(model(cell_x, drug_x), cell_x, drug_x, batch[2])

    torch.manual_seed(config.seed)  # identical initial weights for a given seed
    model = build_model(name, features)
    result = fit(model, loss, _tensors(train), _tensors(val), replace(config, description=name))
    return model, result


@torch.no_grad()
def predict_deep(model: torch.nn.Module, features: Features, pairs: pd.DataFrame, device: str = "cpu",
                 batch_size: int = 4096) -> tuple[np.ndarray, list[DRPOutput]]:
    """Probabilities of sensitive (len(pairs),) and the raw outputs per batch (for attention maps)."""
    model.eval()
    blocks = _Blocks(features, device)
    cell_index, drug_index, _ = _tensors(pairs)
    scores, outputs = [], []
    for start in range(0, len(pairs), batch_size):
        part = slice(start, start + batch_size)
        output = model(*blocks(cell_index[part].to(device), drug_index[part].to(device)))
        scores.append(torch.sigmoid(output.logit).cpu().numpy())
        outputs.append(output)
    return np.concatenate(scores), outputs


# --------------------------------------------------------------------------------------------------- one split

@dataclass
class SplitResult:
    """Metrics (one row per model), test scores per model, the fit record and model of each deep model, the
    features the split used, and its test pairs."""

    metrics: pd.DataFrame
    scores: dict[str, np.ndarray]
    fits: dict[str, FitResult]
    models: dict[str, torch.nn.Module]
    features: Features
    test: pd.DataFrame


def run_split(data: DRPData, train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame,
              models: Sequence[str] = ALL_MODELS, settings: DRPSettings | None = None, seed: int = 0,
              test_subsets: dict[str, np.ndarray] | None = None) -> SplitResult:
    """Fit every model in ``models`` on ``train`` (deep models stop early on ``val``) and score ``test``.

    Args:
        test_subsets: optional extra evaluations, name -> boolean mask over ``test`` (e.g. CCLE pairs not
            labelled in training); their rows get ``subset`` = that name.

    Returns:
        :class:`SplitResult`; ``metrics`` has columns model, subset, n_test, positive_rate and the metrics of
        :func:`~perturbx.metrics.classification_metrics`, plus train_seconds for the deep models.
    """
    settings = settings or DRPSettings()
    if settings.max_train_pairs is not None and len(train) > settings.max_train_pairs:
        train = train.sample(settings.max_train_pairs, random_state=seed)
    features = prepare_features(data, train, settings.n_genes)
    config = replace(settings.fit, seed=seed)
    scores, fits, fitted = {}, {}, {}
    if any(m in PRIORS for m in models):
        priors = sensitivity_priors(train, test)
        scores |= {m: priors[m] for m in models if m in PRIORS}
    if "gradient boosting" in models:
        booster = GradientBoostingDRP(n_components=settings.gbm_components, seed=seed)
        scores["gradient boosting"] = booster.fit(features.cell_blocks, features.drug_blocks, train).predict_proba(
            features.cell_blocks, features.drug_blocks, test)
    for name in models:
        if name in DEEP_MODELS:
            fitted[name], fits[name] = train_deep(name, features, train, val, config)
            scores[name] = predict_deep(fitted[name], features, test, config.device)[0]
    subsets = {"all": np.ones(len(test), dtype=bool)} | dict(test_subsets or {})
    rows = []
    for name in models:
        for subset, mask in subsets.items():
            labels = test["label"].to_numpy()[mask]
            row = {"model": name, "subset": subset, "n_test": int(mask.sum()), "positive_rate": labels.mean()}
            row |= classification_metrics(labels, scores[name][mask])
            if name in fits:
                row["train_seconds"] = fits[name].seconds
            rows.append(row)
    return SplitResult(pd.DataFrame(rows), scores, fits, fitted, features, test.reset_index(drop=True))


def per_drug_auc(test: pd.DataFrame, scores: np.ndarray, min_pairs: int = 10) -> pd.DataFrame:
    """ROC AUC within each drug that has both classes and at least ``min_pairs`` test pairs."""
    from sklearn.metrics import roc_auc_score

    rows = []
    for drug, group in test.assign(score=scores).groupby("drug_name"):
        if len(group) >= min_pairs and group["label"].nunique() == 2:
            rows.append({"drug_name": drug, "n": len(group), "auc": roc_auc_score(group["label"], group["score"])})
    return pd.DataFrame(rows)


# Reported by the cross-attention paper (Cho and Kim), tables 1 and 2, for DeepDRA and the proposed model.
# Reference values only: they were not produced by this package. Its precision and recall may follow DeepDRA's
# code, which computes them for the resistant class (see perturbx.metrics.deepdra_precision_recall).
PAPER_REPORTED = {
    "5-fold CV on CTRP+GDSC": {
        "DeepDRA": {"accuracy": 0.953, "precision": 0.945, "recall": 0.96, "f1": 0.952, "roc_auc": 0.992,
                    "auprc": 0.992},
        "cross-attention": {"accuracy": 0.956, "precision": 0.939, "recall": 0.969, "f1": 0.954, "roc_auc": 0.993,
                            "auprc": 0.993},
    },
    "CTRP+GDSC -> CCLE": {
        "DeepDRA": {"accuracy": 0.804, "precision": 0.832, "recall": 0.823, "f1": 0.823, "roc_auc": 0.883,
                    "auprc": 0.887},
        "cross-attention": {"accuracy": 0.829, "precision": 0.842, "recall": 0.850, "f1": 0.846, "roc_auc": 0.910,
                            "auprc": 0.913},
    },
}
METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc", "auprc", "pr_auc_trapezoid"]


def results_table(runs: pd.DataFrame, experiment: str | None = None, subset: str = "all") -> pd.DataFrame:
    """Mean ± sd over runs per model as text, the same as numbers (``<metric>_mean``, ``<metric>_sd``), and the
    paper's reported values (where it has them) as extra columns.

    The paper's columns are named ``paper <metric>`` and hold reference numbers from the paper's tables.
    """
    from .metrics import summarise_runs

    chosen = runs[runs["subset"] == subset]
    table = summarise_runs(chosen, ["model"], METRICS)
    shown = table[METRICS + ["runs"] + [f"{m}_{stat}" for m in METRICS for stat in ("mean", "sd")]].copy()
    if experiment in PAPER_REPORTED:
        for metric in ("roc_auc", "auprc", "accuracy", "f1"):
            shown[f"paper {metric}"] = [PAPER_REPORTED[experiment].get(m, {}).get(metric, np.nan) for m in shown.index]
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
        (runs, last): one metrics row per model, fold and seed (columns ``seed`` and ``fold`` added), and the
        :class:`SplitResult` of the last fold.
    """
    from tqdm.std import tqdm

    from .splits import kfold

    runs, last = [], None
    n_folds = min(k, max_folds or k)
    inner = replace(settings, fit=replace(settings.fit, progress=False))  # one bar: folds, not epochs
    bar = tqdm(total=len(seeds) * n_folds, desc="folds", disable=not progress, mininterval=5.0)
    for seed in seeds:
        used = undersample(pairs, seed) if undersample_first else pairs.reset_index(drop=True)
        folds = kfold(len(used), k=k, seed=seed, labels=None if group_by else used["label"].to_numpy(),
                      groups=used[group_by].to_numpy() if group_by else None)
        for fold, split in enumerate(folds, start=1):
            if fold > n_folds:
                break
            last = run_split(data, used.iloc[split.train], used.iloc[split.val], used.iloc[split.test], models,
                             inner, seed)
            runs.append(last.metrics.assign(seed=seed, fold=fold))
            bar.update()
    bar.close()
    return pd.concat(runs, ignore_index=True), last


def cross_dataset(data: DRPData, models: Sequence[str], settings: DRPSettings, seeds: Sequence[int],
                  val_size: float = 0.1) -> tuple[pd.DataFrame, SplitResult, pd.DataFrame]:
    """Train on all CTRP+GDSC pairs (a random ``val_size`` of them for early stopping), test on CCLE.

    Test subsets: ``all`` CCLE pairs and ``not labelled in training`` (the cell line and drug pair has no label
    in CTRP+GDSC, after matching names and structures).

    Returns:
        (runs, last, test): metrics rows per model, subset and seed; the :class:`SplitResult` of the last seed;
        the CCLE test pairs.
    """
    from .datasets.drp import TEST_DATASET, TRAIN_DATASET
    from .splits import random_split

    train_all, test = data.dataset(TRAIN_DATASET), data.dataset(TEST_DATASET)
    subsets = {"not labelled in training": ~test["labelled_in_training"].to_numpy()}
    runs, last = [], None
    for seed in seeds:
        split = random_split(len(train_all), test_size=val_size, val_size=0.0, seed=seed)
        last = run_split(data, train_all.iloc[split.train], train_all.iloc[split.test], test, models, settings,
                         seed, test_subsets=subsets)
        runs.append(last.metrics.assign(seed=seed))
    return pd.concat(runs, ignore_index=True), last, test
