"""Molecular graphs for the GNN and the atoms behind each Morgan bit."""

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator

from perturbx import chem

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
MOLECULES = ["CCO", "c1ccccc1", ASPIRIN, "C[C@H](N)C(=O)O", "CC(=O)Oc1ccccc1C(=O)[O-].[Na+]", "Cl[Pt](Cl)([NH3])[NH3]",
             "CN1C=NC2=C1C(=O)N(C(=O)N2C)C"]


@pytest.mark.parametrize("smiles", MOLECULES)
def test_molecule_graph_shapes_and_vocabulary(smiles):
    mol = Chem.MolFromSmiles(smiles)
    graph = chem.molecule_graph(smiles, "compound X")
    n_atoms, n_bonds = mol.GetNumAtoms(), mol.GetNumBonds()
    assert graph.x.dtype == torch.long and tuple(graph.x.shape) == (n_atoms, 9)
    assert graph.edge_index.dtype == torch.long and tuple(graph.edge_index.shape) == (2, 2 * n_bonds)
    assert graph.edge_attr.dtype == torch.long and tuple(graph.edge_attr.shape) == (2 * n_bonds, 3)
    assert graph.num_nodes == n_atoms and graph.smiles == smiles
    atom_sizes, bond_sizes = chem.atom_feature_sizes(), chem.bond_feature_sizes()
    assert len(atom_sizes) == 9 and len(bond_sizes) == 3
    assert (graph.x >= 0).all() and (graph.x < torch.tensor(atom_sizes)).all()
    if n_bonds:
        assert (graph.edge_attr >= 0).all() and (graph.edge_attr < torch.tensor(bond_sizes)).all()
    assert (graph.edge_index >= 0).all() and (graph.edge_index < n_atoms).all()
    # atomic number is column 0 (the vocabulary starts at 0, so the index is the atomic number itself)
    assert graph.x[:, 0].tolist() == [atom.GetAtomicNum() for atom in mol.GetAtoms()]


