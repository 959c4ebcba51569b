"""The drug-response chapter's protocol: preprocessing fitted on training pairs, every model on the same split.

The chapter calls :func:`cross_validate` and :func:`cross_dataset`; everything that touches the data between the
split and the metrics is here, so that every model sees the same features and the test pairs are never used to fit
anything (gene selection, scaling, PCA, priors, early stopping).

Models (:data:`MODELS`, by id): the feature-free priors ``drug_prior``, ``cell_prior``, ``drug_cell_prior``;
``gradient_boosting`` on PCA-reduced omics and drug features; the paper's baseline ``deepdra`` and its model
``cross_attention`` as the paper describes it (one cell autoencoder and one drug autoencoder, one token per side),
and the extension ``cross_attention_blocks`` (one token per omics block and per drug feature block).

Two training protocols (:data:`PROTOCOLS`): ``paper`` follows DeepDRA's code (training pairs undersampled to equal
classes before a random 10% validation split, 25 epochs of batch 64, the learning-rate plateau on the training
loss, validation only logged, the last epoch's weights); ``leakage-free`` keeps the natural class balance and stops
early on the validation pairs, keeping the best epoch's weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from .. import papers
from ..datasets import fetch
from ..datasets.drug_response import (
    TEST_DATASET,
    TRAIN_DATASET,
    DRPData,
    ccle_labels_from_activity_area,
    label_pairs,
    load_drp,
)
from ..evaluation.claims import Claim, Evidence
from ..evaluation.metrics import (
    classification_metrics,
    compare_models,
    deepdra_precision_recall,
    format_mean_sd,
    summarise_runs,
)
from ..models.classical import GradientBoostingDRP, sensitivity_priors
from ..models.drug_response import DRPEstimator, predict_deep
from ..runtime import parallel_jobs
from ..splits import Split, kfold, random_split
from ..tasks.drug_cell_pairs import Features, PairFold, column_l2_scaled, prepare_features, undersample
from ..training import FitConfig
from . import protocol
from .protocol import ModelOutput, ModelRegistry, ModelSpec, ProfileSettings, SplitResult, run_jobs

METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc", "auprc", "pr_auc_trapezoid"]


@dataclass
class DRPSettings(ProfileSettings):
    """How much work one split costs.

    Attributes:
        n_genes: genes kept per omics block, by variance across the training cell lines (None: all 6,163).
        fit: optimisation settings of the deep models.
        gbm_components: PCA components per omics block (and for fingerprints) for gradient boosting.
        max_train_pairs: subsample training pairs to at most this many (None: all); for the smoke and quick
            profiles.
    """

    n_genes: int | None = None
    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=100, batch_size=64, early_stopping_patience=8))
    paper_fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=25, batch_size=64, validation="log"))
    gbm_components: int = 32
    max_train_pairs: int | None = None
    workers: int = 1  # jobs (seeds, folds) trained at once, each in its own process (protocol.run_jobs)
    # DeepDRA's torch.nn.functional.normalize(x, dim=0): every feature column divided by its L2 norm over the pairs
    # of the set it is in, so the CCLE pairs are scaled with CCLE's own statistics; a fidelity switch, off by default
    column_l2: bool = False

    @classmethod
    def smoke(cls, device: str = "cpu") -> DRPSettings:
        """Seconds: 100 genes, 2 epochs, 2,000 training pairs."""
        return cls(n_genes=100, fit=FitConfig(epochs=2, batch_size=128, device=device, progress=False),
                   paper_fit=FitConfig(epochs=2, batch_size=128, validation="log", device=device, progress=False),
                   gbm_components=8, max_train_pairs=2000)

    @classmethod
    def quick(cls, device: str = "cpu") -> DRPSettings:
        """Minutes on 2 CPU cores: the full profile's networks and epochs on 100 genes and 4,000 training pairs."""
        return replace(cls.full(device), n_genes=100, gbm_components=16, max_train_pairs=4000)

    @classmethod
    def full(cls, device: str = "cpu") -> DRPSettings:
        """The published tables, about an hour on 2 CPU cores: 500 genes per omics block; DeepDRA's 25 epochs of
        batch 64 (paper protocol), early stopping within 60 epochs of batch 128 (leakage-free)."""
        return cls(n_genes=500, fit=FitConfig(epochs=60, batch_size=128, early_stopping_patience=6, device=device),
                   paper_fit=FitConfig(epochs=25, batch_size=64, validation="log", device=device), gbm_components=32,
                   workers=parallel_jobs(device))

    def for_protocol(self, protocol: str) -> DRPSettings:
        """These settings with the fit configuration of ``protocol`` (a key of :data:`PROTOCOLS`) as ``fit``."""
        return replace(self, fit=self.paper_fit if PROTOCOLS[protocol].balance_training else self.fit)


