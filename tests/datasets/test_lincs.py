import json

import numpy as np
import pandas as pd
import pytest

from perturbx.datasets.cmap import L1000Matrix, landmark_genes, read_matrix
from perturbx.datasets.curate import curate_files
from perturbx.datasets.curated import CuratedL1000
from perturbx.datasets.lincs import curate, load_real_l1000, read_transigen_pairs
from perturbx.datasets.reference_tables import basal_profiles

from .cmap_files import write_gctx

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
COMPOUNDS = pd.DataFrame({
    "pert_iname": ["aspirin", "aspirin salt", "broken", "rare"],
    "smiles": [ASPIRIN, "CC(=O)Oc1ccccc1C(=O)[O-].[Na+]", "C1CC(", "CCO"],
    "inchi_key": [np.nan] * 4,
}, index=pd.Index(["BRD-K00000001", "BRD-K00000002", "BRD-K00000003", "BRD-K00000004"], name="pert_id"))


def tiny_plate(n_genes: int = 978):
    """A level-3 plate: 3 DMSO wells, aspirin (2 ids, 4 wells), a broken SMILES, an unknown compound, a poscon,
    a bad unit, and one well of a cell line without DMSO or basal-table row."""
    rows = [
        ("P1:A01", "DMSO", "DMSO", "ctl_vehicle", "A375", np.nan, np.nan),
        ("P1:A02", "DMSO", "DMSO", "ctl_vehicle", "A375", np.nan, np.nan),
        ("P1:A03", "DMSO", "DMSO", "ctl_vehicle", "A375", np.nan, np.nan),
        ("P1:B01", "BRD-K00000001", "aspirin", "trt_cp", "A375", 10, "uM"),
        ("P1:B02", "BRD-K00000001", "aspirin", "trt_cp", "A375", 1, "uM"),
        ("P1:B03", "BRD-K00000002", "aspirin salt", "trt_cp", "A375", 100, "nM"),
        ("P1:B04", "BRD-K00000002", "aspirin salt", "trt_cp", "A375", 10, "nM"),
        ("P1:C01", "BRD-K00000003", "broken", "trt_cp", "A375", 10, "uM"),
        ("P1:C02", "BRD-K99999999", "unknown", "trt_cp", "A375", 10, "uM"),
        ("P1:C03", "BRD-K00000001", "aspirin", "trt_poscon", "A375", 10, "uM"),
        ("P1:C04", "BRD-K00000001", "aspirin", "trt_cp", "A375", 10, "ug/ml"),
        ("P2:A01", "BRD-K00000004", "rare", "trt_cp", "NOSUCHCELL", 10, "uM"),
        ("P3:A01", "BRD-K00000004", "rare", "trt_cp", "MCF7", 10, "uM"),
    ]
    meta = pd.DataFrame(rows, columns=["id", "pert_id", "pert_iname", "pert_type", "cell_id", "pert_dose",
                                       "pert_dose_unit"]).set_index("id").assign(pert_time=24, pert_time_unit="h")
    values = np.random.default_rng(0).uniform(4, 12, size=(len(meta), n_genes)).astype(np.float32)
    return L1000Matrix(values, meta, "tiny.gct")


def basal_table():
    genes = landmark_genes()["gene_id"].to_numpy()
    return pd.DataFrame(np.full((2, 978), 7.0, dtype=np.float32), index=["MCF7", "PC3"], columns=genes)


