"""Analyses of curated (or simulated) L1000 data: how far profiles that should agree do agree.

Inputs are :class:`~perturbx.datasets.curated.CuratedL1000` sets; the analyses work on the change from basal
(``data.change``, treated minus basal, float32 (n, 978)), over the genes the input measured
(``data.measured``: a plate that lacks some landmark genes has NaN there, and they are left out).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from ..datasets.curated import CuratedL1000
from .metrics import pearson_rows

PAIR_KINDS = ("replicates", "same compound, adjacent doses", "different compounds, same dose")


def change_correlations(data: CuratedL1000, seed: int = 0, max_pairs: int = 2000) -> pd.DataFrame:
    """Pearson r between change-from-basal profiles of pairs that should agree, and of pairs that should not.

    Pair kinds (all within one cell line and time):
      - ``replicates``: two replicates of one condition (needs a ``condition_id`` column, as simulated data has);
      - ``same compound, adjacent doses``: one compound at two neighbouring doses;
      - ``different compounds, same dose``: random pairs of different compounds at one dose.

    Args:
        data: curated profiles; ``data.change`` is float32 (n, 978), metadata needs compound_id, compound_group,
            cell_id, dose_um (µM) and time_h (h).
        seed: seed of the random pair choices.
        max_pairs: at most this many random pairs per kind.

    Returns:
        DataFrame with columns ``kind`` (in :data:`PAIR_KINDS` order, kinds without pairs left out) and ``r``
        (dimensionless, -1 to 1), one row per pair.
    """
    rng = np.random.default_rng(seed)
    meta = data.metadata.reset_index(drop=True)
    pairs = {
        "replicates": _replicate_pairs(meta),
        "same compound, adjacent doses": _adjacent_dose_pairs(meta),
        "different compounds, same dose": _different_compound_pairs(meta, rng),
    }
    change = data.change[:, data.measured]  # genes the file did not measure are NaN
    frames = []
    for kind, found in pairs.items():
        if not found:
            continue
        found = np.asarray(found)
        if len(found) > max_pairs:
            found = found[rng.choice(len(found), max_pairs, replace=False)]
        frames.append(pd.DataFrame({"kind": kind, "r": pearson_rows(change[found[:, 0]], change[found[:, 1]])}))
    return pd.concat(frames, ignore_index=True)


def _replicate_pairs(meta: pd.DataFrame) -> list[tuple[int, int]]:
    """Consecutive replicates of each condition (none without a ``condition_id`` column)."""
    pairs: list[tuple[int, int]] = []
    if "condition_id" in meta.columns:
        for rows in meta.groupby("condition_id").indices.values():
            pairs += list(zip(rows[:-1], rows[1:]))
    return pairs


def _adjacent_dose_pairs(meta: pd.DataFrame) -> list[tuple[int, int]]:
    """The first profile of one compound at each dose, paired with that at the next dose (same cell and time)."""
    pairs: list[tuple[int, int]] = []
    for _, rows in meta.groupby(["compound_id", "cell_id", "time_h"]).indices.items():
        by_dose = meta.loc[rows].groupby("dose_um").apply(lambda g: g.index[0], include_groups=False)
        pairs += list(zip(by_dose.to_numpy()[:-1], by_dose.to_numpy()[1:]))
    return pairs


def _different_compound_pairs(meta: pd.DataFrame, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Random pairs of different compound groups at one cell line, time and dose (up to 20 draws per group)."""
    pairs: list[tuple[int, int]] = []
    for _, rows in meta.groupby(["cell_id", "time_h", "dose_um"]).indices.items():
        if len(rows) < 2:
            continue
        for _ in range(min(len(rows), 20)):
            i, j = rng.choice(rows, size=2, replace=False)
            if meta.at[i, "compound_group"] != meta.at[j, "compound_group"]:
                pairs.append((i, j))
    return pairs


# --------------------------------------------------------------------------------------------------- replicates

REPLICATE_GROUP = "replicate_group"
CONDITION_COLUMNS = ("compound_id", "compound_name", "cell_id", "dose_um", "time_h")


