"""Train/validation/test splits, one place for every chapter.

- :func:`random_split`: profiles (or pairs) assigned at random.
- :func:`group_split`: whole groups held out, e.g. unseen compounds (group = ``compound_group``, the salt- and
  stereo-free structure key) or unseen cell lines (group = ``cell_id``).
- :func:`level_split`: for each of some compounds, one of its levels of a design factor held out (an interior dose,
  one of its times), so that the model has seen the compound at its other levels and the level with other compounds.
- :func:`kfold`: k folds, plain, stratified by a label, or grouped.
- :func:`plate_transfer_split`: train on one plate (or source), test on the compounds of another plate that the
  first never measured: a real unseen-compound test across plates.

Every split is checked for disjointness (and, for group splits, for groups shared across parts) before it is
returned; a violation raises ``AssertionError``. Built on scikit-learn's splitters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, KFold, ShuffleSplit, StratifiedKFold


@dataclass(frozen=True)
class Split:
    """Integer positions of the train, validation and test parts (each sorted)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    kind: str = "random"

    def sizes(self) -> dict[str, int]:
        """Number of positions in each part, keyed ``train``, ``val`` and ``test``."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def assert_disjoint(split: Split, groups: np.ndarray | None = None) -> None:
    """Raise ``AssertionError`` if parts share a position, or (given ``groups``) a group."""
    parts = {"train": split.train, "val": split.val, "test": split.test}
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = np.intersect1d(parts[a], parts[b])
            assert len(shared) == 0, f"{split.kind} split: {len(shared)} positions in both {a} and {b}"
            if groups is not None:
                groups = np.asarray(groups)
                common = np.intersect1d(groups[parts[a]], groups[parts[b]])
                assert len(common) == 0, (f"{split.kind} split: groups in both {a} and {b}, "
                                          f"e.g. {list(common[:3])}")


def _three_way(n: int, test_size: float, val_size: float, seed: int, groups: np.ndarray | None) -> Split:
    positions = np.arange(n)
    rng = np.random.RandomState(seed)
    if val_size == 0:  # two parts only: train and test
        splitter = ShuffleSplit if groups is None else GroupShuffleSplit
        train, test = next(splitter(n_splits=1, test_size=test_size, random_state=rng).split(positions, groups=groups))
        return Split(np.sort(train), np.array([], dtype=int), np.sort(test))
    if groups is None:
        outer = ShuffleSplit(n_splits=1, test_size=test_size, random_state=rng)
        rest, test = next(outer.split(positions))
        inner = ShuffleSplit(n_splits=1, test_size=val_size / (1 - test_size), random_state=rng)
        train, val = next(inner.split(rest))
    else:
        outer = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=rng)
        rest, test = next(outer.split(positions, groups=groups))
        inner = GroupShuffleSplit(n_splits=1, test_size=val_size / (1 - test_size), random_state=rng)
        train, val = next(inner.split(rest, groups=groups[rest]))
    return Split(np.sort(rest[train]), np.sort(rest[val]), np.sort(test))


def random_split(n: int, test_size: float = 0.2, val_size: float = 0.1, seed: int = 0) -> Split:
    """Random split of ``n`` items; ``test_size`` and ``val_size`` are fractions of all items."""
    split = _three_way(n, test_size, val_size, seed, None)
    split = Split(split.train, split.val, split.test, "random")
    assert_disjoint(split)
    return split


def group_split(groups: np.ndarray, test_size: float = 0.2, val_size: float = 0.1, seed: int = 0,
                kind: str = "group") -> Split:
    """Hold out whole groups: no group appears in two parts.

    Args:
        groups: (n,) group label per item, e.g. ``metadata["compound_group"]`` for unseen compounds or
            ``metadata["cell_id"]`` for unseen cell lines.
        test_size, val_size: approximate fractions of *groups* in the test and validation parts.
        kind: a name for messages and tables, e.g. ``"unseen compound"``.
    """
    groups = np.asarray(groups)
    if len(np.unique(groups)) < 3:
        raise ValueError(f"{kind} split needs at least 3 distinct groups, got {len(np.unique(groups))}")
    split = _three_way(len(groups), test_size, val_size, seed, groups)
    split = Split(split.train, split.val, split.test, kind)
    assert_disjoint(split, groups)
    return split


def unseen_compound_split(metadata, **kwargs) -> Split:
    """:func:`group_split` on ``metadata["compound_group"]`` (structure key: salts and stereo removed)."""
    return group_split(metadata["compound_group"].to_numpy(), kind="unseen compound", **kwargs)


def plate_transfer_split(metadata, train: str, test: str, column: str = "source", val_size: float = 0.1,
                         seed: int = 0) -> Split:
    """Train (and validate) on the rows of ``train``; test on the rows of ``test`` whose compound group is not in
    ``train``. Rows of ``test`` whose compound the training plate measured are in no part.

    Args:
        metadata: curated metadata with ``compound_group`` and ``column``.
        train, test: values of ``column`` (e.g. ``"l1000_level3_a375_plate"``, ``"l1000_level3_a375_6h_plate"``).
        val_size: fraction of the training plate's compound groups held out for validation.
        seed: for the validation groups.

    Raises:
        ValueError: ``train`` or ``test`` has no rows, or the test plate has no compound the training plate lacks.
    """
    source, groups = metadata[column].to_numpy(), metadata["compound_group"].to_numpy()
    train_rows, test_rows = np.flatnonzero(source == train), np.flatnonzero(source == test)
    for name, rows in ((train, train_rows), (test, test_rows)):
        if not len(rows):
            raise ValueError(f"plate transfer split: no rows with {column} == {name!r}")
    unseen = test_rows[~np.isin(groups[test_rows], groups[train_rows])]
    if not len(unseen):
        raise ValueError(f"plate transfer split: every compound of {test!r} is also in {train!r}")
    inner = group_split(groups[train_rows], test_size=val_size, val_size=0.0, seed=seed) if val_size else None
    fit, val = (train_rows[inner.train], train_rows[inner.test]) if inner else (train_rows, train_rows[:0])
    split = Split(np.sort(fit), np.sort(val), np.sort(unseen), "plate transfer")
    assert_disjoint(split, groups)
    return split


def unseen_cell_split(metadata, **kwargs) -> Split:
    """:func:`group_split` on ``metadata["cell_id"]``."""
    return group_split(metadata["cell_id"].to_numpy(), kind="unseen cell", **kwargs)


def _hold_out_levels(compounds: np.ndarray, levels: np.ndarray, rows: np.ndarray, rng: np.random.RandomState,
                     interior: bool, n_compounds: int | None) -> np.ndarray:
    """Positions among ``rows`` of one held-out level for each of ``n_compounds`` eligible compounds (all when
    None), chosen in a seeded order; each compound takes the eligible level held out least often so far (ties at
    random), so the held-out levels are balanced across compounds. A compound is eligible when it keeps at least
    one level among ``rows`` afterwards (3 levels with ``interior``: neither its lowest nor its highest is held
    out). Unknown (NaN) levels are never held out."""
    known = rows[~np.isnan(levels[rows])]
    by_compound = {c: np.unique(levels[known[compounds[known] == c]]) for c in np.unique(compounds[known])}
    eligible = [c for c, values in by_compound.items() if len(values) >= (3 if interior else 2)]
    chosen = [eligible[i] for i in rng.permutation(len(eligible))][:n_compounds]
    counts: dict[float, int] = {}
    held = []
    for compound in chosen:
        values = by_compound[compound][1:-1] if interior else by_compound[compound]
        used = np.array([counts.get(v, 0) for v in values])
        level = values[rng.choice(np.flatnonzero(used == used.min()))]
        counts[level] = counts.get(level, 0) + 1
        held.append(known[(compounds[known] == compound) & (levels[known] == level)])
    return np.sort(np.concatenate(held)) if held else np.array([], dtype=int)


def _block_count(compounds: np.ndarray, levels: np.ndarray, size: float) -> int:
    """How many (compound, level) blocks make about ``size`` of all blocks (at least 1 when size > 0)."""
    known = ~np.isnan(levels)
    blocks = len(set(zip(compounds[known], levels[known])))
    return max(1, round(size * blocks)) if size > 0 else 0


def level_split(compounds: np.ndarray, levels: np.ndarray, test_size: float | None = None, val_size: float = 0.1,
                seed: int = 0, interior: bool = False, kind: str = "held-out level",
                groups: np.ndarray | None = None) -> Split:
    """Hold out one level of a design factor (a dose, a time) per compound, all profiles of that compound at that
    level together (whatever their other factors: cell line, time or dose, replicate).

    The test part takes, for each of some compounds, one of its levels (:func:`_hold_out_levels`: seeded, balanced
    over the levels); the validation part is chosen the same way from the remaining rows, so early stopping
    validates on the same kind of hold-out. A compound keeps at least one level in training.

    Args:
        compounds: (n,) compound label per item (``compound_group``).
        levels: (n,) float level per item, e.g. dose (µM) or time (h); NaN = unknown, always trained on.
        test_size: fraction of the (compound, level) blocks held out for test; None = one level of every
            eligible compound (e.g. one interior dose of each compound).
        val_size: fraction of the blocks held out for validation (0: no validation part).
        interior: hold out interior levels only (neither a compound's lowest nor its highest): interpolation.
        kind: a name for messages and tables, e.g. ``"held-out dose"``.
        groups: optional (n,) condition labels, checked to be whole on one side (replicates together).

    Raises:
        ValueError: no compound has enough levels to hold one out, naming the kind and what it needs.
    """
    compounds, levels = np.asarray(compounds), np.asarray(levels, dtype=float)
    rng, everything = np.random.RandomState(seed), np.arange(len(compounds))
    n_test = None if test_size is None else _block_count(compounds, levels, test_size)
    test = _hold_out_levels(compounds, levels, everything, rng, interior, n_test)
    if len(test) == 0:
        raise ValueError(f"{kind} split: no compound has {3 if interior else 2} or more known levels to hold one "
                         "out; use a random or unseen-compound split for this design")
    rest = np.setdiff1d(everything, test)
    n_val = _block_count(compounds, levels, val_size)
    val = _hold_out_levels(compounds, levels, rest, rng, interior, n_val) if n_val else np.array([], dtype=int)
    split = Split(np.setdiff1d(rest, val), val, test, kind)
    assert_disjoint(split, groups)
    return split


def kfold(n: int, k: int = 5, seed: int = 0, labels: np.ndarray | None = None, groups: np.ndarray | None = None,
          val_size: float = 0.1) -> Iterator[Split]:
    """Yield k folds; each fold's test part is one fold, its validation part a random (or group) slice of the rest.

    Args:
        n: number of items.
        k: number of folds.
        labels: stratify the folds by these labels (keeps each fold's class balance natural).
        groups: keep each group within one fold (cannot be combined with ``labels``).
        val_size: fraction of the non-test items used for validation (early stopping).
    """
    if labels is not None and groups is not None:
        raise ValueError("kfold: give labels (stratified) or groups (grouped), not both")
    positions = np.arange(n)
    if groups is not None:
        groups = np.asarray(groups)
        folds = GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(positions, groups=groups)
    elif labels is not None:
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(positions, labels)
    else:
        folds = KFold(n_splits=k, shuffle=True, random_state=seed).split(positions)
    for fold, (rest, test) in enumerate(folds):
        rng = np.random.RandomState(seed + fold)
        if groups is not None:
            inner = GroupShuffleSplit(n_splits=1, test_size=val_size, random_state=rng)
            train, val = next(inner.split(rest, groups=groups[rest]))
        else:
            inner = ShuffleSplit(n_splits=1, test_size=val_size, random_state=rng)
            train, val = next(inner.split(rest))
        split = Split(np.sort(rest[train]), np.sort(rest[val]), np.sort(test), f"fold {fold + 1}/{k}")
        assert_disjoint(split, groups)
        yield split
