import gzip

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from perturbx import chem
from perturbx.datasets import fetch
from perturbx.datasets.cmap import landmark_genes
from perturbx.datasets.consensus import (
    BASAL_SOURCE,
    ConsensusFormatError,
    amide_tautomer,
    curate_consensus,
    mol_from_inchi,
    read_consensus,
    read_signature_table,
    read_structure_table,
)
from perturbx.datasets.curated import METADATA_COLUMNS

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
ASPIRIN_SODIUM = "CC(=O)Oc1ccccc1C(=O)[O-].[Na+]"
LIDOCAINE = "CCN(CC)CC(=O)Nc1c(C)cccc1C"


def inchi(smiles: str) -> str:
    return Chem.MolToInchi(Chem.MolFromSmiles(smiles))


# id, name, groups, InChI; DB05 has no row, DB06 no InChI
STRUCTURES = [
    ("DB01", "aspirin (experimental entry)", "experimental", inchi(ASPIRIN)),
    ("DB02", "aspirin", "approved", inchi(ASPIRIN)),  # same structure, approved: kept over DB01
    ("DB03", "aspirin sodium", "approved", inchi(ASPIRIN_SODIUM)),  # salt form, identical signature: dropped
    ("DB04", "aspirin sodium, other signature", "approved", inchi(ASPIRIN_SODIUM)),  # kept, same group
    ("DB06", "no structure", "approved", ""),
    ("DB07", "broken", "approved", "InChI=1S/not-an-inchi"),
    ("DB08", "lidocaine", "approved", inchi(LIDOCAINE)),
    ("DB09", "non-finite", "approved", inchi("CCO")),
]


def signature_rows() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shared, other = rng.normal(size=978), rng.normal(size=978)
    rows = {drug: rng.normal(size=978) for drug in ("DB05", "DB06", "DB07", "DB08", "DB09")}
    rows |= {"DB01": shared, "DB02": shared, "DB03": shared, "DB04": other}
    rows["DB09"][3] = np.nan
    return dict(sorted(rows.items()))


def write_tables(folder, columns=None, structure_columns=("drugbank_id", "name", "groups", "inchi")):
    """A consensi-drugbank-like signature table (gzip TSV, genes ordered as text like the real file) and a
    drugbank.tsv-like structure table."""
    genes = columns if columns is not None else sorted(landmark_genes()["gene_id"].astype(str))
    landmark_column = {str(g): i for i, g in enumerate(landmark_genes()["gene_id"])}
    rows = signature_rows()
    lines = ["\t".join(["perturbagen", *genes])]
    for drug, values in rows.items():
        cells = [f"{values[landmark_column[g]]:.3f}" if g in landmark_column else "0.000" for g in genes]
        lines.append("\t".join([drug, *cells]).replace("nan", "NA"))
    signatures = folder / "consensi.tsv.gz"
    signatures.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    structures = folder / "drugbank.tsv"
    frame = pd.DataFrame(STRUCTURES, columns=["drugbank_id", "name", "groups", "inchi"])
    frame[list(structure_columns)].to_csv(structures, sep="\t", index=False)
    return signatures, structures


