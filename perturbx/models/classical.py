"""Baselines without deep learning: feature-free priors and gradient boosting, fitted on training pairs only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier


def _logit(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(p, 1e-6, 1 - 1e-6))


def sensitivity_priors(train: pd.DataFrame, test: pd.DataFrame, strength: float = 5.0) -> dict[str, np.ndarray]:
    """Scores from training-set sensitivity rates alone (no features).

    The rate of a drug (cell line) is shrunk towards the overall training rate as if ``strength`` pseudo-pairs at
    that rate had been seen; an unseen drug (cell line) gets the overall rate.

    Args:
        train, test: pairs with ``drug_id``, ``cell_id`` and (train) ``label`` columns.

    Returns:
        ``{"drug prior": p, "cell prior": p, "drug + cell prior": p}``, each (len(test),) probabilities of
        sensitive; the combined prior adds the two rates' log-odds and subtracts the overall rate's once.
    """
    overall = train["label"].mean()

    def rate(key: str) -> np.ndarray:
        stats = train.groupby(key)["label"].agg(["sum", "count"])
        shrunk = (stats["sum"] + strength * overall) / (stats["count"] + strength)
        return test[key].map(shrunk).fillna(overall).to_numpy(float)

    drug, cell = rate("drug_id"), rate("cell_id")
    combined = expit(_logit(drug) + _logit(cell) - _logit(np.array(overall)))
    return {"drug prior": drug, "cell prior": cell, "drug + cell prior": combined}


class GradientBoostingDRP:
    """Gradient boosting on PCA-reduced omics plus drug descriptors and PCA-reduced fingerprints.

    PCA is fitted on the training pairs' cell lines (per omics block) and drugs (fingerprints) only; the boosted
    trees (scikit-learn ``HistGradientBoostingClassifier``) on the training pairs only, with early stopping on an
    internal 10 % validation split of them.
    """

    def __init__(self, n_components: int = 32, max_iter: int = 500, learning_rate: float = 0.05, seed: int = 0):
        self.n_components, self.seed = n_components, seed
        self.model = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=learning_rate,
                                                    early_stopping=True, validation_fraction=0.1,
                                                    random_state=seed)

    def _design(self, cell_blocks: list[np.ndarray], drug_blocks: list[np.ndarray], pairs: pd.DataFrame,
                fit: bool) -> np.ndarray:
        if fit:
            cells, drugs = np.unique(pairs["cell_index"]), np.unique(pairs["drug_index"])

            def pca(block: np.ndarray, rows: np.ndarray) -> PCA:
                return PCA(min(self.n_components, len(rows), block.shape[1]), random_state=self.seed).fit(block[rows])

            self._cell_pca = [pca(block, cells) for block in cell_blocks]
            self._fingerprint_pca = pca(drug_blocks[1], drugs)
        cell_design = np.hstack([p.transform(b) for p, b in zip(self._cell_pca, cell_blocks)])
        drug_design = np.hstack([drug_blocks[0], self._fingerprint_pca.transform(drug_blocks[1])])
        return np.hstack([cell_design[pairs["cell_index"].to_numpy()], drug_design[pairs["drug_index"].to_numpy()]])

    def fit(self, cell_blocks: list[np.ndarray], drug_blocks: list[np.ndarray], pairs: pd.DataFrame):
        """cell_blocks: per-cell feature blocks (n_cells, d); drug_blocks: [descriptors, fingerprint]."""
        self.model.fit(self._design(cell_blocks, drug_blocks, pairs, fit=True), pairs["label"].to_numpy())
        return self

    def predict_proba(self, cell_blocks, drug_blocks, pairs: pd.DataFrame) -> np.ndarray:
        """(len(pairs),) probabilities of sensitive."""
        return self.model.predict_proba(self._design(cell_blocks, drug_blocks, pairs, fit=False))[:, 1]
