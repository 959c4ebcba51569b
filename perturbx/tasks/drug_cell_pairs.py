"""The drug-response task of chapter 02: a (cell line, drug) pair labelled sensitive or resistant.

:func:`prepare_features` scales the omics and drug features with statistics of the training pairs only
(:class:`Features`); :func:`pair_batch` turns a table of pairs into the typed :class:`PairBatch` every torch model
of the task is trained on; :func:`undersample` balances the training pairs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import MinMaxScaler

from ..datasets.drug_response import MODALITIES, DRPData


@dataclass
class Features:
    """Per-cell and per-drug feature blocks after preprocessing fitted on training pairs.

    cell_blocks: one float32 (n_cells, d) array per omics block (data.cells order); drug_blocks: descriptors
    (n_drugs, 209) and fingerprint (n_drugs, 2048) (data.drugs order); genes: the selected genes per omics block;
    ranges: block name -> (minimum, maximum) per column over the training cell lines or drugs, the min-max
    scaling's statistics (what a saved model keeps).
    """

    cell_blocks: list[np.ndarray]
    drug_blocks: list[np.ndarray]
    genes: dict[str, list[str]]
    ranges: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def cell_dims(self) -> list[int]:
        """Width of each cell block."""
        return [b.shape[1] for b in self.cell_blocks]

    @property
    def drug_dims(self) -> list[int]:
        """Width of each drug block."""
        return [b.shape[1] for b in self.drug_blocks]


def _min_max(values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Min-max scale columns with the minimum and maximum over ``rows``; values outside that range are clipped to
    it (an unseen drug's descriptor can exceed the training maximum by orders of magnitude); NaN -> 0.

    Returns:
        (scaled float32 values, (column minima, column maxima) over ``rows``).
    """
    scaler = MinMaxScaler(clip=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        scaler.fit(values[rows])
        scaled = np.nan_to_num(scaler.transform(values), nan=0.0).astype(np.float32)
    return scaled, (scaler.data_min_, scaler.data_max_)


def prepare_features(data: DRPData, train: pd.DataFrame, n_genes: int | None = None) -> Features:
    """Select and scale features using the cell lines and drugs of the ``train`` pairs only.

    Omics: the ``n_genes`` most variable genes per block across the training cell lines, then min-max scaling with
    the training cell lines' minimum and maximum (DeepDRA scales to [0, 1] too, but over all cell lines at once).
    Descriptors: min-max scaling on the training drugs, then NaN -> 0 (as DeepDRA). Values of test cell lines or
    drugs outside the training range are clipped to [0, 1]. Fingerprints: unchanged bits.
    """
    cells, drugs = np.unique(train["cell_index"]), np.unique(train["drug_index"])
    blocks, genes, ranges = [], {}, {}
    for modality in MODALITIES:
        values = data.cell_features[modality]
        keep = np.arange(values.shape[1])
        if n_genes is not None and n_genes < values.shape[1]:
            keep = np.sort(np.argsort(-values[cells].var(axis=0), kind="stable")[:n_genes])
        scaled, ranges[modality] = _min_max(values[:, keep], cells)
        blocks.append(scaled)
        genes[modality] = [data.genes[i] for i in keep]
    descriptors, ranges["descriptors"] = _min_max(data.drug_features["descriptors"], drugs)
    return Features(blocks, [descriptors, data.drug_features["fingerprint"]], genes, ranges)


@dataclass
class PairFold:
    """One split of the drug-response task as a model sees it: the feature blocks (scaled with training
    statistics) and the training and validation pairs (columns cell_index, drug_index, label)."""

    features: Features
    train: pd.DataFrame
    val: pd.DataFrame


def column_l2_scaled(features: Features, pairs: pd.DataFrame) -> Features:
    """``features`` with every column divided by its L2 norm over the rows of ``pairs`` (DeepDRA's
    ``normalize(x, dim=0)`` on the pair matrix): a cell's value counts once per pair it is in. Columns that are 0 on
    every pair stay 0. The scale depends on the set of pairs, so a test set scaled this way is scaled with its own
    statistics; hence only a fidelity switch (:attr:`DRPSettings.column_l2`)."""
    def scaled(blocks: list[np.ndarray], rows: np.ndarray) -> list[np.ndarray]:
        out = []
        for block in blocks:
            norm = np.sqrt(np.square(block[rows].astype(np.float64)).sum(axis=0))
            out.append((block / np.where(norm > 0, norm, 1.0)).astype(np.float32))
        return out

    return replace(features, cell_blocks=scaled(features.cell_blocks, pairs["cell_index"].to_numpy()),
                   drug_blocks=scaled(features.drug_blocks, pairs["drug_index"].to_numpy()))


def undersample(pairs: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Drop random majority-class pairs until both classes are equally frequent (DeepDRA's RandomUnderSampler)."""
    rng = np.random.default_rng(seed)
    counts = pairs["label"].value_counts()
    majority, n_keep = counts.idxmax(), counts.min()
    rows = np.flatnonzero(pairs["label"].to_numpy() == majority)
    drop = rng.choice(rows, size=len(rows) - n_keep, replace=False)
    keep = np.setdiff1d(np.arange(len(pairs)), drop)  # by position: the index may repeat labels
    return pairs.iloc[keep].reset_index(drop=True)


class PairBatch(NamedTuple):
    """A batch of cell line x drug pairs: long (b,) cell and drug rows of the feature blocks, float32 (b,) label
    (1 = sensitive)."""

    cell: torch.Tensor
    drug: torch.Tensor
    label: torch.Tensor


def pair_batch(pairs: pd.DataFrame) -> PairBatch:
    """The :class:`PairBatch` of ``pairs`` (columns cell_index, drug_index, label)."""
    return PairBatch(torch.as_tensor(pairs["cell_index"].to_numpy()), torch.as_tensor(pairs["drug_index"].to_numpy()),
                     torch.as_tensor(pairs["label"].to_numpy(), dtype=torch.float32))
