import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import rdata
import xarray

from perturbx.datasets.cmap import landmark_genes
from perturbx.datasets.pharmacoset import (
    PHARMACOSET_COLUMNS,
    PharmacoSetError,
    curate_pharmacoset,
    dmso_wells,
    parse_pharmacoset,
    pharmacoset_parts,
    read_pharmacoset,
)

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE = "Cn1cnc2c1c(=O)n(C)c(=O)n2C"
DRUGS = pd.DataFrame({"pert_iname": ["aspirin", "broken", "nameonly"],
                      "canonical_smiles": [ASPIRIN, "C1CC(", np.nan]},
                     index=["BRD-K00000001", "BRD-K00000003", "BRD-K00000005"])
COMPOUNDS = pd.DataFrame({"pert_iname": ["caffeine", "nameonly"], "smiles": [CAFFEINE, "CCO"]},
                         index=pd.Index(["BRD-K00000002", "BRD-K00000009"], name="pert_id"))

# instance id, pert_id, pert_type, dose, dose unit, time, plate
WELLS = [
    ("P1:A01", "DMSO", "ctl_vehicle", -666, "-666", 6, "P1"),
    ("P1:A02", "DMSO", "ctl_vehicle", -666, "-666", 6, "P1"),
    ("P1:A03", "DMSO", "ctl_vehicle", -666, "-666", 6, "P1"),
    ("P2:A01", "DMSO", "ctl_vehicle", -666, "-666", 6, "P2"),
    ("P2:A02", "DMSO", "ctl_vehicle", -666, "-666", 6, "P2"),
    ("P3:A01", "DMSO", "ctl_vehicle", -666, "-666", 6, "P3"),  # plate without treatments
    ("P3:A02", "H2O", "ctl_vehicle", -666, "-666", 6, "P3"),
    ("P1:A04", "CMAP-000", "ctl_untrt", -666, "-666", 6, "P1"),
    ("P1:B01", "BRD-K00000001", "trt_cp", 1, "um", 6, "P1"),  # aspirin, replicate 1 of 1 uM 6 h
    ("P2:B01", "BRD-K00000001", "trt_cp", 1000, "nm", 6, "P2"),  # replicate 2, dose in nM
    ("P1:B02", "BRD-K00000001", "trt_cp", 10, "um", 6, "P1"),
    ("P1:B03", "BRD-K00000002", "trt_cp", 10, "um", 6, "P1"),  # structure from the LINCS table by id
    ("P1:B04", "BRD-K00000005", "trt_cp", 10, "um", 6, "P1"),  # structure from the LINCS table by name
    ("P1:C01", "BRD-K00000003", "trt_cp", 10, "um", 6, "P1"),  # invalid SMILES
    ("P1:C02", "BRD-K00000004", "trt_cp", 10, "um", 6, "P1"),  # no structure anywhere
    ("P1:C03", "BRD-K00000001", "trt_cp", 10, "ug/ml", 6, "P1"),
    ("P1:C04", "BRD-K00000001", "trt_cp", 0, "um", 6, "P1"),
    ("P1:C05", "BRD-K00000001", "trt_cp", 10, "um", 6, "P1"),  # NaN values
    ("P4:A01", "BRD-K00000001", "trt_cp", 10, "um", 6, "P4"),  # no DMSO on its plate
]


def tiny_samples() -> pd.DataFrame:
    frame = pd.DataFrame(WELLS, columns=["distil_id", "pert_id", "pert_type", "pert_dose", "pert_dose_unit",
                                         "pert_time", "det_plate"]).set_index("distil_id", drop=False)
    frame["pert_time_unit"] = "h"
    frame["cell_id"] = "SKBR3"
    frame["drugid"] = frame["pert_id"].where(frame["pert_type"] == "trt_cp")
    return frame


def tiny_genes(rng: np.random.Generator) -> np.ndarray:
    """The 978 landmark Entrez ids (as text) plus two other genes, shuffled."""
    ids = np.concatenate([landmark_genes()["gene_id"].astype(str).to_numpy(), ["99999991", "99999992"]])
    return ids[rng.permutation(len(ids))]


def tiny_inputs():
    rng = np.random.default_rng(0)
    samples = tiny_samples()
    gene_ids = tiny_genes(rng)
    expression = rng.uniform(4, 12, size=(len(samples), len(gene_ids)))
    expression[samples.index.get_loc("P1:C05"), 5] = np.nan
    return expression, gene_ids, samples


