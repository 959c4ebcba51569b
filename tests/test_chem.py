import numpy as np
import pandas as pd
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


# --------------------------------------------------------------------------------------------------- metal complexes

# Cisplatin as the data files write it (DeepDRA's drug table) and as other tables and tools write it.
CISPLATIN_WRITINGS = ["N.N.Cl[Pt]Cl", "[NH3][Pt]([NH3])(Cl)Cl", "Cl[Pt](Cl)([NH3])[NH3]", "N->[Pt](<-N)(Cl)Cl",
                      "[Cl-].[Cl-].[NH3+][Pt+2][NH3+]", "[NH2-].[NH2-].[Cl-].[Cl-].[Pt+4]", "N[Pt@SP1](N)(Cl)Cl"]
CARBOPLATIN = "C1CC(C1)(C(=O)O)C(=O)O.[NH2-].[NH2-].[Pt+2]"  # DeepDRA's drug table
OXALIPLATIN = "C1CCC(C(C1)[NH-])[NH-].C(=O)(C(=O)O)O.[Pt+2]"  # DeepDRA's drug table


def test_structure_key_keeps_platinum_complexes_whole():
    keys = {chem.structure_key(s) for s in CISPLATIN_WRITINGS}
    assert keys == {"Cl.Cl.N.N.[Pt]"}, "every writing of cisplatin has one key, platinum and ligands included"
    assert chem.structure_key(CARBOPLATIN) == "N.N.O=C(O)C1(C(=O)O)CCC1.[Pt]"
    assert chem.structure_key(OXALIPLATIN) == "NC1CCCCC1N.O=C(O)C(=O)O.[Pt]"
    # the chelate writing of oxaliplatin (with stereo) and of carboplatin give the same keys
    assert chem.structure_key("O=C1O[Pt]2(N[C@@H]3CCCC[C@H]3N2)OC1=O") == chem.structure_key(OXALIPLATIN)
    assert chem.structure_key("N.N.O=C1O[Pt]OC(=O)C12CCC2") == chem.structure_key(CARBOPLATIN)
    assert chem.structure_key("N.N.Cl[Pt]Cl") not in {"N", chem.structure_key("N")}, "cisplatin is not ammonia"
    assert chem.structure_key(OXALIPLATIN) != chem.structure_key("NC1CCCCC1N"), "nor its free ligand"


def test_structure_key_of_metal_compounds_is_a_fixed_point_and_drops_water_and_group_1_2_ions():
    for smiles in [*CISPLATIN_WRITINGS, CARBOPLATIN, OXALIPLATIN, "Cl[Co]Cl", "CCCC[Sn](Cl)(CCCC)CCCC", "[Pt]"]:
        key = chem.structure_key(smiles)
        assert chem.structure_key(key) == key  # keys are used as SMILES (lincs fills gaps with them)
    assert chem.structure_key("O.O.O.O.O.O.Cl[Co]Cl") == chem.structure_key("Cl[Co]Cl") == "Cl.Cl.[Co]"
    aurothiomalate = "[Na+].[Na+].[O-]C(=O)CC(S[Au])C(=O)[O-]"
    assert chem.structure_key(aurothiomalate) == chem.structure_key("OC(=O)CC(S[Au])C(=O)O")
    assert "Au" in chem.structure_key(aurothiomalate)


def test_structure_key_of_the_platinum_drugs_in_the_real_tables(real_mirror):
    drugs = pd.read_csv(real_mirror / "drp/deepdra/drug_data/drug_names_with_smiles.csv").set_index("Drug Name")
    keys = {name: chem.structure_key(drugs.at[name, "SMILES"])
            for name in ["Cisplatin", "carboplatin", "oxaliplatin", "Oxaliplatin", "Platin"]}
    assert keys["Cisplatin"] == "Cl.Cl.N.N.[Pt]" and keys["oxaliplatin"] == keys["Oxaliplatin"]
    assert len({keys["Cisplatin"], keys["carboplatin"], keys["oxaliplatin"], keys["Platin"]}) == 4
    compounds = pd.read_csv(real_mirror / "lincs/dhimmel_lincs/pertinfo.tsv.gz", sep="\t", index_col="pert_id")
    # LINCS writes both of its cisplatin records without the ammine ligands (formula Cl2Pt): one key for the two,
    # and not the key of DeepDRA's cisplatin, whose structure has them
    lincs = {chem.structure_key(compounds.at[pert, "canonical_smiles"]) for pert in ["BRD-K01228321", "BRD-K24630133"]}
    assert lincs == {"Cl.Cl.[Pt]"}


