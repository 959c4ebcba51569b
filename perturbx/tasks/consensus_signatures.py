"""The consensus-signature task of chapter 03: one DrugBank drug's level-5 signature from its structure alone.

:class:`SignatureInputs` (:func:`build_signature_inputs`) holds one row per drug with its molecular graph,
fingerprint and scaffold group; :func:`scaffold_folds` are the scaffold-grouped folds every model is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import chem
from ..datasets.curated import CuratedL1000
from ..splits import Split, assert_disjoint, kfold


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
