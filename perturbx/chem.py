"""Chemistry with RDKit: SMILES validation and canonicalisation, parent structures, InChIKeys, fingerprints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import Descriptors, rdFingerprintGenerator
from rdkit.Chem.MolStandardize import rdMolStandardize
from torch_geometric.utils import from_rdmol
from torch_geometric.utils.smiles import e_map, x_map

RDLogger.DisableLog("rdApp.*")  # parse failures are reported by InvalidSmilesError instead


class InvalidSmilesError(ValueError):
    """A SMILES string RDKit cannot parse; the message names the record it came from."""


def mol_from_smiles(smiles: str, record: str = "") -> Chem.Mol:
    """Parse ``smiles`` with RDKit.

    Raises:
        InvalidSmilesError: naming ``record`` (e.g. a compound id and its source file) and the SMILES.
    """
    mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) and smiles.strip() else None
    if mol is None:
        where = f"{record}: " if record else ""
        raise InvalidSmilesError(f"{where}invalid SMILES {smiles!r}; RDKit cannot parse it. "
                                 "Fix: correct the structure in the compound table or drop the compound.")
    return mol


@lru_cache(maxsize=200_000)
def canonical_smiles(smiles: str, record: str = "") -> str:
    """RDKit canonical isomeric SMILES of ``smiles`` (raises :class:`InvalidSmilesError`)."""
    return Chem.MolToSmiles(mol_from_smiles(smiles, record))


@lru_cache(maxsize=200_000)
def structure_key(smiles: str, record: str = "") -> str:
    """Canonical SMILES of the neutralised largest fragment without stereochemistry.

    Salts, counter-ions, charges and stereo annotations are removed, so that LINCS ids of one compound in
    different salt forms or with and without stereo (e.g. the two atorvastatin ids) share one key. Unseen-compound
    splits group on it, which keeps every form of a held-out compound out of training.
    """
    parent = rdMolStandardize.ChargeParent(mol_from_smiles(smiles, record))
    Chem.RemoveStereochemistry(parent)
    return Chem.MolToSmiles(parent)


def inchikey(smiles: str, record: str = "") -> str:
    """Standard InChIKey of ``smiles`` (raises :class:`InvalidSmilesError`)."""
    return Chem.MolToInchiKey(mol_from_smiles(smiles, record))


def morgan_fingerprints(smiles: Sequence[str], radius: int = 2, n_bits: int = 2048,
                        records: Iterable[str] | None = None) -> np.ndarray:
    """Morgan (ECFP-like) bit vectors.

    Args:
        smiles: n SMILES strings.
        radius: Morgan radius (2 gives ECFP4).
        n_bits: fingerprint length.
        records: optional names of the n records, used in error messages.

    Returns:
        uint8 array of shape (n, n_bits) with 0/1 entries.
    """
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    records = list(records) if records is not None else [""] * len(smiles)
    out = np.zeros((len(smiles), n_bits), dtype=np.uint8)
    for row, (text, record) in enumerate(zip(smiles, records)):
        out[row] = generator.GetFingerprintAsNumPy(mol_from_smiles(text, record))
    return out


def rdkit_descriptors(smiles: str, names: Sequence[str], record: str = "") -> np.ndarray:
    """RDKit ``Descriptors`` values by name for one molecule, float64 (len(names),); NaN where RDKit fails.

    Raises:
        KeyError: a name that is not an RDKit descriptor.
    """
    functions = dict(Descriptors.descList)
    missing = [n for n in names if n not in functions]
    if missing:
        raise KeyError(f"not RDKit descriptors: {', '.join(missing[:5])}")
    mol = mol_from_smiles(smiles, record)
    values = []
    for name in names:
        try:
            values.append(float(functions[name](mol)))
        except Exception:  # a descriptor that fails on one molecule is missing, as in DeepDRA's table
            values.append(np.nan)
    return np.asarray(values, dtype=np.float64)


# ------------------------------------------------------------------------------------------------ molecular graphs

def molecule_graph(smiles: str, record: str = ""):
    """The RDKit molecular graph of ``smiles`` as a torch-geometric ``Data`` (hydrogens implicit).

    Atom features (``x``, long (n_atoms, 9)) and bond features (``edge_attr``, long (2 * n_bonds, 3)) are the
    categorical indices of :func:`torch_geometric.utils.from_rdmol` (atomic number, chirality, degree, formal
    charge, hydrogens, radical electrons, hybridisation, aromatic, in ring; bond type, stereo, conjugated);
    models embed each column (see :data:`ATOM_FEATURE_SIZES`). Bonds are stored in both directions.

    Raises:
        InvalidSmilesError: SMILES RDKit cannot parse, or an atom/bond outside the feature vocabulary; the message
            names ``record``.
    """
    mol = mol_from_smiles(smiles, record)
    try:
        graph = from_rdmol(mol)
    except ValueError as error:  # a feature value outside torch-geometric's vocabulary, e.g. degree 11
        where = f"{record}: " if record else ""
        raise InvalidSmilesError(f"{where}SMILES {smiles!r} has an atom or bond the graph featuriser cannot "
                                 f"encode ({error}). Fix: check the structure or drop the compound.") from error
    graph.smiles = smiles
    return graph


def _feature_sizes(mapping: dict) -> tuple[int, ...]:
    return tuple(len(values) for values in mapping.values())


def atom_feature_sizes() -> tuple[int, ...]:
    """Vocabulary size of each of the 9 atom feature columns of :func:`molecule_graph`."""
    return _feature_sizes(x_map)


def bond_feature_sizes() -> tuple[int, ...]:
    """Vocabulary size of each of the 3 bond feature columns of :func:`molecule_graph`."""
    return _feature_sizes(e_map)


def morgan_bit_atoms(smiles: str, radius: int = 2, n_bits: int = 2048, record: str = "") -> dict[int, set[int]]:
    """Which atoms make up each Morgan fingerprint bit that is set for ``smiles``.

    Uses the same generator settings as :func:`morgan_fingerprints`, so the bits match it.

    Returns:
        bit -> atom indices covered by any environment (centre atom plus the atoms of its radius-r bonds)
        that sets the bit.
    """
    mol = mol_from_smiles(smiles, record)
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    info = rdFingerprintGenerator.AdditionalOutput()
    info.AllocateBitInfoMap()
    generator.GetFingerprint(mol, additionalOutput=info)
    atoms: dict[int, set[int]] = {}
    for bit, environments in info.GetBitInfoMap().items():
        covered = atoms.setdefault(int(bit), set())
        for centre, env_radius in environments:
            covered.add(int(centre))
            for bond_index in Chem.FindAtomEnvironmentOfRadiusN(mol, env_radius, centre):
                bond = mol.GetBondWithIdx(bond_index)
                covered.update((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
    return atoms
