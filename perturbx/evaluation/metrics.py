"""Metrics, on top of NumPy/SciPy/scikit-learn. One module for every chapter."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from scipy.stats import rankdata
from scipy.stats import t as t_distribution
from sklearn import metrics as sk_metrics
from sklearn.metrics import confusion_matrix, r2_score


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b``.

    Args:
        a, b: arrays of shape (n, genes) (or broadcastable, e.g. b of shape (genes,)).

    Returns:
        (n,) correlations; NaN for a row with zero variance.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    a_centred = a - a.mean(axis=-1, keepdims=True)
    b_centred = b - b.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((a_centred**2).sum(-1) * (b_centred**2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a_centred * b_centred).sum(-1) / denominator


def classification_metrics(y_true: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Binary classification metrics with the positive class = 1 (sensitive), from scikit-learn.

    Args:
        y_true: (n,) labels in {0, 1}.
        score: (n,) predicted probabilities of class 1.
        threshold: probability above which a pair is called positive.

    Returns:
        accuracy, precision, recall, f1, roc_auc, auprc (average precision) and pr_auc_trapezoid (the area under
        the precision-recall curve by the trapezoid rule, which is what DeepDRA reports as AUPRC).
    """
    y_true = np.asarray(y_true).astype(int)
    score = np.asarray(score, dtype=float)
    predicted = (score > threshold).astype(int)
    precision_curve, recall_curve, _ = sk_metrics.precision_recall_curve(y_true, score)
    return {
        "accuracy": sk_metrics.accuracy_score(y_true, predicted),
        "precision": sk_metrics.precision_score(y_true, predicted, zero_division=0),
        "recall": sk_metrics.recall_score(y_true, predicted, zero_division=0),
        "f1": sk_metrics.f1_score(y_true, predicted, zero_division=0),
        "roc_auc": sk_metrics.roc_auc_score(y_true, score),
        "auprc": sk_metrics.average_precision_score(y_true, score),
        "pr_auc_trapezoid": sk_metrics.auc(recall_curve, precision_curve),
    }