def test_curation_keeps_treatments_and_reports_every_drop(mirror_env):
    plate = tiny_plate()
    curated = curate(plate, compounds=COMPOUNDS, basal=basal_table(), level=3)
    kept = curated.metadata.set_index("profile_id")
    assert sorted(kept.index) == ["P1:B01", "P1:B02", "P1:B03", "P1:B04", "P3:A01"]
    reasons = curated.dropped.set_index("profile_id")["reason"]
    assert reasons["P1:A01"].startswith("control well")
    assert reasons["P1:C01"].startswith("invalid SMILES") and "BRD-K00000003" in reasons["P1:C01"]
    assert reasons["P1:C02"].startswith("no SMILES") and "BRD-K99999999" in reasons["P1:C02"]
    assert reasons["P1:C03"] == "not a compound treatment: pert_type trt_poscon"
    assert reasons["P1:C04"].startswith("unreadable dose/time") and "ug/ml" in reasons["P1:C04"]
    assert reasons["P2:A01"].startswith("no basal expression: cell line NOSUCHCELL")
    # every input record is either kept or dropped, once
    assert len(kept) + len(reasons) == len(plate.columns) and not reasons.index.duplicated().any()
    summary = curated.summary()
    assert sum(summary["dropped"].values()) == len(reasons)
    assert summary["doses_um"] == [0.01, 0.1, 1.0, 10.0] and summary["times_h"] == [24.0]
    # the salt form and the free acid are one compound group; doses were converted to µM
    assert kept.loc["P1:B03", "compound_group"] == kept.loc["P1:B01", "compound_group"]
    assert summary["n_compounds"] == 2
    assert kept.loc["P1:B03", "dose_um"] == pytest.approx(0.1)


def test_basal_is_the_same_plate_dmso_mean_else_the_table(mirror_env):
    plate = tiny_plate()
    curated = curate(plate, compounds=COMPOUNDS, basal=basal_table(), level=3)
    meta = curated.metadata
    on_plate = (meta["plate"] == "P1").to_numpy()
    np.testing.assert_allclose(curated.basal[on_plate][0], plate.values[:3].mean(axis=0), rtol=1e-6)
    assert set(meta.loc[on_plate, "basal_source"]) == {"same-plate DMSO mean (3 wells)"}
    assert (curated.basal[~on_plate] == 7.0).all()
    assert set(meta.loc[~on_plate, "basal_source"]) == {"cell-line basal table"}
    row = meta.index[meta["profile_id"] == "P1:B02"][0]
    np.testing.assert_array_equal(curated.expression[row], plate.values[4])


def test_drop_table_follows_the_curation_stages_and_kept_profiles_keep_input_order(mirror_env):
    curated = curate(tiny_plate(), compounds=COMPOUNDS, basal=basal_table(), level=3, min_compound_count=2)
    dropped = curated.dropped
    assert dropped["profile_id"].tolist() == ["P1:C03", "P1:A01", "P1:A02", "P1:A03", "P1:C04", "P1:C02", "P1:C01",
                                              "P2:A01", "P3:A01"]
    stages = dropped["reason"].str.split(":").str[0].drop_duplicates().tolist()
    assert stages == ["not a compound treatment", "control well", "unreadable dose/time", "no SMILES",
                      "invalid SMILES", "no basal expression", "rare compound"]
    assert curated.metadata["profile_id"].tolist() == ["P1:B01", "P1:B02", "P1:B03", "P1:B04"]


def test_min_compound_count_drops_rare_compounds(mirror_env):
    curated = curate(tiny_plate(), compounds=COMPOUNDS, basal=basal_table(), level=3, min_compound_count=2)
    assert "P3:A01" not in set(curated.metadata["profile_id"])
    reason = curated.dropped.set_index("profile_id").loc["P3:A01", "reason"]
    assert reason == "rare compound: seen 1 times (< 2)"


def test_separate_metadata_table_and_unknown_ids(mirror_env):
    plate = tiny_plate()
    bare = L1000Matrix(plate.values, pd.DataFrame(index=plate.columns.index), "bare.gctx")
    table = plate.columns.reset_index().rename(columns={"id": "sig_id"}).iloc[1:]
    curated = curate(bare, table, compounds=COMPOUNDS, basal=basal_table(), level=3)
    reasons = curated.dropped.set_index("profile_id")["reason"]
    assert reasons["P1:A01"] == "no metadata: profile id not in the metadata table"
    assert len(curated) == 5