def test_one_profile_per_drug_with_structure_and_every_drop_reported(mirror_env, tmp_path):
    signatures, structures = write_tables(tmp_path)
    curated, dropped = read_consensus(signatures, structures)
    meta = curated.metadata.set_index("profile_id")
    assert list(curated.metadata.columns) == METADATA_COLUMNS
    assert list(meta.index) == ["DB02", "DB04", "DB08"]
    reasons = dropped.set_index("profile_id")["reason"]
    assert len(meta) + len(reasons) == 9 and set(dropped["source"]) == {"consensi.tsv.gz"}
    assert reasons["DB01"] == "duplicate structure: same canonical SMILES as DB02 (kept), identical signature"
    assert reasons["DB03"] == ("duplicate structure: same structure group (salt, stereo or tautomer form) as DB02 "
                               "(kept), identical signature")
    assert reasons["DB05"] == "no structure: DrugBank id not in the structure table"
    assert reasons["DB06"] == "no structure: no InChI in the structure table"
    assert reasons["DB07"].startswith("invalid InChI: RDKit cannot read the InChI of DB07")
    assert reasons["DB09"] == "non-finite values: 1 genes"
    # salt and parent share a compound group; the canonical SMILES keep the salt
    assert meta.loc["DB04", "compound_group"] == meta.loc["DB02", "compound_group"] == chem.structure_key(ASPIRIN)
    assert meta.loc["DB04", "canonical_smiles"] == chem.canonical_smiles(ASPIRIN_SODIUM)
    assert meta.loc["DB08", "canonical_smiles"] == chem.canonical_smiles(LIDOCAINE)  # amide, not HO-C=N
    assert meta.loc["DB02", "compound_name"] == "aspirin" and set(meta["smiles_source"]) == {"DrugBank InChI"}
    summary = curated.summary()
    assert summary["n_compounds"] == 2 and summary["dropped"] == {
        "duplicate structure": 2, "invalid InChI": 1, "no structure": 2, "non-finite values": 1}


def test_no_cell_dose_time_or_basal_is_made_up(mirror_env, tmp_path):
    curated, _ = read_consensus(*write_tables(tmp_path), source="consensus")
    meta = curated.metadata
    assert meta[["cell_id", "dose_um", "time_h", "plate"]].isna().all().all()
    assert set(meta["level"]) == {5} and set(meta["basal_source"]) == {BASAL_SOURCE}
    assert np.isnan(curated.basal).all() and curated.basal.shape == (3, 978)
    assert curated.summary()["n_cells"] == 0 and curated.summary()["doses_um"] == []


def test_values_come_out_in_landmark_order(mirror_env, tmp_path):
    signatures, structures = write_tables(tmp_path)
    table = read_signature_table(signatures)
    assert list(table.columns) == landmark_genes()["gene_id"].tolist()
    np.testing.assert_allclose(table.loc["DB08"].to_numpy(), signature_rows()["DB08"], atol=5e-4)
    curated, _ = curate_consensus(table, read_structure_table(structures))
    assert curated.expression.dtype == np.float32
    np.testing.assert_allclose(curated.expression[2], signature_rows()["DB08"], atol=5e-4)


def test_columns_that_are_not_the_landmark_genes_are_named(mirror_env, tmp_path):
    genes = sorted(landmark_genes()["gene_id"].astype(str))
    missing = genes[0]
    signatures, _ = write_tables(tmp_path, columns=["GAPDH", *genes[1:]])
    with pytest.raises(ConsensusFormatError, match=rf"consensi\.tsv\.gz: .*1 column\(s\) are not landmark Entrez "
                                                   rf"ids \(first: 'GAPDH'\); 1 landmark gene\(s\) missing "
                                                   rf"\(first: {missing}\)"):
        read_signature_table(signatures)


def test_structure_table_without_its_id_column(tmp_path):
    structures = tmp_path / "drugs.tsv"
    pd.DataFrame({"id": ["DB01"], "inchi": [inchi(ASPIRIN)]}).to_csv(structures, sep="\t", index=False)
    with pytest.raises(ConsensusFormatError, match=r"drugs\.tsv: a structure table needs columns drugbank_id, "
                                                   r"inchi; drugbank_id missing \(found: id, inchi\)"):
        read_structure_table(structures)


def test_amide_tautomer_moves_the_hydrogen_and_keeps_the_inchi():
    raw = Chem.MolFromInchi(inchi(LIDOCAINE))
    fixed = amide_tautomer(raw)
    assert Chem.MolToSmiles(fixed) == chem.canonical_smiles(LIDOCAINE)
    assert Chem.MolToInchiKey(fixed) == Chem.MolToInchiKey(raw)
    assert Chem.MolToSmiles(mol_from_inchi(inchi(ASPIRIN))) == chem.canonical_smiles(ASPIRIN)  # nothing to move
    assert mol_from_inchi("") is None and mol_from_inchi("InChI=1S/garbage") is None