def deepdra_precision_recall(y_true: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Precision and recall as DeepDRA's evaluation code computes them, for comparison with its tables.

    Its code takes cell [0, 0] of the confusion matrix (true negatives, class 0 = resistant) and divides by the
    first row and the first column, so its "precision" is the recall of the resistant class (specificity) and its
    "recall" is the precision of the resistant class (negative predictive value).
    """
    matrix = confusion_matrix(np.asarray(y_true).astype(int), (np.asarray(score) > threshold).astype(int),
                              labels=[0, 1])
    return {"deepdra_precision": matrix[0, 0] / matrix[0].sum(), "deepdra_recall": matrix[0, 0] / matrix[:, 0].sum()}


def format_mean_sd(mean: float, sd: float) -> str:
    """'0.912 ± 0.004', or '0.912' when there is no spread (one run: sd is NaN)."""
    return f"{mean:.3f} ± {sd:.3f}" if np.isfinite(sd) else f"{mean:.3f}"


def summarise_runs(runs: "pd.DataFrame", by: list[str], columns: list[str]) -> "pd.DataFrame":
    """Mean and standard deviation (ddof=1; NaN for one run) of ``columns`` per group, as 'mean ± sd' strings
    and as numbers (columns ``<metric>_mean``, ``<metric>_sd``)."""
    grouped = runs.groupby(by, sort=False)[columns]
    mean, sd, n = grouped.mean(), grouped.std(ddof=1), grouped.size()
    out = pd.DataFrame(index=mean.index)
    for column in columns:
        out[column] = [format_mean_sd(m, s) for m, s in zip(mean[column], sd[column])]
    out["runs"] = n
    numbers = mean.add_suffix("_mean").join(sd.add_suffix("_sd"))
    return out.join(numbers)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``a`` with the same row of ``b`` (Pearson of the ranks, ties averaged)."""
    return pearson_rows(rankdata(a, axis=-1), rankdata(np.broadcast_to(b, np.shape(a)), axis=-1))


def expression_metrics(expression: np.ndarray, predicted: np.ndarray, basal: np.ndarray, n_degs: int = 50,
                       k: int = 50) -> "pd.DataFrame":
    """Per-profile accuracy of predicted expression profiles.

    Args:
        expression: (n, genes) measured treated profiles (log2 expression).
        predicted: (n, genes) predicted treated profiles.
        basal: (n, genes) the paired basal profiles; change = profile - basal.
        n_degs: the top-``n_degs`` differentially expressed genes of a profile are those with the largest
            |measured change|.
        k: size of the up- and down-regulated gene lists for precision@k.

    Returns:
        One row per profile with columns:
        ``pearson`` / ``spearman`` (predicted vs measured profile), ``pearson_change`` (predicted vs measured
        change; NaN when the predicted change is constant, e.g. "no change"), ``rmse`` (all genes, log2 units),
        ``r2_top_degs`` (R² of the change over the profile's top DEGs: 1 - SS_res / SS_tot around their mean
        measured change; can be negative), ``precision_up`` / ``precision_down`` (fraction of the k most up-
        (down-) regulated measured genes among the k most up- (down-) regulated predicted ones; NaN, like
        ``pearson_change``, for a constant predicted change, which ranks no genes).
    """
    expression, predicted, basal = (np.asarray(x, dtype=np.float64) for x in (expression, predicted, basal))
    change, predicted_change = expression - basal, predicted - basal
    rows = np.arange(len(change))[:, None]
    degs = np.argsort(-np.abs(change), axis=1)[:, :n_degs]
    true_deg, predicted_deg = change[rows, degs], predicted_change[rows, degs]
    total = ((true_deg - true_deg.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    r2 = 1 - ((true_deg - predicted_deg) ** 2).sum(axis=1) / total

    def precision(order_true: np.ndarray, order_predicted: np.ndarray) -> np.ndarray:
        hits = [len(np.intersect1d(t[:k], p[:k], assume_unique=True)) for t, p in zip(order_true, order_predicted)]
        return np.asarray(hits, dtype=float) / k

    constant = np.ptp(predicted_change, axis=1) == 0
    pearson_change = np.where(constant, np.nan, pearson_rows(predicted_change, change))
    return pd.DataFrame({
        "pearson": pearson_rows(predicted, expression),
        "spearman": spearman_rows(predicted, expression),
        "pearson_change": pearson_change,
        "rmse": np.sqrt(((predicted - expression) ** 2).mean(axis=1)),
        "r2_top_degs": r2,
        "precision_up": np.where(constant, np.nan, precision(np.argsort(-change, axis=1),
                                                             np.argsort(-predicted_change, axis=1))),
        "precision_down": np.where(constant, np.nan, precision(np.argsort(change, axis=1),
                                                               np.argsort(predicted_change, axis=1))),
    })


EXPRESSION_METRICS = ("pearson", "spearman", "pearson_change", "rmse", "r2_top_degs", "precision_up",
                      "precision_down")


# ------------------------------------------------------------------------------------------ distributions

def _mean_distance(a: np.ndarray, b: np.ndarray, exclude_diagonal: bool = False) -> float:
    distances = cdist(a, b)
    if not exclude_diagonal:
        return float(distances.mean())
    n = len(a)
    return float(distances.sum() / (n * (n - 1))) if n > 1 else 0.0


def energy_distance(samples: np.ndarray, reference: np.ndarray, unbiased: bool = True) -> float:
    r"""Multivariate energy distance between two samples (Székely & Rizzo), Euclidean norm.

    :math:`2E\lVert X - Y\rVert - E\lVert X - X'\rVert - E\lVert Y - Y'\rVert`; zero (in expectation, when
    ``unbiased``) if and only if the distributions are equal. With ``unbiased`` the within-sample means leave out
    the zero self-distances (U-statistics), so two samples of one distribution score about 0 whatever their sizes
    (a value can then be slightly negative); otherwise the V-statistic, which is never negative.

    Args:
        samples: (n, genes); reference: (m, genes), same units (here: log2 expression).

    Returns:
        Energy distance (units of the norm: log2 expression).
    """
    samples, reference = (np.asarray(x, dtype=np.float64) for x in (samples, reference))
    if samples.ndim != 2 or reference.ndim != 2 or samples.shape[1] != reference.shape[1]:
        raise ValueError(f"energy distance needs two (n, genes) arrays with the same genes, got {samples.shape} "
                         f"and {reference.shape}")
    return (2 * _mean_distance(samples, reference) - _mean_distance(samples, samples, unbiased)
            - _mean_distance(reference, reference, unbiased))


def energy_score(samples: np.ndarray, observed: np.ndarray) -> float:
    r"""Energy score of a sampled forecast for one observation (Gneiting & Raftery 2007), lower is better.

    :math:`E\lVert X - y\rVert - \tfrac12 E\lVert X - X'\rVert`: a proper scoring rule, usable where a
    condition was measured once (the real L1000 data has no replicates). A point forecast (one sample) scores
    its Euclidean error.

    Args:
        samples: (n, genes) draws of the forecast; observed: (genes,).
    """
    samples = np.asarray(samples, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)[None, :]
    return _mean_distance(samples, observed) - 0.5 * _mean_distance(samples, samples, exclude_diagonal=True)


def variance_r2(sample_variance: np.ndarray, true_variance: np.ndarray) -> float:
    """R² of per-gene variances (scikit-learn ``r2_score``): how well generated spreads match the true ones.

    Args:
        sample_variance, true_variance: (genes,) per-gene variance of one condition (log2 units squared).
    """
    return float(r2_score(np.asarray(true_variance, dtype=np.float64), np.asarray(sample_variance, np.float64)))


def spread_ratio(samples: np.ndarray, true_sd: np.ndarray) -> float:
    """Mean over genes of (SD of the samples / true SD) for one condition: 1 = right diversity, 0 = one point.

    Args:
        samples: (n, genes); true_sd: (genes,) positive.
    """
    return float(np.mean(np.asarray(samples, np.float64).std(axis=0, ddof=1) / np.asarray(true_sd, np.float64)))


@dataclass(frozen=True)
class Comparison:
    """Paired per-seed comparison of two models on one metric (:func:`compare_models`).

    Attributes:
        model, baseline, metric: what was compared.
        difference: mean over pairs of (model - baseline), signed so that > 0 means ``model`` is better.
        sd: standard deviation of the paired differences (ddof=1; NaN for one pair).
        n: number of pairs (seeds, or seed x fold) both models were run on.
        wins: pairs in which ``model`` was better.
        low, high: 95% confidence interval of the mean difference (Student t on the paired differences).
        verdict: ``"beats"`` (interval above 0), ``"does NOT beat"`` (interval below 0), ``"ties with"``
            (interval contains 0) or ``"cannot be compared with"`` (fewer than ``min_pairs`` pairs).
    """

    model: str
    baseline: str
    metric: str
    difference: float
    sd: float
    n: int
    wins: int
    low: float
    high: float
    verdict: str

    @property
    def details(self) -> str:
        """E.g. 'paired difference +0.041 ± 0.012, 95% CI [+0.026, +0.056], better in 5 of 5'."""
        if self.verdict == "cannot be compared with":
            return f"{self.n} paired run{'s' * (self.n != 1)}, at least 3 are needed"
        return (f"paired difference {self.difference:+.3f} ± {self.sd:.3f}, "
                f"95% CI [{self.low:+.3f}, {self.high:+.3f}], better in {self.wins} of {self.n}")

    def __str__(self) -> str:
        """The verdict and its details, e.g. 'beats (paired difference +0.041 ± 0.012, ..., better in 5 of 5)'."""
        return f"{self.verdict} ({self.details})"

    def row(self) -> dict:
        """The comparison as one table row."""
        return {"model": self.model, "baseline": self.baseline, "metric": self.metric,
                "difference": self.difference, "sd": self.sd, "ci_low": self.low, "ci_high": self.high,
                "wins": self.wins, "pairs": self.n, "verdict": self.verdict}


def compare_models(runs: pd.DataFrame, model: str, baseline: str, metric: str, pair_on: Sequence[str] = ("seed",),
                   higher_is_better: bool = True, min_pairs: int = 3) -> Comparison:
    """Whether ``model`` beats ``baseline`` on ``metric``, from paired per-run differences.

    A single run cannot decide: runs of the two models are paired on ``pair_on`` (the seed, or seed and fold), and
    the verdict comes from the 95% confidence interval of the mean paired difference (a paired t-test), never from
    the difference of two means with overlapping spreads.

    Args:
        runs: one row per (run, model) with a ``model`` column (labels), the ``pair_on`` columns and ``metric``;
            filter it to one split or dataset first.
        model, baseline: model labels in ``runs["model"]``.
        higher_is_better: False for losses and errors (RMSE, energy distance).
        min_pairs: fewer pairs give the verdict ``"cannot be compared with"``.

    Raises:
        ValueError: a model absent from ``runs`` or a pairing key that is not unique per model.
    """
    values = {}
    for side, name in (("model", model), ("baseline", baseline)):
        part = runs.loc[runs["model"] == name]
        if part.empty:
            raise ValueError(f"compare_models: no runs of {name!r}; models present: {sorted(runs['model'].unique())}")
        if part.duplicated(list(pair_on)).any():
            raise ValueError(f"compare_models: {name!r} has several runs per {list(pair_on)}; filter the runs to one "
                             "split (or add the key that tells them apart to pair_on)")
        values[side] = part.set_index(list(pair_on))[metric]
    paired = pd.DataFrame(values).dropna()
    differences = (paired["model"] - paired["baseline"]).to_numpy(float) * (1.0 if higher_is_better else -1.0)
    n = len(differences)
    mean = float(differences.mean()) if n else np.nan
    sd = float(differences.std(ddof=1)) if n > 1 else np.nan
    half = float(t_distribution.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 else np.nan
    low, high = mean - half, mean + half
    if n < min_pairs:
        verdict = "cannot be compared with"
    else:
        verdict = "beats" if low > 0 else "does NOT beat" if high < 0 else "ties with"
    return Comparison(model, baseline, metric, mean, sd, n, int((differences > 0).sum()), low, high, verdict)


def nan_columns(names: Iterable[str]) -> dict[str, float]:
    """``{name: NaN}`` for each name (metrics a model cannot have)."""
    return dict.fromkeys(names, np.nan)