@dataclass(frozen=True)
class DRPProtocol:
    """How training pairs become a fitted model.

    Attributes:
        name: the protocol's key in :data:`PROTOCOLS`.
        balance_training: undersample the training pairs to equal classes (per seed) before the validation split.
        description: one line for tables.
    """

    name: str
    balance_training: bool
    description: str


PROTOCOLS = {
    "paper": DRPProtocol("paper", True, "DeepDRA's code: training pairs undersampled to equal classes, then a 10% "
                         "validation split that is only logged; 25 epochs of batch 64; the last epoch's weights"),
    "leakage-free": DRPProtocol("leakage-free", False, "natural class balance; early stopping on a 10% validation "
                                "split, the best validation epoch's weights"),
}


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
    watch_test: bool = False  # log the test ROC AUC after every epoch of the deep models (a diagnostic)


def _prior(model_id: str):
    def run(context: DRPContext, seed: int) -> ModelOutput:
        return ModelOutput(sensitivity_priors(context.train, context.test)[model_id])
    return run


def _gradient_boosting(context: DRPContext, seed: int) -> ModelOutput:
    features = context.features
    booster = GradientBoostingDRP(n_components=context.settings.gbm_components, seed=seed)
    booster.fit(features.cell_blocks, features.drug_blocks, context.train)
    return ModelOutput(booster.predict_proba(features.cell_blocks, features.drug_blocks, context.test))


def _test_roc_auc(features: Features, test: pd.DataFrame, device: str):
    """``epoch_metrics`` for the fit loop: the ROC AUC on the test pairs after each epoch (a diagnostic of how
    much the test number moves within one run; nothing is chosen on it)."""
    labels = test["label"].to_numpy()

    def metrics(model: torch.nn.Module) -> dict[str, float]:
        return {"test_roc_auc": float(roc_auc_score(labels, predict_deep(model, features, test, device)[0]))}
    return metrics


def _deep(label: str, architecture: str):
    def run(context: DRPContext, seed: int) -> ModelOutput:
        estimator = DRPEstimator(architecture, context.settings.fit)
        train_features = test_features = context.features
        if context.settings.column_l2:  # DeepDRA scales the training pairs before the validation split
            train_features = column_l2_scaled(context.features, pd.concat([context.train, context.val]))
            test_features = column_l2_scaled(context.features, context.test)
        watch = (_test_roc_auc(test_features, context.test, context.settings.fit.device)
                 if context.watch_test and context.test["label"].nunique() == 2 else None)
        report = estimator.fit(PairFold(train_features, context.train, context.val), seed, label, watch)
        scores = estimator.predict(PairFold(test_features, context.train, context.val), context.test)
        return ModelOutput(scores, estimator.network, report, estimator=estimator)
    return run


def _deep_spec(model_id: str, label: str, description: str):
    return ModelSpec(model_id, label, _deep(label, model_id), "learned", description)


MODELS = ModelRegistry("drug response", [
    ModelSpec("drug_prior", "drug prior", _prior("drug_prior"), "baseline", "training sensitive rate of the drug"),
    ModelSpec("cell_prior", "cell prior", _prior("cell_prior"), "baseline",
              "training sensitive rate of the cell line"),
    ModelSpec("drug_cell_prior", "drug + cell prior", _prior("drug_cell_prior"), "baseline",
              "the two rates' log-odds added"),
    ModelSpec("gradient_boosting", "gradient boosting", _gradient_boosting, "baseline",
              "boosted trees on PCA-reduced omics and drug features"),
    _deep_spec("deepdra", "DeepDRA", "cell and drug autoencoders, concatenated latents, MLP"),
    _deep_spec("cross_attention", "cross-attention",
               "bidirectional cross-attention as the paper describes it: one cell and one drug autoencoder, one "
               "token per side"),
    _deep_spec("cross_attention_blocks", "cross-attention, block tokens (extension)",
               "extension: one autoencoder and one token per omics block and per drug feature block"),
])
DEFAULT_MODELS = ("drug_prior", "cell_prior", "drug_cell_prior", "gradient_boosting", "deepdra", "cross_attention")