def test_real_consensus_files(mirror_env):  # its speed: benchmarks/reader_speed.py
    signatures = read_signature_table(fetch("lincs_consensus_drugbank"))
    structures = read_structure_table(fetch("drugbank_structures"))
    assert signatures.shape == (1170, 978) and np.isfinite(signatures.to_numpy()).all()
    assert len(structures) == 7759 and structures.loc[signatures.index, "inchi"].notna().all()
    curated, dropped = curate_consensus(signatures.iloc[:150], structures, source="lincs_consensus_drugbank")
    assert len(curated) + len(dropped) == 150
    assert set(dropped["reason"].str.split(":").str[0]) <= {"duplicate structure"}
    assert curated.metadata.set_index("profile_id").loc["DB00281", "canonical_smiles"] == chem.canonical_smiles(
        LIDOCAINE)


def test_a_vet_approved_drug_is_not_taken_for_an_approved_one(mirror_env, tmp_path):
    genes = sorted(landmark_genes()["gene_id"].astype(str))
    values = np.random.default_rng(1).normal(size=978)
    lines = ["\t".join(["perturbagen", *genes])] + ["\t".join([drug, *(f"{v:.3f}" for v in values)])
                                                     for drug in ("DB01", "DB02")]
    signatures = tmp_path / "s.tsv.gz"
    signatures.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    structures = tmp_path / "d.tsv"
    pd.DataFrame([("DB01", "a", "experimental", inchi(ASPIRIN)), ("DB02", "b", "vet_approved", inchi(ASPIRIN))],
                 columns=["drugbank_id", "name", "groups", "inchi"]).to_csv(structures, sep="\t", index=False)
    curated, dropped = read_consensus(signatures, structures)
    assert curated.metadata["compound_id"].tolist() == ["DB01"]  # neither is approved: the first is kept
    assert dropped["profile_id"].tolist() == ["DB02"]


def test_values_float32_cannot_hold_are_dropped_as_non_finite(mirror_env):
    signatures = pd.DataFrame(np.random.default_rng(3).normal(size=(3, 978)), index=["DB02", "DB04", "DB08"],
                              columns=landmark_genes()["gene_id"].to_numpy())
    signatures.iloc[1, [7, 9]] = 1e39  # finite in float64, inf in the float32 expression.npy
    structures = pd.DataFrame(STRUCTURES, columns=["drugbank_id", "name", "groups", "inchi"]).set_index("drugbank_id")
    curated, dropped = curate_consensus(signatures, structures)
    assert dropped.set_index("profile_id")["reason"]["DB04"] == "non-finite values: 2 genes"
    assert np.isfinite(curated.expression).all() and curated.summary()["non_finite_profiles_dropped"] == 1


@pytest.mark.parametrize("damage", ["truncated gzip", "gzip of random bytes", "empty file", "R data named .tsv.gz"])
@pytest.mark.parametrize("table", ["signatures", "structures"])
def test_a_file_that_is_not_a_table_is_one_line_naming_it(tmp_path, damage, table):
    path = tmp_path / "table.tsv.gz"
    text = gzip.compress(b"perturbagen\t1\t2\nDB01\t0.1\t0.2\n" * 2000)
    path.write_bytes({"truncated gzip": text[: len(text) // 2],
                      "gzip of random bytes": gzip.compress(np.random.default_rng(0).bytes(5000)),
                      "empty file": b"", "R data named .tsv.gz": b"\xfd7zXZ\x00 R data"}[damage])
    reader = read_signature_table if table == "signatures" else read_structure_table
    with pytest.raises(ConsensusFormatError, match=f"^{path}: cannot be read as a tab-separated") as caught:
        reader(path)
    assert "Fix: " in str(caught.value) and "\n" not in str(caught.value)
