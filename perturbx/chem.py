"""Chemistry with RDKit: SMILES validation and canonicalisation, parent structures, InChIKeys, fingerprints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import Descriptors, rdFingerprintGenerator
from rdkit.Chem.MolStandardize import rdMolStandardize
from rdkit.Chem.Scaffolds import MurckoScaffold
from torch_geometric.utils import from_rdmol
from torch_geometric.utils.smiles import e_map, x_map

RDLogger.DisableLog("rdApp.*")  # parse failures are reported by InvalidSmilesError instead

#: Elements whose presence makes :func:`structure_key` keep the whole molecule: the transition metals (lanthanides
#: and actinides included) and the post-transition metals Al, Ga, In, Sn, Tl, Pb, Bi, Po. Group 1 and 2 metals
#: (Na+, K+, Ca2+, ...) are not among them: they are the counter-ions of ordinary salts.
COMPLEX_METALS = frozenset([*range(21, 31), *range(39, 49), *range(57, 81), *range(89, 113), 13, 31, 49, 50, 81, 82,
                            83, 84])
_COUNTER_ION_METALS = frozenset([3, 11, 19, 37, 55, 4, 12, 20, 38, 56])  # Li Na K Rb Cs, Be Mg Ca Sr Ba

#: Largest molecule (heavy atoms) :func:`rdkit_descriptors` accepts. Some RDKit descriptors (Ipc, AvgIpc, BalabanJ,
#: BCUT2D...) grow about cubically with size: 0.8 s at 216 heavy atoms (the largest drug of the book's DRP and
#: LINCS tables, a stapled peptide), 8 s at 300, 30 s at 600, over 3 minutes at 1200.
MAX_DESCRIPTOR_HEAVY_ATOMS = 300


class InvalidSmilesError(ValueError):
    """A SMILES string RDKit cannot parse; the message names the record it came from."""


class MoleculeTooLargeError(ValueError):
    """A molecule over a featuriser's size limit (e.g. :data:`MAX_DESCRIPTOR_HEAVY_ATOMS`); names the record."""


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
    """Canonical SMILES of the neutralised parent structure without stereochemistry; one key per compound.

    Organic compounds: the neutralised largest fragment. Salts, counter-ions, charges and stereo annotations are
    removed, so that LINCS ids of one compound in different salt forms or with and without stereo (e.g. the two
    atorvastatin ids) share one key.

    Compounds with a metal of :data:`COMPLEX_METALS` (platinum drugs, organotins, auranofin...) are kept whole:
    the bonds to the metal are broken (RDKit's metal disconnector), each component is neutralised (a lone metal
    ion becomes the neutral atom) and the components are sorted, joined by ``.``. Water and group 1/2 ions are
    dropped, as in a salt. Every writing of cisplatin (``N.N.Cl[Pt]Cl``, ``Cl[Pt](Cl)([NH3])[NH3]``, ionic or
    dative forms) has the key ``Cl.Cl.N.N.[Pt]``; carboplatin and oxaliplatin keep their platinum and both ligands.

    Unseen-compound splits group on the key, which keeps every form of a held-out compound out of training. A key
    is a valid SMILES and its own key.

    Raises:
        InvalidSmilesError: naming ``record``.
    """
    mol = mol_from_smiles(smiles, record)
    if any(atom.GetAtomicNum() in COMPLEX_METALS for atom in mol.GetAtoms()):
        return _metal_compound_key(mol)
    parent = rdMolStandardize.ChargeParent(mol)
    Chem.RemoveStereochemistry(parent)
    return Chem.MolToSmiles(parent)