@pytest.mark.parametrize("smiles", MOLECULES)
def test_molecule_graph_edges_are_the_bonds_in_both_directions(smiles):
    mol = Chem.MolFromSmiles(smiles)
    graph = chem.molecule_graph(smiles)
    pairs = [tuple(p) for p in graph.edge_index.t().tolist()]
    assert len(set(pairs)) == len(pairs)  # no duplicates
    bonds = {(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()}
    assert set(pairs) == bonds | {(j, i) for i, j in bonds}
    attributes = dict(zip(pairs, (tuple(a) for a in graph.edge_attr.tolist())))
    for i, j in pairs:
        assert attributes[(i, j)] == attributes[(j, i)]
    assert all(i != j for i, j in pairs)


def test_molecule_graph_features_by_hand():
    ethanol = chem.molecule_graph("CCO")
    # atomic number, chirality, degree (with H), formal charge (index of 0 is 5), Hs, radicals, hybridisation
    # (SP3 = 4), aromatic, in ring
    assert ethanol.x.tolist() == [[6, 0, 4, 5, 3, 0, 4, 0, 0], [6, 0, 4, 5, 2, 0, 4, 0, 0],
                                  [8, 0, 2, 5, 1, 0, 4, 0, 0]]
    assert ethanol.edge_attr.tolist() == [[1, 0, 0]] * 4  # single, no stereo, not conjugated
    benzene = chem.molecule_graph("c1ccccc1")
    assert (benzene.x[:, 7] == 1).all() and (benzene.x[:, 8] == 1).all()  # aromatic, in ring
    assert (benzene.edge_attr[:, 0] == 12).all() and (benzene.edge_attr[:, 2] == 1).all()  # aromatic, conjugated
    acetate = chem.molecule_graph("CC(=O)[O-]")
    assert acetate.x[3, 3].item() == 4  # formal charge -1 is index 4 of [-5, ..., 6]


def test_single_atom_graph_has_no_edges():
    graph = chem.molecule_graph("[Og]")
    assert tuple(graph.x.shape) == (1, 9) and tuple(graph.edge_index.shape) == (2, 0)
    assert tuple(graph.edge_attr.shape) == (0, 3)


@pytest.mark.parametrize("smiles", ["C1CC", "not a smiles", "", "C(C"])
def test_molecule_graph_invalid_smiles_names_the_record(smiles):
    with pytest.raises(chem.InvalidSmilesError, match=r"compound BRD-K1 \(table\.tsv\)"):
        chem.molecule_graph(smiles, "compound BRD-K1 (table.tsv)")


@pytest.mark.parametrize("smiles", ["[C+8]", "[U](C)(C)(C)(C)(C)(C)(C)(C)(C)(C)C"])
def test_molecule_graph_outside_vocabulary_is_invalid_smiles_error(smiles):
    """RDKit parses these, but the charge (+8) or degree (11) is outside the featuriser's vocabulary."""
    assert Chem.MolFromSmiles(smiles) is not None
    with pytest.raises(chem.InvalidSmilesError, match=r"row-7.*cannot encode"):
        chem.molecule_graph(smiles, "row-7")
    # an InvalidSmilesError is a ValueError, as callers catching ValueError expect
    with pytest.raises(ValueError):
        chem.molecule_graph(smiles)


@pytest.mark.parametrize("radius, n_bits", [(2, 2048), (1, 512), (3, 64), (0, 1024)])
@pytest.mark.parametrize("smiles", [ASPIRIN, "CCO", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "c1ccc2ccccc2c1"])
def test_morgan_bit_atoms_match_the_fingerprint(smiles, radius, n_bits):
    atoms = chem.morgan_bit_atoms(smiles, radius=radius, n_bits=n_bits)
    fingerprint = chem.morgan_fingerprints([smiles], radius=radius, n_bits=n_bits)[0]
    assert set(atoms) == set(np.flatnonzero(fingerprint).tolist())
    assert all(isinstance(bit, int) for bit in atoms)
    n_atoms = Chem.MolFromSmiles(smiles).GetNumAtoms()
    assert all(covered and covered <= set(range(n_atoms)) for covered in atoms.values())
    assert set().union(*atoms.values()) == set(range(n_atoms))  # every atom sets at least its radius-0 bit


def test_morgan_bit_atoms_default_settings_match_default_fingerprint():
    assert set(chem.morgan_bit_atoms(ASPIRIN)) == set(np.flatnonzero(chem.morgan_fingerprints([ASPIRIN])[0]))


@pytest.mark.parametrize("smiles", [ASPIRIN, "CCO", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C"])
def test_radius_zero_bit_of_an_atom_covers_that_atom(smiles):
    n_atoms = Chem.MolFromSmiles(smiles).GetNumAtoms()
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=0, fpSize=2048)
    radius_zero = chem.morgan_bit_atoms(smiles, radius=0)
    full = chem.morgan_bit_atoms(smiles, radius=2)
    for atom in range(n_atoms):
        # the radius-0 bit of this atom alone: a fingerprint rooted at the atom, radius 0
        bits = list(generator.GetFingerprint(Chem.MolFromSmiles(smiles), fromAtoms=[atom]).GetOnBits())
        assert len(bits) == 1
        assert atom in radius_zero[bits[0]] and atom in full[bits[0]]
    # at radius 0 a bit covers exactly the atoms whose own environment sets it (no neighbours)
    for bit, covered in radius_zero.items():
        for atom in covered:
            assert list(generator.GetFingerprint(Chem.MolFromSmiles(smiles), fromAtoms=[atom]).GetOnBits()) == [bit]


def test_morgan_bit_atoms_of_ethanol_by_hand():
    """Ethanol: three atom environments, C-C and C-O at radius 1, the whole molecule at radius 1 around C1
    (the radius-2 environments of C0 and O cover the same bonds and are dropped as duplicates)."""
    covered = sorted((sorted(s) for s in chem.morgan_bit_atoms("CCO", radius=2).values()), key=lambda s: (len(s), s))
    assert covered == [[0], [1], [2], [0, 1], [1, 2], [0, 1, 2]]
    covered = sorted((sorted(s) for s in chem.morgan_bit_atoms("CCO", radius=0).values()))
    assert covered == [[0], [1], [2]]


def test_morgan_bit_atoms_invalid_smiles_names_the_record():
    with pytest.raises(chem.InvalidSmilesError, match="compound Y"):
        chem.morgan_bit_atoms("C1CC", record="compound Y")