# --------------------------------------------------------------------------------------------------- one split

def run_split(data: DRPData, train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame,
              models: Sequence[str] = DEFAULT_MODELS, settings: DRPSettings | None = None, seed: int = 0,
              test_subsets: dict[str, np.ndarray] | None = None, kind: str = "split",
              watch_test: bool = False) -> SplitResult:
    """Fit every model id in ``models`` on ``train`` (deep models use ``val`` as ``settings.fit.validation`` says)
    and score ``test``.

    Args:
        test_subsets: optional extra evaluations, name -> boolean mask over ``test`` (e.g. CCLE pairs not
            labelled in training); their rows get ``subset`` = that name.
        kind: names the split in the result.
        watch_test: log the test ROC AUC after every epoch in the deep models' fit histories (``test_roc_auc``),
            to show how much it moves within a run; nothing is chosen on it.

    Returns:
        :class:`~perturbx.studies.protocol.SplitResult`; ``metrics`` has columns model (id), subset,
        n_test, positive_rate and the metrics of :func:`~perturbx.evaluation.metrics.classification_metrics`, plus
        train_seconds for the deep models; ``predictions`` are (len(test),) probabilities of sensitive;
        ``context`` is the :class:`DRPContext` (features and test pairs).
    """
    settings = settings or DRPSettings()
    if settings.max_train_pairs is not None and len(train) > settings.max_train_pairs:
        train = train.sample(settings.max_train_pairs, random_state=seed)
    test = test.reset_index(drop=True)
    context = DRPContext(data, prepare_features(data, train, settings.n_genes), train, val, test, settings,
                         watch_test)
    outputs = protocol.run_models(MODELS, models, context, seed, kind)
    subsets = {"all": np.ones(len(test), dtype=bool)} | dict(test_subsets or {})
    rows = []
    for model_id, output in outputs.items():
        for subset, mask in subsets.items():
            labels = test["label"].to_numpy()[mask]
            row = {"model": model_id, "subset": subset, "n_test": int(mask.sum()),
                   "positive_rate": labels.mean()} | classification_metrics(labels, output.prediction[mask])
            if output.fit is not None:
                history = output.fit.history
                row |= {"train_seconds": output.fit.seconds, "best_epoch": output.fit.best_epoch,
                        "epochs_run": len(history),
                        "best_val_epoch": int(history["val_loss"].idxmin()) + 1 if "val_loss" in history else np.nan}
            rows.append(row)
    split = Split(train.index.to_numpy(), val.index.to_numpy(), np.arange(len(test)), kind)
    return SplitResult(split, seed, pd.DataFrame(rows), outputs, context)


def per_drug_auc(test: pd.DataFrame, scores: np.ndarray, min_pairs: int = 10) -> pd.DataFrame:
    """ROC AUC within each drug that has both classes and at least ``min_pairs`` test pairs."""
    rows = []
    for drug, group in test.assign(score=scores).groupby("drug_name"):
        if len(group) >= min_pairs and group["label"].nunique() == 2:
            rows.append({"drug_name": drug, "n": len(group), "auc": roc_auc_score(group["label"], group["score"])})
    return pd.DataFrame(rows, columns=["drug_name", "n", "auc"])


def results_table(runs: pd.DataFrame, experiment: str | None = None, subset: str = "all") -> pd.DataFrame:
    """Mean ± sd over runs per model (index: model id) as text, the same as numbers (``<metric>_mean``,
    ``<metric>_sd``), and the paper's reported values (where it has them, looked up by model id) as extra columns
    ``paper <metric>`` (reference numbers from the paper's tables, :data:`perturbx.papers.DRP_REPORTED`)."""
    chosen = runs[runs["subset"] == subset]
    table = summarise_runs(chosen, ["model"], METRICS)  # every metric, NaN where a subset has one class
    shown = table[METRICS + ["runs"] + [f"{m}_{stat}" for m in METRICS for stat in ("mean", "sd")]].copy()
    if experiment in papers.DRP_REPORTED:
        for metric in ("roc_auc", "auprc", "accuracy", "f1"):
            reported = [papers.drp_reported(experiment, model_id, metric) for model_id in shown.index]
            shown[f"paper {metric}"] = [np.nan if r is None else r for r in reported]
    return shown