def _metal_compound_key(mol: Chem.Mol) -> str:
    """The key of :func:`structure_key` for a compound with a metal: its neutralised components, sorted."""
    uncharger = rdMolStandardize.Uncharger()
    components = []
    for fragment in Chem.GetMolFrags(rdMolStandardize.Cleanup(mol), asMols=True):
        lone = fragment.GetAtomWithIdx(0) if fragment.GetNumAtoms() == 1 else None
        if lone is not None and lone.GetAtomicNum() in _COUNTER_ION_METALS:
            continue
        if lone is not None and lone.GetAtomicNum() in COMPLEX_METALS:
            lone.SetFormalCharge(0)
            lone.SetNumExplicitHs(0)
            lone.SetNoImplicit(True)
            fragment.UpdatePropertyCache(strict=False)
        else:
            fragment = uncharger.uncharge(fragment)
        Chem.RemoveStereochemistry(fragment)
        components.append(Chem.MolToSmiles(fragment))
    kept = [c for c in components if c != "O"] or components  # water goes, unless it is all there is
    return ".".join(sorted(kept))


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

    Molecules over :data:`MAX_DESCRIPTOR_HEAVY_ATOMS` heavy atoms are refused rather than left to run for minutes.

    Raises:
        KeyError: a name that is not an RDKit descriptor.
        InvalidSmilesError: SMILES RDKit cannot parse (naming ``record``).
        MoleculeTooLargeError: more heavy atoms than :data:`MAX_DESCRIPTOR_HEAVY_ATOMS` (naming ``record``, the
            count and the limit).
    """
    functions = dict(Descriptors.descList)
    missing = [n for n in names if n not in functions]
    if missing:
        raise KeyError(f"not RDKit descriptors: {', '.join(missing[:5])}")
    mol = mol_from_smiles(smiles, record)
    size = mol.GetNumHeavyAtoms()
    if size > MAX_DESCRIPTOR_HEAVY_ATOMS:
        where = f"{record}: " if record else ""
        raise MoleculeTooLargeError(
            f"{where}molecule of {size} heavy atoms is over the limit of {MAX_DESCRIPTOR_HEAVY_ATOMS} for RDKit "
            "descriptors (some grow about cubically with size and would run for minutes). "
            "Fix: drop the compound, or give its descriptors in the descriptor table.")
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


def nearest_neighbour_similarity(fingerprints: np.ndarray) -> np.ndarray:
    """Tanimoto similarity of each molecule to its most similar other molecule.

    Args:
        fingerprints: uint8/bool (n, bits) fingerprint bits, e.g. from :func:`morgan_fingerprints`; n >= 2.

    Returns:
        float (n,) in [0, 1]: max over j != i of |a_i & a_j| / |a_i | a_j| (0 for two empty fingerprints).
    """
    bits = np.asarray(fingerprints)
    if bits.ndim != 2 or len(bits) < 2:
        raise ValueError(f"need (n >= 2, bits) fingerprints, got shape {bits.shape}")
    similarity = tanimoto_matrix(bits, bits)
    np.fill_diagonal(similarity, -1.0)
    return similarity.max(axis=1)


def tanimoto_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tanimoto similarity of every fingerprint of ``a`` to every fingerprint of ``b``.

    Args:
        a: uint8/bool (n_a, bits) fingerprint bits, e.g. from :func:`morgan_fingerprints`.
        b: uint8/bool (n_b, bits), the same bits.

    Returns:
        float64 (n_a, n_b) in [0, 1]: |a_i & b_j| / |a_i | b_j| (0 for two empty fingerprints). The counts come
        from one matrix product of the 0/1 bits (SciPy's ``cdist(..., "jaccard")`` gives the same values but took
        7 s instead of 0.1 s for 1,094 x 1,094 drugs of 2,048 bits).
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (n, bits) fingerprint arrays with the same bits, got {a.shape} and {b.shape}")
    a, b = (a != 0).astype(np.float32), (b != 0).astype(np.float32)
    shared = (a @ b.T).astype(np.float64)
    union = a.sum(axis=1)[:, None] + b.sum(axis=1)[None, :] - shared
    return np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)


def nearest_similarity(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Tanimoto similarity of each ``query`` fingerprint to its most similar ``reference`` fingerprint.

    Args:
        query: uint8/bool (n, bits), e.g. the test drugs of a fold; reference: (m >= 1, bits), e.g. the training
            drugs.

    Returns:
        float64 (n,) in [0, 1].
    """
    if len(reference) == 0:
        raise ValueError("nearest_similarity needs at least one reference fingerprint")
    return tanimoto_matrix(query, reference).max(axis=1)


@lru_cache(maxsize=200_000)
def scaffold_key(smiles: str, record: str = "") -> str:
    """Canonical SMILES of the Bemis-Murcko scaffold (ring systems and the linkers between them) of ``smiles``.

    Returns ``""`` for an acyclic molecule (it has no scaffold); callers that group by scaffold should give each
    acyclic molecule a group of its own (see :func:`scaffold_groups`).

    Raises:
        InvalidSmilesError: naming ``record``.
    """
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol_from_smiles(smiles, record))


def scaffold_groups(structure_keys: Sequence[str], records: Iterable[str] | None = None) -> np.ndarray:
    """One group label per molecule for scaffold-grouped splits.

    Args:
        structure_keys: n parent-structure SMILES (:func:`structure_key`, e.g. ``metadata["compound_group"]``),
            so that salt and stereo forms of one compound, which share the key, share the group.
        records: optional names of the n records, for error messages.

    Returns:
        object (n,) labels: ``"scaffold:<Murcko SMILES>"``, or ``"acyclic:<structure key>"`` for a molecule
        without rings (each acyclic structure is a group of its own).
    """
    keys = list(structure_keys)
    records = list(records) if records is not None else [""] * len(keys)
    labels = []
    for key, record in zip(keys, records):
        scaffold = scaffold_key(key, record)
        labels.append(f"scaffold:{scaffold}" if scaffold else f"acyclic:{key}")
    return np.asarray(labels, dtype=object)