def test_structure_key_of_organic_salts_is_the_largest_organic_fragment():
    assert chem.structure_key("CC(=O)Oc1ccccc1C(=O)[O-].[K+]") == "CC(=O)Oc1ccccc1C(=O)O"
    assert chem.structure_key("[Ca+2].CC(=O)[O-].CC(=O)[O-]") == "CC(=O)O"
    assert chem.structure_key("CN(C)CCC=C1c2ccccc2CCc2ccccc21.Cl") == "CN(C)CCC=C1c2ccccc2CCc2ccccc21"


# --------------------------------------------------------------------------------------------------- size limit

def test_rdkit_descriptors_refuse_molecules_over_the_size_limit():
    polymer = "C" + "COC" * 100 + "O"  # polyethylene glycol, 302 heavy atoms: minutes of RDKit descriptors
    with pytest.raises(chem.MoleculeTooLargeError) as info:
        chem.rdkit_descriptors(polymer, ["MolWt", "Ipc"], "drug PEG-100 (test)")
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "drug PEG-100 (test)" in message and "302 heavy atoms" in message
    assert str(chem.MAX_DESCRIPTOR_HEAVY_ATOMS) in message and "\n" not in message
    assert chem.MAX_DESCRIPTOR_HEAVY_ATOMS >= 216, "the largest drug of the real DRP tables has 216 heavy atoms"


def test_the_size_limit_is_inclusive(monkeypatch):
    monkeypatch.setattr(chem, "MAX_DESCRIPTOR_HEAVY_ATOMS", 3)
    assert chem.rdkit_descriptors("CCO", ["HeavyAtomCount"])[0] == 3
    with pytest.raises(chem.MoleculeTooLargeError, match="4 heavy atoms"):
        chem.rdkit_descriptors("CCCO", ["HeavyAtomCount"])


def test_nearest_neighbour_similarity_is_the_best_tanimoto_to_another_molecule():
    bits = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 1], [0, 0, 0, 0]], dtype=np.uint8)
    similarity = chem.nearest_neighbour_similarity(bits)
    np.testing.assert_allclose(similarity, [1.0, 1.0, 0.25, 0.0])  # 3 vs 1: shared 1 bit of 4; empty: 0
    with pytest.raises(ValueError, match="n >= 2"):
        chem.nearest_neighbour_similarity(bits[:1])


def test_tanimoto_matrix_matches_scipy_jaccard_and_nearest_similarity_takes_the_best():
    from scipy.spatial.distance import cdist

    a = np.array([[1, 1, 0, 0], [0, 1, 1, 1], [1, 0, 1, 0]], dtype=np.uint8)
    b = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.uint8)
    similarity = chem.tanimoto_matrix(a, b)
    np.testing.assert_allclose(similarity, 1 - cdist(a.astype(bool), b.astype(bool), "jaccard"))
    np.testing.assert_allclose(chem.nearest_similarity(a, b), [1.0, 2 / 3, 1 / 3])
    with pytest.raises(ValueError, match="same bits"):
        chem.tanimoto_matrix(a, b[:, :3])


def test_scaffold_key_and_groups_keep_salts_together_and_acyclics_apart():
    assert chem.scaffold_key("CC(=O)Oc1ccccc1C(=O)O") == "c1ccccc1"
    assert chem.scaffold_key("Cc1ccccc1") == chem.scaffold_key("Oc1ccccc1")  # same ring system
    assert chem.scaffold_key("CCO") == ""
    keys = [chem.structure_key(s) for s in ("CC(=O)Oc1ccccc1C(=O)[O-].[Na+]", "CC(=O)Oc1ccccc1C(=O)O", "CCO",
                                            "CCCO", "c1ccc2ccccc2c1")]
    groups = chem.scaffold_groups(keys)
    assert groups[0] == groups[1] == "scaffold:c1ccccc1"
    assert groups[2] != groups[3] and groups[2].startswith("acyclic:")
    assert len(set(groups)) == 4
    with pytest.raises(chem.InvalidSmilesError, match="drug 7"):
        chem.scaffold_groups(["C1CC("], records=["drug 7"])