def test_save_load_round_trip(mirror_env, tmp_path):
    curated = curate(tiny_plate(), compounds=COMPOUNDS, basal=basal_table(), level=3)
    curated.save(tmp_path / "out")
    again = CuratedL1000.load(tmp_path / "out")
    np.testing.assert_array_equal(again.expression, curated.expression)
    pd.testing.assert_frame_equal(again.metadata, curated.metadata, check_dtype=False)
    assert json.loads((tmp_path / "out/summary.json").read_text())["n_profiles"] == 5


def test_curate_files_writes_documented_outputs_and_caches(mirror_env, tmp_path):
    genes = landmark_genes()
    entrez = genes["gene_id"].to_numpy()
    a375 = basal_profiles().loc["A375"].to_numpy()
    values = np.stack([a375 + 0.5, a375 - 0.5]).T
    path = write_gctx(tmp_path / "clue.gctx", values, entrez, ["SIG1", "SIG2"])
    siginfo = tmp_path / "siginfo_beta.txt"
    pd.DataFrame({"sig_id": ["SIG1", "SIG2"], "pert_id": ["BRD-K00000001"] * 2, "cmap_name": ["aspirin"] * 2,
                  "pert_type": ["trt_cp"] * 2, "cell_iname": ["A375"] * 2, "pert_idose": ["10 uM", "1 uM"],
                  "pert_itime": ["24 h", "6 h"]}).to_csv(siginfo, sep="\t", index=False)
    compounds = tmp_path / "compoundinfo_beta.txt"
    pd.DataFrame({"pert_id": ["BRD-K00000001"], "cmap_name": ["aspirin"], "canonical_smiles": [ASPIRIN],
                  "inchi_key": ["BSYNRYMUTXBXSQ-UHFFFAOYSA-N"]}).to_csv(compounds, sep="\t", index=False)
    out = tmp_path / "curated"
    summary, reused = curate_files(path, out, meta=siginfo, compounds=compounds)
    assert not reused
    assert {p.name for p in out.iterdir()} == {"expression.npy", "basal.npy", "metadata.csv", "genes.csv",
                                              "dropped.csv", "summary.json"}
    for key in ("n_profiles", "n_compounds", "n_cells", "n_genes", "doses_um", "times_h", "dropped"):
        assert key in summary
    assert summary["n_profiles"] == 2 and summary["doses_um"] == [1.0, 10.0] and summary["times_h"] == [6.0, 24.0]
    expression = np.load(out / "expression.npy")
    np.testing.assert_allclose(expression, values.T.astype(np.float32))
    metadata = pd.read_csv(out / "metadata.csv")
    for column in ("profile_id", "compound_id", "canonical_smiles", "cell_id", "dose_um", "time_h", "basal_source"):
        assert column in metadata.columns
    assert curate_files(path, out, meta=siginfo, compounds=compounds)[1] is True
    assert curate_files(path, out, meta=siginfo, compounds=compounds, min_compound_count=2)[1] is False


def test_real_dataset(mirror_env):
    data = load_real_l1000()
    counts = data.metadata["source"].value_counts()
    assert counts["l1000_level3_a375_plate"] == 280 and counts["transigen_pairs_example"] == 100
    assert data.summary()["dropped"]["control well"] == 26
    assert len(data) == 587
    # every dropped record of the staged files is accounted for: 377 plate wells + 272 signatures
    per_source = data.dropped["source"].value_counts() + counts.reindex(data.dropped["source"].unique())
    assert per_source["l1000_level3_a375_plate"] == 377 and per_source["l1000_level5_modz_n272"] == 272


def test_transigen_gene_order_matches_the_basal_table(mirror_env):
    """x1 (paired control) of a TranSiGen pair correlates with the basal-table row of its cell line only in the
    landmark order the package uses; a wrong gene order would destroy the correlation."""
    pairs = read_transigen_pairs()
    basal = basal_profiles()
    cell = pairs.metadata["cell_id"].iloc[0]
    r = np.corrcoef(pairs.basal[0], basal.loc[cell].to_numpy())[0, 1]
    assert r > 0.8
    plate = read_matrix(mirror_env / "lincs/cmapPy/test_l1000.gct")
    dmso = plate.values[(plate.columns["pert_type"] == "ctl_vehicle").to_numpy()].mean(axis=0)
    assert np.corrcoef(dmso, basal.loc["A375"].to_numpy())[0, 1] > 0.8


