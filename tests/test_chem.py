import pytest

from perturbx import chem


def test_canonical_smiles_is_canonical():
    assert chem.canonical_smiles("OC(=O)c1ccccc1OC(C)=O") == chem.canonical_smiles("CC(=O)Oc1ccccc1C(=O)O")


def test_invalid_smiles_names_the_record():
    with pytest.raises(chem.InvalidSmilesError, match=r"compound X \(table.tsv\): invalid SMILES 'C1CC\('"):
        chem.canonical_smiles("C1CC(", "compound X (table.tsv)")
    with pytest.raises(chem.InvalidSmilesError):
        chem.mol_from_smiles("")


def test_structure_key_merges_salts_charges_and_stereo():
    acid = "CC(=O)Oc1ccccc1C(=O)O"
    assert chem.structure_key("CC(=O)Oc1ccccc1C(=O)[O-].[Na+]") == chem.structure_key(acid)
    assert chem.structure_key("C[C@H](N)C(=O)O") == chem.structure_key("CC(N)C(=O)O")
    assert chem.structure_key("CCO") != chem.structure_key("CCCO")


def test_morgan_fingerprints():
    bits = chem.morgan_fingerprints(["CCO", "c1ccccc1"], n_bits=512)
    assert bits.shape == (2, 512) and bits.dtype.name == "uint8" and set(bits.ravel()) <= {0, 1}
    assert bits[0].sum() > 0 and (bits[0] != bits[1]).any()
    with pytest.raises(chem.InvalidSmilesError, match="row-2"):
        chem.morgan_fingerprints(["CCO", "nope"], records=["row-1", "row-2"])


def test_rdkit_descriptors_by_name():
    values = chem.rdkit_descriptors("CCO", ["MolWt", "NumHDonors", "RingCount"])
    assert values.dtype.name == "float64"
    assert values[0] == pytest.approx(46.069, abs=1e-3) and values[1] == 1 and values[2] == 0
    with pytest.raises(KeyError, match="NotADescriptor"):
        chem.rdkit_descriptors("CCO", ["MolWt", "NotADescriptor"])
