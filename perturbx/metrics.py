"""Metrics, on top of NumPy/SciPy/scikit-learn. One module for every chapter."""

from __future__ import annotations

import numpy as np


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
    from sklearn import metrics

    y_true = np.asarray(y_true).astype(int)
    score = np.asarray(score, dtype=float)
    predicted = (score > threshold).astype(int)
    precision_curve, recall_curve, _ = metrics.precision_recall_curve(y_true, score)
    return {
        "accuracy": metrics.accuracy_score(y_true, predicted),
        "precision": metrics.precision_score(y_true, predicted, zero_division=0),
        "recall": metrics.recall_score(y_true, predicted, zero_division=0),
        "f1": metrics.f1_score(y_true, predicted, zero_division=0),
        "roc_auc": metrics.roc_auc_score(y_true, score),
        "auprc": metrics.average_precision_score(y_true, score),
        "pr_auc_trapezoid": metrics.auc(recall_curve, precision_curve),
    }


def deepdra_precision_recall(y_true: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Precision and recall as DeepDRA's evaluation code computes them, for comparison with its tables.

    Its code takes cell [0, 0] of the confusion matrix (true negatives, class 0 = resistant) and divides by the
    first row and the first column, so its "precision" is the recall of the resistant class (specificity) and its
    "recall" is the precision of the resistant class (negative predictive value).
    """
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(np.asarray(y_true).astype(int), (np.asarray(score) > threshold).astype(int),
                              labels=[0, 1])
    return {"deepdra_precision": matrix[0, 0] / matrix[0].sum(), "deepdra_recall": matrix[0, 0] / matrix[:, 0].sum()}


def summarise_runs(runs: "pd.DataFrame", by: list[str], columns: list[str]) -> "pd.DataFrame":
    """Mean and standard deviation (ddof=1; NaN for one run) of ``columns`` per group, as 'mean ± sd' strings
    and as numbers (columns ``<metric>_mean``, ``<metric>_sd``)."""
    import pandas as pd

    grouped = runs.groupby(by, sort=False)[columns]
    mean, sd, n = grouped.mean(), grouped.std(ddof=1), grouped.size()
    out = pd.DataFrame(index=mean.index)
    for column in columns:
        out[column] = [f"{m:.3f} ± {s:.3f}" if np.isfinite(s) else f"{m:.3f}" for m, s in zip(mean[column], sd[column])]
    out["runs"] = n
    numbers = mean.add_suffix("_mean").join(sd.add_suffix("_sd"))
    return out.join(numbers)
