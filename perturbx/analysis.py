"""Analyses of curated (or simulated) L1000 data: how far profiles that should agree do agree.

Inputs are :class:`~perturbx.datasets.lincs.CuratedL1000` sets; the analyses work on the change from basal
(``data.change``, treated minus basal log2 expression, float32 (n, 978)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .datasets.lincs import CuratedL1000
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
    change = data.change
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