def replicate_agreement(data: CuratedL1000, group_column: str = REPLICATE_GROUP) -> pd.DataFrame:
    """Per condition, how well its replicate wells agree: the mean pairwise Pearson r of their changes from basal.

    Args:
        data: curated level-3 profiles with a ``group_column`` (e.g. from
            :func:`~perturbx.datasets.pharmacoset.read_pharmacoset`); ``data.change`` is float32 (n, 978), log2.
        group_column: the metadata column naming each profile's condition (compound, cell line, dose, time).

    Returns:
        One row per condition with at least 2 replicates: ``group_column``, the condition's
        :data:`CONDITION_COLUMNS` that the metadata has, ``n_replicates``, ``n_pairs`` (n(n-1)/2) and
        ``mean_r``, ``min_r``, ``max_r`` over its pairs (Pearson r over the 978 genes, dimensionless).
    """
    change = data.change[:, data.measured]  # genes the file did not measure are NaN
    rows = []
    for group, members in _replicate_sets(data.metadata, group_column):
        r = np.corrcoef(change[members].astype(np.float64))[np.triu_indices(len(members), k=1)]
        rows.append({group_column: group, **_condition(data.metadata, members), "n_replicates": len(members),
                     "n_pairs": len(r), "mean_r": float(np.mean(r)), "min_r": float(np.min(r)),
                     "max_r": float(np.max(r))})
    return pd.DataFrame(rows)


def other_compound_agreement(data: CuratedL1000, group_column: str = REPLICATE_GROUP) -> pd.DataFrame:
    """Per condition, how well its wells agree with the wells of *other* compounds in the same cell line, dose and
    time: the mean Pearson r of their changes from basal over every such pair. The baseline of
    :func:`replicate_agreement`: what two wells share through the plate, the vehicle and the design alone.

    Args:
        data: curated profiles with a ``group_column`` and ``compound_group``; ``data.change`` is float32 (n, 978).
        group_column: the metadata column naming each profile's condition.

    Returns:
        One row per condition that has wells of other compounds beside it: ``group_column``, the condition's
        :data:`CONDITION_COLUMNS` that the metadata has, ``n_pairs`` and ``mean_r_other`` (dimensionless).
    """
    meta = data.metadata.reset_index(drop=True)
    if group_column not in meta.columns:
        raise KeyError(f"metadata has no {group_column!r} column: replicate analyses need one label per condition")
    change = data.change[:, data.measured].astype(np.float64)  # genes the file did not measure are NaN
    rows = []
    for block in meta.groupby(["cell_id", "time_h", "dose_um"]).indices.values():
        r = np.corrcoef(change[block])
        groups, compounds = meta[group_column].to_numpy()[block], meta["compound_group"].to_numpy()[block]
        for group in pd.unique(groups):
            mine = groups == group
            others = compounds != compounds[mine][0]
            if others.any():
                rows.append({group_column: group, **_condition(meta, block[mine]),
                             "n_pairs": int(mine.sum() * others.sum()),
                             "mean_r_other": float(r[np.ix_(mine, others)].mean())})
    return pd.DataFrame(rows)


def split_half_ceiling(data: CuratedL1000, n_splits: int = 100, seed: int = 0,
                       group_column: str = REPLICATE_GROUP) -> pd.DataFrame:
    """Split-half replicate ceiling of the Pearson r of change, per condition.

    For each condition its replicate wells are split into two halves (sizes floor(n/2) and ceil(n/2)); the
    Pearson r over the 978 genes between the two halves' mean changes from basal is averaged over the splits:
    every distinct split when there are at most ``n_splits`` (3 for 3 or 4 replicates, 10 for 5 or 6), else
    ``n_splits`` random ones. This is the real noise ceiling a model's Pearson of change is measured against: two
    independent measurements of one condition agree this well, so a model scored against held-out replicate wells
    cannot be expected to exceed it.

    ``r_split_half`` is uncorrected (no Spearman-Brown): it is the agreement of means of about n/2 wells.
    ``r_spearman_brown`` = 2r / (1 + r) is the Spearman-Brown estimate of the reliability of the mean of all n
    wells; a noise-free prediction is expected to reach Pearson sqrt(r_spearman_brown) against that mean.

    Args:
        data: curated level-3 profiles with a ``group_column``; ``data.change`` is float32 (n, 978), log2.
        n_splits: at most this many splits per condition.
        seed: seed of the random splits (used only where a condition has more than ``n_splits`` splits).
        group_column: the metadata column naming each profile's condition.

    Returns:
        One row per condition with at least 2 replicates: ``group_column``, the :data:`CONDITION_COLUMNS` the
        metadata has, ``n_replicates``, ``n_splits``, ``r_split_half`` (mean over splits), ``r_split_half_sd``
        (sd over splits) and ``r_spearman_brown``.
    """
    rng = np.random.default_rng(seed)
    change = data.change[:, data.measured].astype(np.float64)  # genes the file did not measure are NaN
    rows = []
    for group, members in _replicate_sets(data.metadata, group_column):
        halves = _half_splits(len(members), n_splits, rng)
        first = np.stack([change[members[h]].mean(axis=0) for h in halves])
        second = np.stack([np.delete(change[members], h, axis=0).mean(axis=0) for h in halves])
        r = pearson_rows(first, second)
        mean_r = float(np.mean(r))
        rows.append({group_column: group, **_condition(data.metadata, members), "n_replicates": len(members),
                     "n_splits": len(halves), "r_split_half": mean_r, "r_split_half_sd": float(np.std(r)),
                     "r_spearman_brown": 2 * mean_r / (1 + mean_r) if mean_r > -1 else float("nan")})
    return pd.DataFrame(rows)