def test_curation_keeps_treatments_labels_replicates_and_reports_every_drop(mirror_env):
    expression, gene_ids, samples = tiny_inputs()
    curated, dropped = curate_pharmacoset(expression, gene_ids, samples, DRUGS, source="tiny", compounds=COMPOUNDS)
    meta = curated.metadata.set_index("profile_id")
    assert list(curated.metadata.columns) == PHARMACOSET_COLUMNS
    assert sorted(meta.index) == ["P1:B01", "P1:B02", "P1:B03", "P1:B04", "P2:B01"]
    reasons = dropped.set_index("profile_id")["reason"]
    assert len(meta) + len(reasons) == len(samples) and not reasons.index.duplicated().any()
    assert reasons["P1:A01"] == "control well: used as basal, not a treatment"
    assert reasons["P3:A01"].startswith("control well (DMSO, not used)") and "P3" in reasons["P3:A01"]
    assert reasons["P3:A02"].startswith("control well (H2O, not used)")
    assert reasons["P1:A04"] == "not a compound treatment: pert_type ctl_untrt"
    assert reasons["P1:C01"].startswith("invalid SMILES") and "BRD-K00000003" in reasons["P1:C01"]
    assert reasons["P1:C02"].startswith("no SMILES") and "BRD-K00000004" in reasons["P1:C02"]
    assert reasons["P1:C03"].startswith("unreadable dose/time") and "ug/ml" in reasons["P1:C03"]
    assert reasons["P1:C04"].startswith("invalid dose/time")
    assert reasons["P1:C05"] == "non-finite values: 1 genes"
    assert reasons["P4:A01"].startswith("no basal expression: plate P4")
    assert set(dropped["source"]) == {"tiny"} and set(meta["source"]) == {"tiny"} and set(meta["level"]) == {3}
    # the two wells of aspirin at 1 uM (one given in nM) share one replicate group; 10 uM is another
    group = meta.loc["P1:B01", "replicate_group"]
    assert group == meta.loc["P2:B01", "replicate_group"] == "BRD-K00000001|SKBR3|1 uM|6 h"
    assert meta.loc["P1:B02", "replicate_group"] != meta.loc["P1:B01", "replicate_group"]
    assert meta["smiles_source"].to_dict() == {
        "P1:B01": "pharmacoset drug table", "P2:B01": "pharmacoset drug table", "P1:B02": "pharmacoset drug table",
        "P1:B03": "lincs compound table (pert_id)", "P1:B04": "lincs compound table (name)"}
    assert meta.loc["P1:B03", "compound_name"] == "caffeine" and meta.loc["P1:B01", "compound_name"] == "aspirin"
    assert meta.loc["P1:B01", "canonical_smiles"] == "CC(=O)Oc1ccccc1C(=O)O"


def test_values_are_in_landmark_order_and_basal_is_the_same_plate_dmso_mean(mirror_env):
    expression, gene_ids, samples = tiny_inputs()
    curated, _ = curate_pharmacoset(expression, gene_ids, samples, DRUGS, compounds=COMPOUNDS)
    column = {int(g): i for i, g in enumerate(gene_ids)}
    order = [column[g] for g in landmark_genes()["gene_id"]]
    row = {name: i for i, name in enumerate(samples.index)}
    ids = curated.metadata["profile_id"].tolist()
    np.testing.assert_allclose(curated.expression, expression[[row[i] for i in ids]][:, order], rtol=1e-6)
    plate1 = expression[[row["P1:A01"], row["P1:A02"], row["P1:A03"]]][:, order].mean(axis=0)
    plate2 = expression[[row["P2:A01"], row["P2:A02"]]][:, order].mean(axis=0)
    np.testing.assert_allclose(curated.basal[ids.index("P1:B01")], plate1, rtol=1e-6)
    np.testing.assert_allclose(curated.basal[ids.index("P2:B01")], plate2, rtol=1e-6)
    sources = curated.metadata.set_index("profile_id")["basal_source"]
    assert sources["P1:B01"] == "same-plate DMSO mean (3 wells)"
    assert sources["P2:B01"] == "same-plate DMSO mean (2 wells)"
    assert curated.expression.dtype == np.float32 and curated.basal.dtype == np.float32


def test_wells_without_plate_information_use_the_cell_lines_dmso_mean(mirror_env):
    expression, gene_ids, samples = tiny_inputs()
    samples["det_plate"] = np.nan
    samples.index = [f"well{i}" for i in range(len(samples))]  # ids no longer carry "<plate>:<well>"
    curated, dropped = curate_pharmacoset(expression, gene_ids, samples, DRUGS, compounds=COMPOUNDS)
    assert set(curated.metadata["basal_source"]) == {"all-plate (no plate information) DMSO mean (6 wells)"}
    assert len(curated) + len(dropped) == len(samples)


def test_missing_landmark_genes_are_named(mirror_env):
    expression, gene_ids, samples = tiny_inputs()
    first = str(landmark_genes()["gene_id"].iloc[0])
    keep = gene_ids != first
    with pytest.raises(PharmacoSetError, match=rf"tiny: 1 of the 978 landmark genes are missing .*: {first}\)"):
        curate_pharmacoset(expression[:, keep], gene_ids[keep], samples, DRUGS, source="tiny", compounds=COMPOUNDS)


def test_z_scores_and_misshapen_inputs_are_rejected(mirror_env):
    expression, gene_ids, samples = tiny_inputs()
    with pytest.raises(PharmacoSetError, match="not level-3 log2 expression"):
        curate_pharmacoset(expression - 8, gene_ids, samples, DRUGS, compounds=COMPOUNDS)
    with pytest.raises(PharmacoSetError, match=r"expected \(instances, genes\)"):
        curate_pharmacoset(expression.T, gene_ids, samples, DRUGS, compounds=COMPOUNDS)


