"""Is a semi-synthetic benchmark learnable from structure? A check of the simulator, not of a model.

On an unseen-compound split (whole compound structures held out, :func:`perturbx.splits.unseen_compound_split`;
its validation part is unused), :func:`learnability_table` scores, on the test profiles, the Pearson of the
predicted change from basal with the observed (noisy) change, averaged over profiles and over compounds (a
reference compound has hundreds of profiles and can dominate the first), and with the simulator's exact mean
change, of:

(a) the per-cell-line mean change of the training profiles;
(b) ridge (RidgeCV) on Morgan fingerprints (radius 2, the simulator's length) + standardised basal + log dose +
    log time, fitted on training profiles only;
(c) the same ridge given only the TRUE causal fingerprint bits (``truth.causal_bits``) instead of the whole
    fingerprint: what structure explains when the right substructures are known;
(d) the ceiling: the simulator's exact mean change (its Pearson with the true mean is 1 by definition).

A learnable benchmark has (b) clearly above (a) and (c) close to (d).

The ridge picks its penalty on training compounds held out of an inner fit (group CV: leave-one-out over
profiles would keep a held-out profile's replicates and compound in the fit and pick too small a penalty for
unseen compounds). Two exact rewrites keep it fast: it fits the mean change of each training condition weighted
by its number of replicates (the same least-squares objective as fitting every replicate), and the 978
standardised basal genes enter as their coordinates in the span of the training cell lines (ridge predictions
depend on features only through inner products, which this rotation keeps).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupShuffleSplit
from sklearn.preprocessing import StandardScaler

from ..chem import morgan_fingerprints
from ..datasets.simulate import Simulation
from ..splits import unseen_compound_split
from .metrics import pearson_rows

ALPHAS = np.logspace(-1, 4, 11)


def learnability_table(simulation: Simulation, seed: int = 0) -> pd.DataFrame:
    """Scores (a)-(d) of the module docstring on one unseen-compound split of ``simulation``.

    Returns:
        One row per predictor: ``predictor``, ``r_profiles`` and ``r_compounds`` (mean Pearson of change with the
        observed test profiles, over profiles and over compounds), ``r_true_mean`` (with the exact mean change),
        ``note`` (ridge penalty), ``seconds``; ``attrs`` holds the train/test compound and profile counts.
    """
    meta = simulation.data.metadata
    split = unseen_compound_split(meta, seed=seed)
    bits = _profile_fingerprints(simulation)
    observed, truth = _changes(simulation, split.test)
    groups = meta["compound_group"].to_numpy()[split.test]
    rows = []
    for label, predict in PREDICTORS:
        started = time.perf_counter()
        predicted, note = predict(simulation, bits, split.train, split.test)
        r_observed = pearson_rows(predicted, observed)
        rows.append({"predictor": label, "r_profiles": float(np.nanmean(r_observed)),
                     "r_compounds": float(pd.Series(r_observed).groupby(groups).mean().mean()),
                     "r_true_mean": float(np.nanmean(pearson_rows(predicted, truth))), "note": note.lstrip(", "),
                     "seconds": time.perf_counter() - started})
    table = pd.DataFrame(rows)
    table.attrs = {"train": _describe(meta, split.train), "test": _describe(meta, split.test)}
    return table


def _describe(meta: pd.DataFrame, rows: np.ndarray) -> str:
    return f"{meta['compound_group'].iloc[rows].nunique():,} compounds / {len(rows):,} profiles"


def _changes(simulation: Simulation, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(observed change, exact mean change) of the profiles at ``rows``, float32 (len(rows), 978) log2 units."""
    data = simulation.data
    basal = data.basal[rows]
    return data.expression[rows] - basal, simulation.truth.mean[simulation.condition_rows(rows)] - basal


def _profile_fingerprints(simulation: Simulation) -> np.ndarray:
    """Morgan fingerprints (radius 2, the simulator's length) of every profile's compound, uint8 (n, n_bits)."""
    meta = simulation.data.metadata
    smiles = meta.drop_duplicates("compound_id").set_index("compound_id")["canonical_smiles"]
    table = morgan_fingerprints(smiles.tolist(), n_bits=simulation.truth.config.fingerprint_bits,
                                records=smiles.index.tolist())
    return table[smiles.index.get_indexer(meta["compound_id"])]


def _cell_line_mean(simulation: Simulation, bits: np.ndarray, train: np.ndarray,
                    test: np.ndarray) -> tuple[np.ndarray, str]:
    """Mean observed training change of each test profile's cell line (the overall mean for an unseen line)."""
    cells = simulation.data.metadata["cell_id"].to_numpy()
    change, _ = _changes(simulation, train)
    predicted = np.broadcast_to(change.mean(axis=0), (len(test), change.shape[1])).copy()
    for cell in np.unique(cells[test]):
        in_train = cells[train] == cell
        if in_train.any():
            predicted[cells[test] == cell] = change[in_train].mean(axis=0)
    return predicted, ""


