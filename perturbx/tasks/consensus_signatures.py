"""The consensus-signature task of chapter 03: one DrugBank drug's level-5 signature from its structure alone.

:class:`SignatureInputs` (:func:`build_signature_inputs`) holds one row per drug with its molecular graph,
fingerprint and scaffold group; :func:`scaffold_folds` are the scaffold-grouped folds every model is scored on;
:class:`SignatureFold` is one of them as a torch model sees it (signatures standardised with the training drugs'
statistics, batches of drug positions: :class:`StructureBatch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler

from .. import chem
from ..datasets.curated import CuratedL1000
from ..splits import Split, assert_disjoint, kfold
from . import digest


@dataclass
class SignatureInputs:
    """Split-independent inputs: one row per drug of ``data``.

    Attributes:
        data: the consensus signatures (``expression``: float32 (n, 978) z-scores).
        graphs: molecular graphs (:func:`perturbx.chem.molecule_graph`) of the drugs' canonical SMILES.
        fingerprints: uint8 (n, bits) Morgan fingerprints (radius 2).
        scaffolds: object (n,) scaffold group of each drug (:func:`perturbx.chem.scaffold_groups` of its
            ``compound_group``).
    """

    data: CuratedL1000
    graphs: list
    fingerprints: np.ndarray
    scaffolds: np.ndarray

    @property
    def signatures(self) -> np.ndarray:
        """float32 (n, genes) z-score signatures."""
        return self.data.expression

    @property
    def n_genes(self) -> int:
        """Genes per signature (978 landmarks)."""
        return self.data.expression.shape[1]

    def fingerprint(self) -> dict[str, str]:
        """The sha256 of the drugs' structures and of the genes, in order (a saved model checks it when loaded)."""
        return {"compounds_sha256": digest(self.data.metadata["canonical_smiles"]),
                "genes_sha256": digest(self.data.genes["gene_id"])}


def build_signature_inputs(data: CuratedL1000, fingerprint_bits: int = 2048) -> SignatureInputs:
    """Featurise every drug of ``data`` (graph, fingerprint, scaffold group).

    Raises:
        ValueError: profiles that are not level-5 signatures, naming one, or landmark genes not measured.
        chem.InvalidSmilesError: a structure that cannot be featurised, naming the drug.
    """
    data.require_level(5, "level-5 signatures", "this experiment predicts one consensus signature per drug",
                       "read the data with perturbx.datasets.consensus.read_consensus()")
    data.require_all_genes("the signature models predict all 978 landmark genes")
    meta = data.metadata
    records = [f"drug {i} ({n})" for i, n in zip(meta["compound_id"], meta["compound_name"])]
    smiles = meta["canonical_smiles"].tolist()
    graphs = [chem.molecule_graph(s, r) for s, r in zip(smiles, records)]
    fingerprints = chem.morgan_fingerprints(smiles, n_bits=fingerprint_bits, records=records)
    return SignatureInputs(data, graphs, fingerprints, chem.scaffold_groups(meta["compound_group"], records))


def scaffold_folds(inputs: SignatureInputs, k: int = 5, seed: int = 0, val_size: float = 0.15) -> list[Split]:
    """Scaffold-grouped folds, ``k`` of them (:func:`perturbx.splits.kfold` with ``groups`` = scaffold groups).

    Each fold's test part is one fold of scaffolds; its validation part is a random ``val_size`` fraction of the
    other scaffolds. Checked: no scaffold and no ``compound_group`` in two parts.
    """
    groups = inputs.scaffolds
    if len(np.unique(groups)) < k:
        raise ValueError(f"{len(np.unique(groups))} scaffold groups cannot fill {k} folds; use fewer folds")
    compound_groups = inputs.data.metadata["compound_group"].to_numpy()
    folds = []
    for split in kfold(len(groups), k, seed, groups=groups, val_size=val_size):
        split = Split(split.train, split.val, split.test, f"scaffold {split.kind}")
        assert_disjoint(split, groups)
        assert_disjoint(split, compound_groups)
        folds.append(split)
    return folds


class StructureBatch(NamedTuple):
    """Drugs and their targets, for :func:`perturbx.training.fit`.

    Attributes:
        compound: long (B,) positions of the drugs in the model's table (graphs or fingerprints).
        target: float32 (B, genes) standardised signatures (z-scores / training SD per gene).
    """

    compound: torch.Tensor
    target: torch.Tensor


@dataclass
class SignatureFold:
    """One fold as a torch model sees it.

    Attributes:
        inputs: the drugs; split: positions of the training, validation and test drugs.
        scaler: per-gene ``StandardScaler`` fitted on the training drugs' signatures (the torch models' targets).
    """

    inputs: SignatureInputs
    split: Split
    scaler: StandardScaler

    @classmethod
    def of(cls, inputs: SignatureInputs, split: Split) -> SignatureFold:
        """The fold of ``split`` with the scaler fitted on its training drugs only."""
        return cls(inputs, split, StandardScaler().fit(inputs.signatures[split.train].astype(np.float64)))

    def batch(self, rows: np.ndarray) -> StructureBatch:
        """Drug positions ``rows`` and their standardised signatures, on the CPU."""
        target = self.scaler.transform(self.inputs.signatures[rows]).astype(np.float32)
        return StructureBatch(torch.as_tensor(np.asarray(rows), dtype=torch.long), torch.as_tensor(target))


def scaler_arrays(scaler: StandardScaler) -> dict[str, np.ndarray]:
    """A fitted per-gene ``StandardScaler`` as named arrays (mean, scale, variance, samples seen)."""
    return {"signature_mean": scaler.mean_, "signature_scale": scaler.scale_, "signature_var": scaler.var_,
            "signature_samples": np.asarray(scaler.n_samples_seen_)}


def scaler_from_arrays(arrays: dict[str, np.ndarray]) -> StandardScaler:
    """The inverse of :func:`scaler_arrays`: a fitted ``StandardScaler`` with the same statistics."""
    scaler = StandardScaler()
    scaler.mean_, scaler.scale_, scaler.var_ = arrays["signature_mean"], arrays["signature_scale"], \
        arrays["signature_var"]
    scaler.n_samples_seen_, scaler.n_features_in_ = arrays["signature_samples"], len(arrays["signature_mean"])
    return scaler