def test_dmso_wells_are_the_finite_dmso_controls(mirror_env):
    expression, gene_ids, samples = tiny_inputs()
    values, wells = dmso_wells(expression, gene_ids, samples)
    assert wells["profile_id"].tolist() == ["P1:A01", "P1:A02", "P1:A03", "P2:A01", "P2:A02", "P3:A01"]
    assert values.shape == (6, 978) and wells["plate"].tolist()[-1] == "P3"


def fake_pset(expression, gene_ids, samples, r_class="PharmacoSet"):
    """The shape rdata gives a PharmacoSet: S4 objects as namespaces, exprs genes x instances."""
    exprs = xarray.DataArray(expression.T, dims=("dim_0", "dim_1"),
                             coords={"dim_0": [f"geneid.{g}" for g in gene_ids], "dim_1": samples.index.to_numpy()})
    features = pd.DataFrame({"pr_gene_id": gene_ids}, index=[f"geneid.{g}" for g in gene_ids])
    eset = SimpleNamespace(assayData={"exprs": exprs}, phenoData=SimpleNamespace(data=samples),
                           featureData=SimpleNamespace(data=features), **{"class": np.array(["ExpressionSet"])})
    return SimpleNamespace(molecularProfiles={"rna": eset}, drug=DRUGS, **{"class": np.array([r_class])})


def test_pharmacoset_parts_from_a_converted_object(mirror_env):
    expression, gene_ids, samples = tiny_inputs()
    parts = pharmacoset_parts({"pset": fake_pset(expression, gene_ids, samples)}, "fake.rda")
    np.testing.assert_array_equal(parts.expression, expression)
    assert list(parts.gene_ids) == list(gene_ids) and parts.samples.index.equals(samples.index)
    assert parts.drugs.loc["BRD-K00000001", "pert_iname"] == "aspirin"
    curated, _ = curate_pharmacoset(parts.expression, parts.gene_ids, parts.samples, parts.drugs, compounds=COMPOUNDS)
    assert len(curated) == 5


def test_objects_that_are_not_a_usable_pharmacoset_get_one_clear_line(mirror_env):
    expression, gene_ids, samples = tiny_inputs()
    with pytest.raises(PharmacoSetError, match=r"^x\.rda: not a PharmacoSet file: it holds frame \(data\.frame\)"):
        pharmacoset_parts({"frame": samples}, "x.rda")
    no_rna = fake_pset(expression, gene_ids, samples)
    no_rna.molecularProfiles = {"cnv": no_rna.molecularProfiles["rna"]}
    with pytest.raises(PharmacoSetError, match=r"no 'rna' molecular profile \(found: cnv\)"):
        pharmacoset_parts({"pset": no_rna}, "x.rda")
    shuffled = fake_pset(expression, gene_ids, samples)
    shuffled.molecularProfiles["rna"].phenoData.data = samples.iloc[::-1]
    with pytest.raises(PharmacoSetError, match="exprs column names are not the phenoData row names"):
        pharmacoset_parts({"pset": shuffled}, "x.rda")


def test_rda_files_that_are_not_a_pharmacoset(tmp_path):
    frame_file = tmp_path / "frame.rda"
    rdata.write_rda(frame_file, {"frame": pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})})
    with pytest.raises(PharmacoSetError, match=r"frame\.rda: not a PharmacoSet file: it holds frame \(data\.frame\)"):
        parse_pharmacoset(frame_file)
    garbage = tmp_path / "garbage.rda"
    garbage.write_bytes(b"not R data at all\n")
    with pytest.raises(PharmacoSetError, match=r"garbage\.rda: not an R data file \(it starts with b'not R '"):
        parse_pharmacoset(garbage)
    broken = tmp_path / "broken.rda"
    broken.write_bytes(b"\xfd7zXZ\x00 truncated")
    with pytest.raises(PharmacoSetError, match=r"broken\.rda: cannot be read as R data"):
        parse_pharmacoset(broken)
    with pytest.raises(FileNotFoundError, match="no such file"):
        parse_pharmacoset(tmp_path / "absent.rda")


def test_real_cmapbox_pharmacoset(mirror_env):  # its speed: benchmarks/reader_speed.py
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # rdata's "Missing constructor" warnings are filtered
        curated, dropped = read_pharmacoset()
    summary = curated.summary()
    assert summary["n_profiles"] == 307 and summary["n_compounds"] == 10 and summary["n_cells"] == 1
    assert summary["doses_um"] == [0.08, 0.4, 2.0, 10.0] and summary["times_h"] == [6.0, 24.0]
    assert summary["dropped"] == {"control well": 182, "control well (H2O, not used)": 83,
                                  "not a compound treatment": 8}
    sizes = curated.metadata.groupby("replicate_group").size()
    assert len(sizes) == 80 and sizes.value_counts().to_dict() == {3: 35, 4: 23, 5: 22}
    assert set(curated.metadata["smiles_source"]) == {"pharmacoset drug table"}
    assert curated.metadata["basal_source"].str.startswith("same-plate DMSO mean").all()
    assert np.isfinite(curated.basal).all() and 0 <= curated.expression.min() and curated.expression.max() < 16
