"""The CPC006 A375 6 h plate (CMap MATLAB layout) and the DPK.CP003 PC3 replicate plate (well-annotation layout)."""

import numpy as np
import pandas as pd
import pytest

from perturbx.datasets import fetch
from perturbx.datasets.cmap import L1000Matrix, MetadataError, harmonise, read_matrix, read_table
from perturbx.datasets.curate import curate_files
from perturbx.datasets.lincs import curate_well_annotated, load_a375_plates, load_replicate_plate
from perturbx.datasets.well_annotations import cell_from_plate, join_well_annotations

from .test_lincs import COMPOUNDS, basal_table


def test_the_cmap_matlab_layout_is_harmonised():
    columns = pd.DataFrame({"pert_id": ["DMSO", "BRD-K00000001"], "pert_type": ["CTL_VEHICLE", "TRT_CP"],
                            "pert_desc": ["DMSO", "aspirin"], "cell_id": ["A375", "A375"],
                            "exp_pert_dose": ["-666", "500.0"], "exp_pert_dose_unit": ["-666", "NM"],
                            "exp_pert_time": ["6.0", "6.0"], "exp_pert_time_unit": ["H", "H"],
                            "det_plate": ["CPC006_A375_6H_X1_DUO52HI53LO"] * 2}, index=["P:A01", "P:A02"])
    tidy, problems = harmonise(columns, "t.gct")
    assert tidy["pert_type"].tolist() == ["ctl_vehicle", "trt_cp"]
    assert tidy.loc["P:A02", "pert_iname"] == "aspirin"
    assert tidy.loc["P:A02", "dose_um"] == pytest.approx(0.5) and tidy["time_h"].tolist() == [6.0, 6.0]
    assert problems.empty


def test_cpc006_curates_with_no_options(mirror_env, tmp_path):
    summary, _ = curate_files(fetch("l1000_level3_a375_6h_plate"), tmp_path / "out")
    dropped = pd.read_csv(tmp_path / "out" / "dropped.csv")
    metadata = pd.read_csv(tmp_path / "out" / "metadata.csv")
    assert summary["n_profiles"] + len(dropped) == 371
    reasons = dropped["reason"].str.split(":").str[0].value_counts()
    assert reasons["control well"] == 16  # the DMSO wells, used as the basal
    assert dropped["reason"].str.contains("dose 0 µM").sum() == 1
    assert set(metadata["level"]) == {3} and set(metadata["time_h"]) == {6.0} and set(metadata["cell_id"]) == {"A375"}
    assert set(metadata["basal_source"]) == {"same-plate DMSO mean (16 wells)"}
    assert metadata["dose_um"].nunique() >= 40  # one dose per compound, about 48 values
    assert metadata["compound_id"].nunique() == 354 - 1 - reasons["no SMILES"]  # one compound at dose 0


def test_dpk_curates_as_a_level4_replicate_plate(mirror_env, tmp_path):
    plate, annotations = fetch("l1000_replicate_pc3_plate"), fetch("l1000_replicate_pc3_annotations")
    summary, _ = curate_files(plate, tmp_path / "out", meta=annotations)
    dropped = pd.read_csv(tmp_path / "out" / "dropped.csv")
    metadata = pd.read_csv(tmp_path / "out" / "metadata.csv")
    genes = pd.read_csv(tmp_path / "out" / "genes.csv")
    assert summary["n_profiles"] + len(dropped) == 372
    reasons = dropped["reason"].value_counts()
    assert reasons["control well: used as basal, not a treatment"] == 18
    assert reasons["not a compound treatment: pert_type ctl_untrt"] == 10
    assert set(metadata["level"]) == {4} and set(metadata["cell_id"]) == {"PC3"}
    assert set(metadata["basal_source"]) == {"same-plate DMSO mean of z-scores (18 wells)"}
    assert metadata["profile_id"].str.startswith("DPK.CP003_PC3_24H_X1_B42:").all()
    assert metadata.groupby("replicate_group").size().min() >= 9
    assert (~genes["measured"]).sum() == 2 and len(summary["genes_not_measured"]) == 2


