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