SHOWN_METRICS = ("roc_auc", "auprc", "accuracy")


def shown_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The columns a chapter shows of a :func:`results_table`: ROC AUC, AUPRC and accuracy, each followed by the
    paper's value where the paper reports one for a row of the table, and the number of runs (the CSV of the
    table keeps every metric)."""
    columns = [column for metric in SHOWN_METRICS for column in (metric, f"paper {metric}")
               if column in table.columns and table[column].notna().any()]
    return table[columns + ["runs"]]


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
    runs, results = protocol.run_jobs(jobs, run_one, lambda r: r.metrics, "folds", progress, settings.workers)
    return runs, results[tuple(jobs[-1].values())]


@dataclass
class CrossDatasetRuns:
    """Every seed of :func:`cross_dataset`.

    Attributes:
        runs: one metrics row per seed, model and test subset (columns seed, model, subset, metrics, and for the
            deep models best_epoch / epochs_run / best_val_epoch).
        results: seed -> :class:`~perturbx.studies.protocol.SplitResult` (models, predictions, features).
        test: the CCLE pairs (the row order of every prediction).
        protocol: the :data:`PROTOCOLS` key the models were trained under.
    """

    runs: pd.DataFrame
    results: dict[int, SplitResult]
    test: pd.DataFrame
    protocol: str

    @property
    def last(self) -> SplitResult:
        """The result of the last seed."""
        return self.results[max(self.results)]

    def predictions(self) -> dict[tuple[int, str], np.ndarray]:
        """(seed, model id) -> (len(test),) probabilities of sensitive."""
        return {(seed, i): p for seed, r in self.results.items() for i, p in r.predictions.items()}

    def histories(self) -> pd.DataFrame:
        """The deep models' fit histories stacked: seed, model (id), epoch, lr, train_/val_ loss parts and
        test_roc_auc when the runs watched the test set."""
        frames = [o.fit.history.assign(seed=seed, model=i)
                  for seed, r in self.results.items() for i, o in r.outputs.items() if o.fit is not None]
        if not frames:
            return pd.DataFrame(columns=["seed", "model", "epoch"])
        stacked = pd.concat(frames, ignore_index=True)
        return stacked[["seed", "model", *[c for c in stacked.columns if c not in ("seed", "model")]]]


def cross_dataset(data: DRPData, models: Sequence[str], settings: DRPSettings, seeds: Sequence[int],
                  val_size: float = 0.1, protocol: str = "leakage-free", watch_test: bool = False,
                  progress: bool = True) -> CrossDatasetRuns:
    """Train on CTRP+GDSC pairs under ``protocol``, test on every CCLE pair.

    ``paper`` (:data:`PROTOCOLS`): the training pairs are undersampled to equal classes with the seed, a random
    ``val_size`` of them is logged as validation, and the deep models train ``settings.paper_fit`` (the last
    epoch's weights). ``leakage-free``: all training pairs at their natural balance, ``val_size`` of them for early
    stopping with ``settings.fit``. Test subsets: ``all`` CCLE pairs and ``not labelled in training`` (the cell
    line and drug pair has no label in CTRP+GDSC, after matching names and structures).

    Args:
        watch_test: log the CCLE ROC AUC after every epoch (see :func:`run_split`).
    """
    jobs = [{"seed": s} for s in seeds]
    runs, results, test = _ccle_jobs(data, models, settings, jobs, protocol, val_size, watch_test, progress)
    return CrossDatasetRuns(runs, {key[0]: r for key, r in results.items()}, test, protocol)


def _ccle_jobs(data: DRPData, models: Sequence[str], settings: DRPSettings, jobs: Sequence[dict], protocol: str,
               val_size: float = 0.1, watch_test: bool = False,
               progress: bool = True) -> tuple[pd.DataFrame, dict[tuple, SplitResult], pd.DataFrame]:
    """:func:`cross_dataset`'s runs for ``jobs`` of ``{"seed": s}``, or ``{"width": n_genes, "seed": s}`` to train
    at another number of genes per omics block; returns run_jobs' (runs, results) and the CCLE pairs."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}")
    train_all, test = data.dataset(TRAIN_DATASET), data.dataset(TEST_DATASET)
    subsets = {"not labelled in training": ~test["labelled_in_training"].to_numpy()}
    balance, used_settings = PROTOCOLS[protocol].balance_training, settings.for_protocol(protocol)
    if len(jobs) > 1:  # one bar over jobs, not one per fit
        used_settings = replace(used_settings, fit=replace(used_settings.fit, progress=False))

    def run_one(job: dict) -> SplitResult:
        pairs = undersample(train_all, job["seed"]) if balance else train_all.reset_index(drop=True)
        split = random_split(len(pairs), test_size=val_size, val_size=0.0, seed=job["seed"])
        job_settings = replace(used_settings, n_genes=job["width"]) if "width" in job else used_settings
        return run_split(data, pairs.iloc[split.train], pairs.iloc[split.test], test, models, job_settings,
                         job["seed"], test_subsets=subsets, kind=f"{TRAIN_DATASET} -> {TEST_DATASET}",
                         watch_test=watch_test)

    runs, results = run_jobs(jobs, run_one, lambda r: r.metrics, f"seeds ({protocol})", progress and len(jobs) > 1,
                             settings.workers)
    return runs, results, test.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------- CCLE decomposed

def drug_identity_oracle(test: pd.DataFrame) -> np.ndarray:
    """Each test pair scored by its drug's sensitive rate *in the test set itself*: an oracle (it reads the test
    labels), the ROC AUC that knowing only which drug a pair has can reach. (len(test),) rates in [0, 1]."""
    return test.groupby("drug_name")["label"].transform("mean").to_numpy(float)


def within_drug_auc(test: pd.DataFrame, predictions: dict[tuple[int, str], np.ndarray],
                    min_pairs: int = 10) -> pd.DataFrame:
    """Per (seed, model) the mean over drugs of the ROC AUC within each drug (:func:`per_drug_auc`): how well a
    model ranks cell lines for one drug, which a drug's overall rate cannot do. Columns seed, model (id), roc_auc,
    drugs (how many drugs had both classes and ``min_pairs`` pairs)."""
    rows = []
    for (seed, model), scores in predictions.items():
        per_drug = per_drug_auc(test, scores, min_pairs)
        rows.append({"seed": seed, "model": model, "roc_auc": per_drug["auc"].mean(), "drugs": len(per_drug)})
    return pd.DataFrame(rows)


def drug_rate_shift(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """Per test drug (matched to training drugs by structure, ``drug_id``; shown under its test name): its
    training and test pairs and sensitive rates and the difference (test - training), the drugs whose rate moves
    most first. A drug with no training pairs has NaN training rate (``training pairs`` 0) and comes first; the drug
    prior can only give it the overall training rate."""
    stats = {name: pairs.groupby("drug_id")["label"].agg(["size", "mean"]) for name, pairs in (("training", train),
                                                                                               ("test", test))}
    names = test.groupby("drug_id")["drug_name"].first()
    joined = stats["test"].join(stats["training"], lsuffix=" test", rsuffix=" training", how="left")
    table = pd.DataFrame({"training pairs": joined["size training"].fillna(0).astype(int),
                          "training sensitive rate": joined["mean training"],
                          "CCLE pairs": joined["size test"], "CCLE sensitive rate": joined["mean test"]})
    table["difference"] = table["CCLE sensitive rate"] - table["training sensitive rate"]
    table.index = pd.Index(names.reindex(table.index).to_numpy(), name="drug")
    order = np.argsort(-table["difference"].abs().fillna(np.inf).to_numpy(), kind="stable")
    return table.iloc[order]


def ccle_decomposition(ccle: CrossDatasetRuns, models: Sequence[str]) -> pd.DataFrame:
    """What the pooled CCLE ROC AUC measures, per model id of ``models``: the pooled AUC and the mean
    within-drug AUC (mean ± sd over seeds), next to the drug-identity oracle (each pair scored by its drug's CCLE
    rate). A pooled AUC near the oracle's with a within-drug AUC near 0.5 says the model mostly ranks drugs."""
    pooled = ccle.runs[ccle.runs["subset"] == "all"]
    within = within_drug_auc(ccle.test, ccle.predictions())
    rows = []
    for model_id in models:
        p, w = pooled.loc[pooled["model"] == model_id, "roc_auc"], within.loc[within["model"] == model_id, "roc_auc"]
        rows.append({"model": model_id, "pooled roc_auc": format_mean_sd(p.mean(), p.std(ddof=1)),
                     "within-drug roc_auc": format_mean_sd(w.mean(), w.std(ddof=1)), "seeds": len(p),
                     "pooled_mean": p.mean(), "within_mean": w.mean()})
    test = ccle.test
    oracle = drug_identity_oracle(test)
    oracle_within = per_drug_auc(test, oracle)["auc"].mean()
    rows.append({"model": "drug identity (oracle: the drug's CCLE rate)",
                 "pooled roc_auc": f"{roc_auc_score(test['label'], oracle):.3f}",
                 "within-drug roc_auc": f"{oracle_within:.3f}", "seeds": 0,
                 "pooled_mean": roc_auc_score(test["label"], oracle), "within_mean": oracle_within})
    return pd.DataFrame(rows).set_index("model")


def width_sweep(data: DRPData, widths: Sequence[int | None], models: Sequence[str], settings: DRPSettings,
                seeds: Sequence[int], protocol: str = "paper") -> pd.DataFrame:
    """:func:`cross_dataset` runs at each number of genes per omics block (None: all), stacked with a ``genes``
    column (the number of genes used); to show whether the CCLE number depends on the feature width. Every (width,
    seed) is one job of a single :func:`~perturbx.studies.protocol.run_jobs`, widest first, so that parallel
    workers stay busy while the slowest fits run."""
    widest_first = sorted(widths, key=lambda width: width or len(data.genes), reverse=True)
    jobs = [{"width": width, "seed": seed} for width in widest_first for seed in seeds]
    runs, _, _ = _ccle_jobs(data, models, settings, jobs, protocol, progress=False)
    return runs.assign(genes=runs.pop("width").map(lambda width: len(data.genes) if pd.isna(width) else int(width)))


def decide_claims(paper_ccle: CrossDatasetRuns, leakage_free_ccle: CrossDatasetRuns, cv_runs: pd.DataFrame,
                  data: str) -> list[Claim]:
    """The cross-attention paper's claims, decided from paired per-seed differences.

    Args:
        paper_ccle, leakage_free_ccle: :func:`cross_dataset` under the two protocols (with DeepDRA, cross-attention
            and the drug prior).
        cv_runs: :func:`cross_validate` runs on CTRP+GDSC (paired on seed and fold).
        data: what the claims were tested on, for the table.

    Returns:
        Three :class:`~perturbx.evaluation.claims.Claim`: cross-attention beats DeepDRA on CCLE; it beats DeepDRA in
        5-fold cross-validation; its CCLE predictions are better than the feature-free drug prior.
    """
    title, label = papers.DRP.title, MODELS.label
    ours, baseline, prior = "cross_attention", "deepdra", "drug_prior"

    def compared(ccle: CrossDatasetRuns, other: str, metric: str) -> Evidence:
        runs = ccle.runs[ccle.runs["subset"] == "all"]
        return Evidence.from_comparison(compare_models(runs, ours, other, metric),
                                        f"{label(ours)} ({ccle.protocol} protocol)", label)

    def reported(experiment: str) -> str:
        values = [papers.drp_reported(experiment, i, "roc_auc") for i in ("cross_attention", "deepdra")]
        return f"paper: ROC AUC {values[0]:.3f} vs {values[1]:.3f}"

    folds = cv_runs[cv_runs["subset"] == "all"]
    return [
        Claim("ccle_beats_deepdra", title, f"Cross-attention beats DeepDRA on CCLE after training on CTRP+GDSC "
              f"({reported('CTRP+GDSC -> CCLE')})", data,
              (compared(paper_ccle, baseline, "roc_auc"), compared(paper_ccle, baseline, "auprc"),
               compared(leakage_free_ccle, baseline, "roc_auc"))),
        Claim("cv_beats_deepdra", title, f"Cross-attention beats DeepDRA in 5-fold cross-validation on CTRP+GDSC "
              f"({reported('5-fold CV on CTRP+GDSC')})", data, (Evidence.from_comparison(
                  compare_models(folds, ours, baseline, "roc_auc", pair_on=("seed", "fold")),
                  f"{label(ours)} (folds of the leakage-free protocol)", label),)),
        Claim("ccle_beyond_drug_prior", title, "Cross-attention predicts CCLE responses beyond what the drug's "
              "training sensitive rate gives (the feature-free drug prior)", data,
              (compared(paper_ccle, prior, "roc_auc"), compared(leakage_free_ccle, prior, "roc_auc"))),
    ]


def protocol_table(settings: DRPSettings) -> pd.DataFrame:
    """The two protocols as this run applies them (from ``settings``, so the text cannot disagree with the run):
    class balance, what validation does, epochs, batch size, learning rate and its plateau, and the kept weights."""
    rows = []
    for name, spec in PROTOCOLS.items():
        config = settings.for_protocol(name).fit
        selects = config.validation == "select"
        rows.append({"protocol": name, "training pairs": "undersampled to equal classes" if spec.balance_training
                     else "natural class balance",
                     "validation (10%)": f"early stopping, patience {config.early_stopping_patience}" if selects
                     else "logged only",
                     "epochs": f"up to {config.epochs}" if selects else str(config.epochs),
                     "batch size": config.batch_size, "learning rate": config.lr,
                     "plateau": f"x{config.plateau_factor} after {config.plateau_patience} epochs on the "
                                f"{'validation' if selects else 'training'} loss",
                     "weights kept": "best validation epoch" if selects else "last epoch",
                     "genes per omics block": settings.n_genes or "all"})
    return pd.DataFrame(rows).set_index("protocol")


def epoch_spread(histories: pd.DataFrame, value: str = "test_roc_auc") -> pd.DataFrame:
    """How much ``value`` moves within a run against between runs, per model (index: model id): the mean over
    seeds of its range (max - min) over the second half of the epochs, the mean epoch-to-epoch change there, and
    the sd over seeds of its last-epoch value. ``histories``: :meth:`CrossDatasetRuns.histories` with ``value``
    logged."""
    rows = []
    for model, part in histories.groupby("model", sort=False):
        late = part[part["epoch"] > part.groupby("seed")["epoch"].transform("max") / 2]
        by_seed = late.groupby("seed")[value]
        last = part.sort_values("epoch").groupby("seed")[value].last()
        rows.append({"model": model, "seeds": part["seed"].nunique(),
                     "range within a run (second half)": (by_seed.max() - by_seed.min()).mean(),
                     "mean change epoch to epoch": by_seed.apply(lambda v: v.diff().abs().mean()).mean(),
                     "sd over seeds (last epoch)": last.std(ddof=1)})
    return pd.DataFrame(rows).set_index("model")


# ------------------------------------------------------------------------------------------------ the data, checked

# The label matrices of each dataset (registry names), as DeepDRA ships them
LABEL_FILES = {TRAIN_DATASET: "deepdra_ctrp_gdsc_labels", TEST_DATASET: "deepdra_ccle_labels"}


def load_data() -> DRPData:
    """The chapter's pairs: :func:`perturbx.datasets.drug_response.load_drp` (fetched, verified and cached)."""
    return load_drp()


def labelled_pairs_kept(kept_pairs: pd.Series) -> pd.Series:
    """Per dataset, the share of DeepDRA's labelled pairs that ``kept_pairs`` (dataset -> pairs kept) keeps; the rest
    lack omics or a structure."""
    labelled = {name: len(label_pairs(pd.read_csv(fetch(file), sep="\t", index_col=0), name).pairs)
                for name, file in LABEL_FILES.items()}
    return kept_pairs / pd.Series(labelled)


def ccle_label_agreement() -> tuple[int, int]:
    """DeepDRA's CCLE labels against the labels re-derived from CCLE's activity areas
    (:func:`perturbx.datasets.drug_response.ccle_labels_from_activity_area`): (pairs both label, pairs that agree)."""
    matrix = pd.read_csv(fetch(LABEL_FILES[TEST_DATASET]), sep="\t", index_col=0)
    derived = ccle_labels_from_activity_area(pd.read_csv(fetch("ccle_activity_area")))
    derived = derived.reindex(index=matrix.index, columns=matrix.columns)
    both = matrix.notna() & derived.notna()
    return int(both.to_numpy().sum()), int((matrix[both] == derived[both]).to_numpy().sum())


def precision_recall_conventions(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Precision and recall of ``scores`` (n,) against ``labels`` (n,) two ways: of the sensitive class, as
    scikit-learn and this book compute them, and as DeepDRA's code does (of the resistant class, swapped)."""
    ours, theirs = classification_metrics(labels, scores), deepdra_precision_recall(labels, scores)
    return pd.DataFrame({"precision": [ours["precision"], theirs["deepdra_precision"]],
                         "recall": [ours["recall"], theirs["deepdra_recall"]]},
                        index=pd.Index(["sensitive class (scikit-learn, this book)",
                                        "DeepDRA's code (resistant class, swapped)"], name="convention"))