def replicate_summary(data: CuratedL1000, ceiling: pd.DataFrame | None = None, seed: int = 0,
                      group_column: str = REPLICATE_GROUP) -> pd.Series:
    """One replicate set in one row: its conditions, wells, the baseline of wells of other compounds
    (:func:`other_compound_agreement`), the agreement of replicate wells (:func:`replicate_agreement`) and the
    split-half ceiling (:func:`split_half_ceiling`, computed with ``seed`` unless ``ceiling`` is given).

    Returns:
        Series: conditions, wells per condition (median), r of two wells of different compounds (mean), pairwise
        r of replicate wells (mean, median), split-half r (mean, median), Spearman-Brown r (mean); r dimensionless.
    """
    ceiling = split_half_ceiling(data, seed=seed, group_column=group_column) if ceiling is None else ceiling
    agreement = replicate_agreement(data, group_column)
    return pd.Series({
        "conditions": len(ceiling), "wells per condition (median)": float(ceiling["n_replicates"].median()),
        "r of two wells of different compounds, mean": other_compound_agreement(data, group_column)["mean_r_other"]
        .mean(),
        "pairwise r of replicate wells, mean": agreement["mean_r"].mean(),
        "pairwise r, median": agreement["mean_r"].median(),
        "split-half r (ceiling), mean": ceiling["r_split_half"].mean(),
        "split-half r, median": ceiling["r_split_half"].median(),
        "Spearman-Brown r, mean": ceiling["r_spearman_brown"].mean()})


