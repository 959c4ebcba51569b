import numpy as np
import pandas as pd
import pytest

from perturbx.datasets import fetch
from perturbx.datasets.drug_response import (
    TEST_DATASET,
    TRAIN_DATASET,
    ccle_labels_from_activity_area,
    drug_table,
    label_pairs,
    load_drp,
    normalise_cell_name,
)

# the reasons load_drp may give for a labelled pair it leaves out
LEFT_OUT_REASONS = {
    "conflicting labels for one drug under several names",
    "duplicate pair merged (same drug under several names)",
    "no omics for the cell line (not in GDSC EXP/CNV/MUT)",
    "no valid SMILES for the drug",
}
# pairs that are not kept at all (a merged duplicate keeps one copy)
REMOVING_REASONS = LEFT_OUT_REASONS - {"duplicate pair merged (same drug under several names)"}


@pytest.mark.parametrize("name", ["42-MG-BA", "42MGBA", "42mg-ba"])
def test_normalise_cell_name_collapses_spellings(name):
    assert normalise_cell_name(name) == "42MGBA"


def test_normalise_cell_name_drops_hyphen_keeps_digits():
    assert normalise_cell_name("NCI-H2141") == "NCIH2141"
    assert normalise_cell_name("COLO 201") == "COLO201"


def tiny_matrix() -> pd.DataFrame:
    """Rows "A-1" and "A1" are one cell line: d1 agrees (-1, -1), d2 conflicts (+1, -1)."""
    return pd.DataFrame(
        {"d1": [-1, -1, 1], "d2": [1, -1, 0], "d3": [0, 1, np.nan], "d4": [np.nan, np.nan, -1]},
        index=["A-1", "A1", "B2"], dtype=float)


def test_label_pairs_maps_values_and_skips_zero_and_nan():
    result = label_pairs(tiny_matrix(), "toy")
    pairs = result.pairs.set_index(["cell_id", "drug_name"])["label"]
    # -1 (sensitive) -> 1, +1 (resistant) -> 0; 0 and NaN are not pairs; the conflicting (A1, d2) is gone
    assert pairs.to_dict() == {("A1", "d1"): 1, ("A1", "d3"): 0, ("B2", "d1"): 0, ("B2", "d4"): 1}
    assert (result.pairs["dataset"] == "toy").all()
    assert list(result.pairs.columns) == ["cell_id", "drug_name", "label", "dataset"]


def test_label_pairs_reports_merged_and_conflicting_pairs():
    result = label_pairs(tiny_matrix(), "toy")
    dropped = result.dropped.set_index(["cell_id", "drug_name"])["reason"]
    assert sorted(dropped.index) == [("A1", "d1"), ("A1", "d2")]
    assert "merged" in dropped[("A1", "d1")]
    assert "conflicting" in dropped[("A1", "d2")]
    # the agreeing duplicate is kept exactly once
    assert ((result.pairs["cell_id"] == "A1") & (result.pairs["drug_name"] == "d1")).sum() == 1


def test_label_pairs_lists_collapsed_cell_with_counts():
    collapsed = label_pairs(tiny_matrix(), "toy").collapsed
    assert len(collapsed) == 1
    row = collapsed.iloc[0]
    assert row["cell_id"] == "A1"
    assert row["names"] == "A-1 | A1"
    # before: A-1 has d1, d2 labelled, A1 has d1, d2, d3; after: d1 (merged) and d3
    assert row["n_pairs_before"] == 5
    assert row["n_pairs_after"] == 2


def test_label_pairs_without_duplicates_reports_nothing():
    result = label_pairs(pd.DataFrame({"d1": [-1.0, 1.0]}, index=["X", "Y"]), "toy")
    assert len(result.pairs) == 2 and result.dropped.empty and result.collapsed.empty


def test_ccle_labels_thresholds_are_strict():
    table = pd.DataFrame({
        "Primary Cell Line Name": ["c1", "c1", "c2", "c2", "c3"],
        "Compound": ["X", "Y", "X", "Y", "X"],
        "ActArea": [2.0, 0.5, 2.01, 0.49, 1.0],
    })
    labels = ccle_labels_from_activity_area(table)
    assert labels.loc["c1", "X"] == 0  # exactly 2.0: intermediate
    assert labels.loc["c1", "Y"] == 0  # exactly 0.5: intermediate
    assert labels.loc["c2", "X"] == -1  # above 2: sensitive
    assert labels.loc["c2", "Y"] == 1  # below 0.5: resistant
    assert labels.loc["c3", "X"] == 0
    assert np.isnan(labels.loc["c3", "Y"])  # untested
    assert labels.shape == (3, 2)


# --------------------------------------------------------------------------------------------------- real data

def test_ccle_labels_rederived_from_activity_area_match_deepdra(mirror_env):
    area = pd.read_csv(fetch("ccle_activity_area"))
    deepdra = pd.read_csv(fetch("deepdra_ccle_labels"), sep="\t", index_col=0)
    derived = ccle_labels_from_activity_area(area)
    assert set(derived.index) == set(deepdra.index) and set(derived.columns) == set(deepdra.columns)
    derived = derived.reindex(index=deepdra.index, columns=deepdra.columns)
    # the same cells are untested in both
    np.testing.assert_array_equal(derived.isna().to_numpy(), deepdra.isna().to_numpy())
    both = derived.notna().to_numpy() & deepdra.notna().to_numpy()
    assert both.sum() == len(area) == deepdra.size - int(deepdra.isna().sum().sum())
    np.testing.assert_array_equal(derived.to_numpy()[both], deepdra.to_numpy()[both])
    counts = pd.Series(deepdra.to_numpy()[both]).value_counts()
    assert counts.to_dict() == {0.0: 4922, 1.0: 3792, -1.0: 2956}  # SOURCES.md
    assert int(deepdra.isna().sum().sum()) == 426