def test_the_replicate_plate_basal_is_its_dmso_mean_and_models_refuse_its_missing_genes(mirror_env):
    curated = load_replicate_plate()
    matrix = read_matrix(fetch("l1000_replicate_pc3_plate"))
    table = read_table(fetch("l1000_replicate_pc3_annotations"))
    truth = table[(table["handle"] == "ground-truth") & (table["det_plate"] == "DPK.CP003_PC3_24H_X1_B42")]
    dmso = truth.loc[truth["pert_type"] == "ctl_vehicle", "pert_well"]
    expected = matrix.values[matrix.columns.index.isin(dmso)].mean(axis=0)
    np.testing.assert_allclose(curated.basal[0], expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(curated.expression[:, ~curated.measured]).all()
    with pytest.raises(ValueError, match="2 of the 978 landmark genes were not measured"):
        curated.require_all_genes("a model needs them")


def test_the_a375_loader_stacks_both_plates_with_their_own_basal(mirror_env):
    a375 = load_a375_plates()
    plates = a375.metadata.groupby("plate")["basal_source"].agg(set)
    assert plates.to_dict() == {"CPC006_A375_6H_X1_DUO52HI53LO": {"same-plate DMSO mean (16 wells)"},
                                "LJP005_A375_24H_X1_B19": {"same-plate DMSO mean (26 wells)"}}
    assert set(a375.metadata["time_h"]) == {6.0, 24.0} and a375.measured.all()


# --------------------------------------------------------------------------------------------------- the join

PLATE = "DPK.CP003_PC3_24H_X1_B42"


def tiny_annotations(**changes) -> pd.DataFrame:
    rows = [("gt:A01", "A01", PLATE, "ground-truth", "DMSO", "DMSO", "ctl_vehicle", np.nan, np.nan),
            ("gt:A02", "A02", PLATE, "ground-truth", "BRD-K00000001", "aspirin", "trt_cp", "10", "um"),
            ("gt:A03", "A03", PLATE, "ground-truth", "BRD-K00000001", "aspirin", "trt_cp", "10", "um"),
            ("x:A02", "A02", PLATE, "contestant", "BRD-K00000004", "other", "trt_cp", "1", "um"),
            ("gt2:A02", "A02", "OTHER_MCF7_6H_X1", "ground-truth", "BRD-K00000004", "other", "trt_cp", "1", "um")]
    table = pd.DataFrame(rows, columns=["id", "pert_well", "det_plate", "handle", "pert_id", "pert_iname",
                                        "pert_type", "pert_dose", "pert_dose_unit"])
    return table.assign(pert_time="24", pert_time_unit="h", **changes)


def tiny_wells(wells=("A01", "A02", "A03"), name=f"{PLATE}_DE_UNI.gct") -> L1000Matrix:
    values = np.random.default_rng(1).normal(size=(len(wells), 978)).astype(np.float32)
    return L1000Matrix(values, pd.DataFrame(index=pd.Index(list(wells), name="id")), f"/data/{name}")


def test_the_join_keeps_the_ground_truth_of_the_matrix_plate(mirror_env):
    curated = curate_well_annotated(tiny_wells(), tiny_annotations(), "ann.txt", compounds=COMPOUNDS,
                                    basal=basal_table())
    meta = curated.metadata
    assert meta["profile_id"].tolist() == [f"{PLATE}:A02", f"{PLATE}:A03"]
    assert set(meta["cell_id"]) == {"PC3"} and set(meta["compound_id"]) == {"BRD-K00000001"}
    assert meta["replicate_group"].nunique() == 1
    np.testing.assert_allclose(curated.change[0], tiny_wells().values[1] - tiny_wells().values[0], rtol=1e-5)


@pytest.mark.parametrize("case, message", [
    ("no ground truth", "no rows with handle 'ground-truth' for plate"),
    ("a well twice", "described more than once"),
    ("a well missing", "1 wells of DPK.CP003_PC3_24H_X1_B42_DE_UNI.gct have no ground-truth row"),
    ("another plate", "no det_plate of the table names the matrix file"),
])
def test_a_join_that_is_not_one_to_one_is_a_one_line_error(case, message):
    table, matrix = tiny_annotations(), tiny_wells()
    if case == "no ground truth":
        table = table.assign(handle="contestant")
    elif case == "a well twice":
        table = pd.concat([table, table.iloc[[1]]])
    elif case == "a well missing":
        matrix = tiny_wells(("A01", "A02", "A03", "H24"))
    else:
        matrix = tiny_wells(name="LJP005_A375_24H_X2_B19.gct")
    with pytest.raises(MetadataError, match=message) as caught:
        join_well_annotations(matrix, table, "ann.txt")
    assert str(caught.value).startswith("ann.txt: ") and "Fix: " in str(caught.value) and "\n" not in str(caught.value)


def test_the_cell_line_comes_from_the_plate_name():
    assert cell_from_plate("DPK.CP003_PC3_24H_X1_B42", "t") == "PC3"
    assert cell_from_plate("CPC006_A375_6H_X1", "t") == "A375"
    with pytest.raises(MetadataError, match="cannot read the cell line from plate name 'PLATE7'"):
        cell_from_plate("PLATE7", "t")