def _basal_coordinates(simulation: Simulation, train: np.ndarray) -> pd.DataFrame:
    """Standardised basal profile of each cell line (scaler fitted on training profiles) in coordinates of the
    span of the training cell lines: cells x rank (at most the number of training cell lines)."""
    meta, basal = simulation.data.metadata, simulation.data.basal
    scaler = StandardScaler().fit(basal[train])
    first = meta.reset_index(drop=True).drop_duplicates("cell_id")
    z = scaler.transform(basal[first.index.to_numpy()])
    _, singular, axes = np.linalg.svd(z[np.isin(first["cell_id"], meta["cell_id"].iloc[train])],
                                      full_matrices=False)
    keep = singular > 1e-6 * singular.max()
    return pd.DataFrame(z @ axes[keep].T, index=first["cell_id"].to_numpy())


def _features(simulation: Simulation, bits: np.ndarray, rows: np.ndarray, basal: pd.DataFrame) -> np.ndarray:
    """[bits, basal coordinates, log10 dose (µM), log10 time (h)], float64 (len(rows), n_features)."""
    meta = simulation.data.metadata.iloc[rows]
    dose_time = np.log10(meta[["dose_um", "time_h"]].to_numpy(np.float64))
    return np.hstack([bits[rows], basal.loc[meta["cell_id"]].to_numpy(), dose_time])


def _pearson_score(estimator, features: np.ndarray, change: np.ndarray,
                   sample_weight: np.ndarray | None = None) -> float:
    """Mean Pearson of predicted with observed change over the held-out conditions, weighted by ``sample_weight``
    when given. RidgeCV's search passes the fit's replicate weights to the fit but not to the scorer (scikit-learn
    routes them only with metadata routing on), so in practice the mean is unweighted."""
    r = pearson_rows(estimator.predict(features), change)
    return float(np.average(np.nan_to_num(r), weights=sample_weight))


def _ridge(simulation: Simulation, bits: np.ndarray, train: np.ndarray, test: np.ndarray,
           seed: int = 0) -> tuple[np.ndarray, str]:
    """RidgeCV on [bits, basal, dose, time] fitted to the training changes (condition means, weighted by their
    replicates), penalty chosen on 20 % of the training compounds held out; predicted changes (len(test), 978).

    Args:
        bits: uint8 (n_profiles, n_bits) structure features of every profile.
    """
    meta = simulation.data.metadata
    _, first, position, counts = np.unique(meta["condition_id"].to_numpy()[train], return_index=True,
                                           return_inverse=True, return_counts=True)
    change, _ = _changes(simulation, train)
    mean_change = np.zeros((len(first), change.shape[1]))
    np.add.at(mean_change, position, change)
    mean_change /= counts[:, None]
    basal = _basal_coordinates(simulation, train)
    features = _features(simulation, bits, train[first], basal)
    inner = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed)
    folds = list(inner.split(features, groups=meta["compound_group"].to_numpy()[train[first]]))
    model = RidgeCV(alphas=ALPHAS, cv=folds, scoring=_pearson_score).fit(features, mean_change, sample_weight=counts)
    return model.predict(_features(simulation, bits, test, basal)), f", {bits.shape[1]} bits, alpha {model.alpha_:g}"


def _fingerprint_ridge(simulation: Simulation, bits: np.ndarray, train: np.ndarray,
                       test: np.ndarray) -> tuple[np.ndarray, str]:
    """(b): ridge on the whole fingerprint."""
    return _ridge(simulation, bits, train, test)


def _causal_bit_ridge(simulation: Simulation, bits: np.ndarray, train: np.ndarray,
                      test: np.ndarray) -> tuple[np.ndarray, str]:
    """(c): ridge on the simulator's causal bits only."""
    return _ridge(simulation, bits[:, simulation.truth.causal_bits], train, test)


def _true_change(simulation: Simulation, bits: np.ndarray, train: np.ndarray,
                 test: np.ndarray) -> tuple[np.ndarray, str]:
    """(d): the exact mean change."""
    return _changes(simulation, test)[1], ""


PREDICTORS = (("(a) per-cell-line mean change", _cell_line_mean),
              ("(b) ridge on Morgan fingerprints", _fingerprint_ridge),
              ("(c) ridge on the true causal bits", _causal_bit_ridge),
              ("(d) ceiling: true mean change", _true_change))