def test_non_finite_values_drop_the_profile_and_leave_the_control_out_of_the_basal_mean(mirror_env):
    plate = tiny_plate()
    plate.values[0, 5] = np.nan  # one gene of one DMSO well (P1:A01)
    plate.values[3, [1, 2, 3]] = [np.inf, -np.inf, np.nan]  # three genes of one treated profile (P1:B01)
    curated = curate(plate, compounds=COMPOUNDS, basal=basal_table(), level=3)
    reasons = curated.dropped.set_index("profile_id")["reason"]
    assert reasons["P1:B01"] == "non-finite values: 3 genes"
    assert reasons["P1:A01"] == "non-finite control well: 1 genes, left out of the basal mean"
    assert np.isfinite(curated.basal).all() and np.isfinite(curated.expression).all()
    on_plate = (curated.metadata["plate"] == "P1").to_numpy()
    np.testing.assert_allclose(curated.basal[on_plate][0], plate.values[1:3].mean(axis=0), rtol=1e-6)
    assert set(curated.metadata.loc[on_plate, "basal_source"]) == {"same-plate DMSO mean (2 wells)"}
    assert len(curated) + len(reasons) == len(plate.columns)
    summary = curated.summary()
    assert summary["non_finite_profiles_dropped"] == 1 and summary["non_finite_controls_excluded"] == 1


def test_doses_and_times_must_be_finite_and_positive(mirror_env):
    plate = tiny_plate()
    plate.columns.loc["P1:B01", "pert_dose"] = -10
    plate.columns.loc["P1:B02", "pert_dose"] = 0
    plate.columns.loc["P1:B03", "pert_dose"] = np.inf
    plate.columns.loc["P1:B04", "pert_time"] = -6
    curated = curate(plate, compounds=COMPOUNDS, basal=basal_table(), level=3)
    reasons = curated.dropped.set_index("profile_id")["reason"]
    assert reasons["P1:B01"] == "invalid dose/time: dose -10 µM (must be finite and > 0)"
    assert reasons["P1:B02"] == "invalid dose/time: dose 0 µM (must be finite and > 0)"
    assert reasons["P1:B03"] == "invalid dose/time: dose inf µM (must be finite and > 0)"
    assert reasons["P1:B04"] == "invalid dose/time: time -6 h (must be finite and > 0)"
    assert curated.metadata["profile_id"].tolist() == ["P3:A01"]
    assert (curated.metadata["dose_um"] > 0).all() and (curated.metadata["time_h"] > 0).all()


def test_duplicate_profile_ids_are_an_error_not_a_vanished_profile(mirror_env):
    plate = tiny_plate()
    plate.columns.index = pd.Index([*plate.columns.index[:-2], "P1:B01", "P1:B01"], name="id")
    with pytest.raises(ValueError, match=r"tiny\.gct: 1 profile \(column\) id\(s\) appear more than once: 'P1:B01'"):
        curate(plate, compounds=COMPOUNDS, basal=basal_table(), level=3)


def test_each_unreadable_dose_keeps_its_own_reason_whatever_the_row_order():
    from perturbx.datasets.curated import DropReport
    from perturbx.datasets.stages import check_doses

    treatments = pd.DataFrame({"dose_um": [1.0, 1.0, 1.0], "time_h": [24.0, 24.0, 24.0]}, index=["b", "a", "c"])
    problems = pd.DataFrame({"profile_id": ["a", "b"], "reason": ["dose '5 xg' for a", "dose '7 yg' for b"]})
    drops = DropReport("test")
    kept = check_doses(treatments, problems, drops, qc=False)
    reasons = drops.table().set_index("profile_id")["reason"]
    assert list(kept.index) == ["c"]
    assert reasons["a"].endswith("for a") and reasons["b"].endswith("for b")