def leave_one_out_means(change: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """For each profile, the mean change of the *other* profiles of its condition.

    Args:
        change: (n, genes) changes from basal (log2).
        groups: (n,) condition label of each profile (replicates share it).

    Returns:
        float64 (n, genes): the leave-one-out mean, NaN rows for profiles alone in their condition.
    """
    change, groups = np.asarray(change, dtype=np.float64), np.asarray(groups)
    codes = pd.factorize(groups)[0]
    counts = np.bincount(codes)[codes][:, None]
    sums = np.zeros((codes.max() + 1, change.shape[1])) if len(codes) else np.zeros((0, change.shape[1]))
    np.add.at(sums, codes, change)
    with np.errstate(invalid="ignore", divide="ignore"):
        others = (sums[codes] - change) / (counts - 1)
    return np.where(counts > 1, others, np.nan)


def leave_one_out_ceiling(change: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    """Leave-one-replicate-out ceiling of the Pearson of change: each replicate against the mean of the others.

    For every profile whose condition has at least 2 profiles among those given (e.g. the test profiles of a
    split), the Pearson r over genes between its change from basal and the mean change of the other replicates of
    its condition (:func:`leave_one_out_means`). This is what a prediction equal to an independent measurement of
    the condition's mean reaches against one held-out well: the accuracy ceiling of a model scored per replicate.
    The mean of the others is itself noisy (n - 1 wells instead of the true mean), so this ceiling
    *underestimates* that of the noise-free true mean, by the factor sqrt(reliability of the mean of n - 1 wells)
    (Spearman-Brown, cf. :func:`split_half_ceiling`): slightly where replicates agree well, but by half where two
    wells correlate about 0.1 and 3 others are averaged (reliability 3 x 0.1 / (1 + 2 x 0.1) = 0.25). A model
    that pools other conditions (doses, times) can therefore exceed it.

    Args:
        change: (n, genes) changes from basal (log2).
        groups: (n,) condition label of each profile.

    Returns:
        One row per profile with a replicate: ``position`` (its index in ``change``), ``condition``,
        ``n_replicates`` (profiles of the condition, itself included) and ``pearson_change`` (dimensionless).
    """
    groups = np.asarray(groups)
    others = leave_one_out_means(change, groups)
    kept = np.flatnonzero(~np.isnan(others).any(axis=1))
    sizes = pd.Series(groups).map(pd.Series(groups).value_counts()).to_numpy()
    return pd.DataFrame({"position": kept, "condition": groups[kept], "n_replicates": sizes[kept],
                         "pearson_change": pearson_rows(np.asarray(change, np.float64)[kept], others[kept])})


def _replicate_sets(meta: pd.DataFrame, group_column: str) -> list[tuple[str, np.ndarray]]:
    """(condition, row positions) of every condition with at least 2 profiles, in order of first appearance."""
    if group_column not in meta.columns:
        raise KeyError(f"metadata has no {group_column!r} column: replicate analyses need one label per condition "
                       "(read_pharmacoset adds replicate_group)")
    positions = meta.reset_index(drop=True).groupby(group_column, sort=False).indices
    return [(group, np.asarray(rows)) for group, rows in positions.items() if len(rows) >= 2]


def _condition(meta: pd.DataFrame, members: np.ndarray) -> dict:
    """The condition's descriptive columns (those the metadata has), from its first profile."""
    first = meta.iloc[members[0]]
    return {column: first[column] for column in CONDITION_COLUMNS if column in meta.columns}


def _half_splits(n: int, n_splits: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Positions (within the condition) of the first half of every split: all distinct ones, or random ones."""
    size = n // 2
    n_distinct = math.comb(n, size) // (2 if n % 2 == 0 else 1)  # {A, B} and {B, A} are one split
    if n_distinct > n_splits:
        return [np.sort(rng.permutation(n)[:size]) for _ in range(n_splits)]
    every = [np.array(c) for c in itertools.combinations(range(n), size)]
    return [c for c in every if c[0] == 0] if n % 2 == 0 else every


def dmso_spread(expression: np.ndarray, plates=None, genes: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Well-to-well spread of vehicle (DMSO) wells: the standard deviation of each gene over wells.

    Args:
        expression: float (n_wells, n_genes) log2 expression of DMSO wells (e.g. from
            :func:`~perturbx.datasets.pharmacoset.dmso_wells`).
        plates: optional (n_wells,) plate of each well; adds the within-plate SD (each well minus its plate's
            mean, pooled over plates with n_wells - n_plates degrees of freedom), which leaves plate effects out;
            wells without a plate form one group.
        genes: optional gene table (n_genes rows, e.g. ``gene_id``, ``gene_symbol``) put in front of the result.

    Returns:
        ``(per_gene, summary)``: per_gene has one row per gene with ``sd`` (log2 units, ddof 1) and, with plates,
        ``sd_within_plate``; summary has n_wells, n_plates and the median, mean, 10th and 90th percentile of each
        SD column over genes (e.g. ``sd_median``).
    """
    values = np.asarray(expression, dtype=np.float64)
    if values.ndim != 2 or len(values) < 2:
        raise ValueError(f"dmso_spread needs (n_wells >= 2, n_genes) values, got shape {values.shape}")
    per_gene = pd.DataFrame({"sd": values.std(axis=0, ddof=1)})
    summary: dict = {"n_wells": int(len(values)), "n_plates": None}
    if plates is not None:
        plates = pd.Series(np.asarray(plates, dtype=object)).fillna("<no plate>")
        residual = values - pd.DataFrame(values).groupby(plates.to_numpy()).transform("mean").to_numpy()
        dof = len(values) - plates.nunique()
        per_gene["sd_within_plate"] = np.sqrt((residual**2).sum(axis=0) / dof) if dof > 0 else np.nan
        summary["n_plates"] = int(plates.nunique())
    for column in per_gene.columns:
        sd = per_gene[column].to_numpy()
        summary |= {f"{column}_median": float(np.median(sd)), f"{column}_mean": float(np.mean(sd)),
                    f"{column}_p10": float(np.percentile(sd, 10)), f"{column}_p90": float(np.percentile(sd, 90))}
    if genes is not None:
        per_gene = pd.concat([genes.reset_index(drop=True), per_gene], axis=1)
    return per_gene, summary
