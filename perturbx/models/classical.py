"""Baselines without deep learning, fitted on training data only: drug-response priors and gradient boosting;
scikit-learn regressors of expression changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import RidgeCV
from sklearn.multioutput import MultiOutputRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _logit(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(p, 1e-6, 1 - 1e-6))


def sensitivity_priors(train: pd.DataFrame, test: pd.DataFrame, strength: float = 5.0) -> dict[str, np.ndarray]:
    """Scores from training-set sensitivity rates alone (no features).

    The rate of a drug (cell line) is shrunk towards the overall training rate as if ``strength`` pseudo-pairs at
    that rate had been seen; an unseen drug (cell line) gets the overall rate.

    Args:
        train, test: pairs with ``drug_id``, ``cell_id`` and (train) ``label`` columns.

    Returns:
        ``{"drug_prior": p, "cell_prior": p, "drug_cell_prior": p}``, each (len(test),) probabilities of
        sensitive; the combined prior adds the two rates' log-odds and subtracts the overall rate's once.
    """
    overall = train["label"].mean()

    def rate(key: str) -> np.ndarray:
        stats = train.groupby(key)["label"].agg(["sum", "count"])
        shrunk = (stats["sum"] + strength * overall) / (stats["count"] + strength)
        return test[key].map(shrunk).fillna(overall).to_numpy(float)

    drug, cell = rate("drug_id"), rate("cell_id")
    combined = expit(_logit(drug) + _logit(cell) - _logit(np.array(overall)))
    return {"drug_prior": drug, "cell_prior": cell, "drug_cell_prior": combined}


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


# Regressor id -> the label tables show.
EXPRESSION_REGRESSORS = {"ridge": "ridge", "random_forest": "random forest", "gradient_boosting": "gradient boosting",
                         "mlp": "MLP"}


class ExpressionRegressor:
    """A scikit-learn regressor of the change of 978 genes from a design matrix (fingerprint, basal, dose, time).

    - ``ridge``: ``RidgeCV`` (penalty chosen by internal cross-validation on the training rows), all genes.
    - ``random_forest``: ``RandomForestRegressor`` on the first ``n_target_components`` principal components of
      the training changes (a forest with 978 outputs spends most of its time scoring splits on noise genes).
    - ``gradient_boosting``: one ``HistGradientBoostingRegressor`` per target component (same PCA), early stopping
      on an internal 10 % of the training rows.
    - ``mlp``: ``MLPRegressor`` (two hidden layers of 256, early stopping on 10 % of the training rows), all genes.

    Features are standardised with training statistics (``StandardScaler`` inside the pipeline); the target PCA
    is fitted on training rows only.
    """

    def __init__(self, kind: str, n_target_components: int = 32, seed: int = 0, n_estimators: int = 200):
        if kind not in EXPRESSION_REGRESSORS:
            raise ValueError(f"unknown regressor {kind!r}; use one of {', '.join(EXPRESSION_REGRESSORS)}")
        self.kind, self.seed, self.n_target_components = kind, seed, n_target_components
        estimator = {
            "ridge": lambda: RidgeCV(alphas=np.logspace(-1, 4, 11)),
            "random_forest": lambda: RandomForestRegressor(n_estimators=n_estimators, max_features="sqrt",
                                                           min_samples_leaf=2, n_jobs=-1, random_state=seed),
            "gradient_boosting": lambda: MultiOutputRegressor(HistGradientBoostingRegressor(
                max_iter=n_estimators, learning_rate=0.1, early_stopping=True, validation_fraction=0.1,
                random_state=seed), n_jobs=-1),
            "mlp": lambda: MLPRegressor(hidden_layer_sizes=(256, 256), early_stopping=True, max_iter=200,
                                        random_state=seed),
        }[kind]()
        self.model = make_pipeline(StandardScaler(), estimator)
        self.target_pca = (PCA(n_target_components, random_state=seed)
                           if kind in ("random_forest", "gradient_boosting") else None)

    def fit(self, design: np.ndarray, change: np.ndarray) -> ExpressionRegressor:
        """design: (n, features); change: (n, genes) training changes from basal."""
        target = change
        if self.target_pca is not None:
            self.target_pca.set_params(n_components=min(self.n_target_components, *change.shape))
            target = self.target_pca.fit_transform(change)
        self.model.fit(design, target)
        return self

    def predict(self, design: np.ndarray) -> np.ndarray:
        """(n, genes) predicted changes."""
        predicted = self.model.predict(design)
        if self.target_pca is not None:
            predicted = self.target_pca.inverse_transform(predicted.reshape(len(design), -1))
        return predicted