@pytest.fixture
def drp(mirror_env):
    return load_drp()


def test_load_drp_pairs_are_valid(drp):
    pairs = drp.pairs
    assert set(pairs["dataset"]) == {TRAIN_DATASET, TEST_DATASET}
    for dataset in (TRAIN_DATASET, TEST_DATASET):
        assert set(drp.dataset(dataset)["label"]) == {0, 1}
    assert pairs["cell_index"].between(0, len(drp.cells) - 1).all()
    assert pairs["drug_index"].between(0, len(drp.drugs) - 1).all()
    # the indices point at the rows of the pair's own cell line and drug
    np.testing.assert_array_equal(drp.cells[pairs["cell_index"]], pairs["cell_id"])
    np.testing.assert_array_equal(drp.drugs.index[pairs["drug_index"]], pairs["drug_id"])
    assert not pairs.duplicated(["dataset", "cell_id", "drug_id"]).any()
    for modality, values in drp.cell_features.items():
        assert values.shape == (len(drp.cells), len(drp.genes)), modality
    assert len(drp.drug_features["descriptors"]) == len(drp.drug_features["fingerprint"]) == len(drp.drugs)


def test_load_drp_ccle_counts_match_sources(drp):
    """SOURCES.md: 361 CCLE cell lines with omics, 4,794 labelled pairs (every CCLE drug has a SMILES)."""
    ccle = drp.dataset(TEST_DATASET)
    assert len(ccle) == 4794
    assert ccle["cell_id"].nunique() == 361


def test_load_drp_accounts_for_every_labelled_pair(mirror_env, drp):
    """Every (cell line, drug structure) of the label matrices is kept or left out with a documented reason."""
    left = drp.report["left_out"]
    assert set(left["reason"]) <= LEFT_OUT_REASONS
    drug_ids = drug_table()["drug_id"]
    for dataset, registry_name in ((TRAIN_DATASET, "deepdra_ctrp_gdsc_labels"), (TEST_DATASET, "deepdra_ccle_labels")):
        matrix = pd.read_csv(fetch(registry_name), sep="\t", index_col=0)
        labelled = label_pairs(matrix, dataset).pairs
        keys = set(zip(labelled["cell_id"], labelled["drug_name"].map(drug_ids)))
        kept = drp.dataset(dataset)
        removed = left[(left["dataset"] == dataset) & left["reason"].isin(REMOVING_REASONS)]
        removed_keys = set(zip(removed["cell_id"], removed["drug_name"].map(drug_ids)))
        kept_keys = set(zip(kept["cell_id"], kept["drug_id"]))
        assert not kept_keys & removed_keys
        assert len(removed_keys) == len(removed)  # each left-out pair reported once
        assert kept_keys | removed_keys == keys
        assert len(kept) + len(removed) == len(keys)


def test_load_drp_reports_cell_name_merges(drp):
    """SOURCES.md: after merging cell names, 4 duplicated CTRP+GDSC pairs, none conflicting; CCLE has none."""
    merged = drp.report["merged"]
    train = merged[merged["dataset"] == TRAIN_DATASET]
    assert len(train) == 4 and train["reason"].str.contains("merged").all()
    assert not (merged["dataset"] == TEST_DATASET).any()
    collapsed = drp.report["collapsed"]
    row = collapsed[collapsed["cell_id"] == "42MGBA"].iloc[0]
    assert row["names"] == "42-MG-BA | 42MGBA" and row["dataset"] == TRAIN_DATASET


def test_ccle_drugs_meet_training_drugs_by_structure(drp):
    matches = drp.report["drug_matches"].set_index("ccle_name")
    assert "anespimycin" in matches.at["17-AAG", "matched_by_structure"].lower()
    assert "selumetinib" in matches.at["AZD6244", "matched_by_structure"].lower()
    assert "palbociclib" in matches.at["PD-0332991", "matched_by_structure"].lower()
    # these three are found by structure only, not by name
    assert matches.loc[["17-AAG", "AZD6244", "PD-0332991"], "matched_by_name"].eq("").all()
    assert len(matches) == 24


def test_labelled_in_training_marks_ccle_pairs_seen_in_training(drp):
    pairs = drp.pairs
    train = pairs[pairs["dataset"] == TRAIN_DATASET]
    test = pairs[pairs["dataset"] == TEST_DATASET]
    assert not train["labelled_in_training"].any()
    assert test["labelled_in_training"].any() and not test["labelled_in_training"].all()
    train_keys = set(zip(train["cell_id"], train["drug_id"]))
    expected = [(c, d) in train_keys for c, d in zip(test["cell_id"], test["drug_id"])]
    np.testing.assert_array_equal(test["labelled_in_training"].to_numpy(), expected)
