"""Expression experiments and attributions on a tiny synthetic dataset (no data files needed)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from perturbx import chem, explain, expression
from perturbx.datasets.cmap import N_LANDMARKS
from perturbx.datasets.lincs import CuratedL1000
from perturbx.models.gnn import TOKEN_NAMES
from perturbx.pathways import GeneGraph

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMILES = {"aspirin": "CC(=O)Oc1ccccc1C(=O)O", "aniline": "Nc1ccccc1", "ethanol": "CCO",
          "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "phenol": "Oc1ccccc1", "toluene": "Cc1ccccc1"}


def tiny_data(level: int = 3, seed: int = 0) -> CuratedL1000:
    """6 compounds x 3 cell lines x 2 doses, one profile each; compound 'aspirin' raises genes 0-9 by 2."""
    rng = np.random.default_rng(seed)
    rows = [(name, cell, dose) for name in SMILES for cell in ("A375", "MCF7", "PC3") for dose in (0.1, 10.0)]
    cell_basal = {c: rng.normal(8, 2, N_LANDMARKS).astype(np.float32) for c in ("A375", "MCF7", "PC3")}
    basal = np.stack([cell_basal[c] for _, c, _ in rows])
    change = rng.normal(0, 0.1, basal.shape).astype(np.float32)
    for i, (name, _, dose) in enumerate(rows):
        if name == "aspirin":
            change[i, :10] += 2.0 * (dose > 1)
    metadata = pd.DataFrame({
        "profile_id": [f"P{i}" for i in range(len(rows))], "source": "test", "level": level,
        "compound_id": [n for n, _, _ in rows], "compound_name": [n for n, _, _ in rows],
        "canonical_smiles": [chem.canonical_smiles(SMILES[n]) for n, _, _ in rows],
        "compound_group": [n for n, _, _ in rows], "smiles_source": "test", "cell_id": [c for _, c, _ in rows],
        "dose_um": [d for _, _, d in rows], "time_h": 24.0, "plate": np.nan, "basal_source": "test"})
    genes = pd.DataFrame({"gene_id": np.arange(N_LANDMARKS), "gene_symbol": [f"G{i}" for i in range(N_LANDMARKS)]})
    return CuratedL1000(basal + change, basal, metadata, pd.DataFrame(columns=["profile_id", "source", "reason"]),
                        genes)


def tiny_graph() -> GeneGraph:
    source = np.arange(0, 40, 2)
    edges = np.concatenate([np.stack([source, source + 1]), np.stack([source + 1, source])], axis=1)
    return GeneGraph(edges.astype(np.int64), np.ones(edges.shape[1], np.float32),
                     {"first ten": list(range(10)), "next ten": list(range(10, 20))}, N_LANDMARKS)


@pytest.fixture(scope="module")
def inputs() -> expression.Inputs:
    return expression.build_inputs(tiny_data(), tiny_graph(), fingerprint_bits=256)


def test_build_inputs_indexes_compounds_by_structure(inputs):
    meta = inputs.data.metadata
    assert len(inputs.compounds) == len(SMILES) == len(inputs.graphs)
    assert (inputs.compounds["canonical_smiles"].to_numpy()[inputs.compound_index] == meta["canonical_smiles"]).all()
    assert inputs.fingerprints.shape == (len(SMILES), 256)


def test_build_inputs_refuses_z_scores():
    with pytest.raises(ValueError, match="not level-3 log2 expression.*level 5"):
        expression.build_inputs(tiny_data(level=5), tiny_graph())


def test_build_inputs_names_a_bad_smiles():
    data = tiny_data()
    data.metadata.loc[data.metadata["compound_id"] == "ethanol", "canonical_smiles"] = "C1CC("
    with pytest.raises(chem.InvalidSmilesError, match="ethanol"):
        expression.build_inputs(data, tiny_graph())


def test_prepare_uses_training_rows_only(inputs):
    train = np.arange(0, 24)
    prepared = expression.prepare(inputs, train)
    np.testing.assert_allclose(prepared.basal[train].mean(axis=0), 0, atol=1e-4)
    altered = tiny_data()
    altered.basal[24:] += 100.0  # test rows: must not move the training statistics
    again = expression.prepare(expression.Inputs(altered, *[getattr(inputs, f) for f in
                                                             ("compounds", "compound_index", "graphs",
                                                              "fingerprints", "gene_graph")]), train)
    np.testing.assert_allclose(again.basal[train], prepared.basal[train], atol=1e-5)
    assert np.all(again.basal[24:] > prepared.basal[24:] + 1)


def test_unknown_dose_gets_flag_zero(inputs):
    data = tiny_data()
    data.metadata.loc[0, "dose_um"] = np.nan
    prepared = expression.prepare(expression.Inputs(data, *[getattr(inputs, f) for f in
                                                             ("compounds", "compound_index", "graphs",
                                                              "fingerprints", "gene_graph")]), np.arange(36))
    assert prepared.dose[0].tolist() == [0.0, 0.0]
    assert prepared.dose[1:, 1].min() == 1.0
    np.testing.assert_allclose(prepared.time[:, 0], 0.0, atol=1e-9)  # one training time: centred, SD guarded


@pytest.mark.parametrize("kind, column", [("random", None), ("unseen compound", "compound_group"),
                                          ("unseen cell", "cell_id")])
def test_splits_hold_out_what_they_say(inputs, kind, column):
    split = expression.make_split(inputs, kind, seed=1, test_size=0.3, val_size=0.2)
    meta = inputs.data.metadata
    groups = expression.condition_groups(meta) if column is None else meta[column].to_numpy()
    assert not set(groups[split.test]) & set(groups[split.train])
    assert len(split.test) and len(split.train)


def test_make_split_rejects_unknown_kind(inputs):
    with pytest.raises(ValueError, match="unknown split kind"):
        expression.make_split(inputs, "unseen dose", seed=0)


def test_cell_line_means_fall_back_to_overall_mean(inputs):
    meta = inputs.data.metadata
    train = np.flatnonzero(meta["cell_id"] != "PC3")
    test = np.flatnonzero(meta["cell_id"].isin(["PC3", "A375"]))
    predicted = expression.cell_line_means(inputs, train, test)
    change = inputs.data.change
    a375 = change[np.flatnonzero(meta["cell_id"] == "A375")].mean(axis=0)
    for row, position in enumerate(test):
        expected = a375 if meta.at[position, "cell_id"] == "A375" else change[train].mean(axis=0)
        np.testing.assert_allclose(predicted[row], expected, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def smoke_result(inputs):
    settings = expression.settings_for("smoke")
    split = expression.make_split(inputs, "random", seed=0, test_size=0.3, val_size=0.15)
    return expression.run_split(inputs, split, settings, seed=0, true_change=inputs.data.change)


def test_run_split_scores_every_model_on_the_test_rows(smoke_result):
    metrics = smoke_result.metrics
    assert set(metrics["model"]) == set(expression.ALL_MODELS) | {expression.ORACLE}
    for _, part in metrics.groupby("model"):
        assert sorted(part["row"]) == sorted(smoke_result.split.test)
    oracle = metrics[metrics["model"] == expression.ORACLE]  # the measured change itself: perfect scores
    np.testing.assert_allclose(oracle["pearson_change"], 1.0, atol=1e-6)
    np.testing.assert_allclose(oracle["rmse"], 0.0, atol=1e-5)
    assert metrics.loc[metrics["model"] == "basal (no change)", "pearson_change"].isna().all()


def test_run_experiments_table_has_mean_and_sd(inputs):
    settings = expression.settings_for("smoke")
    runs, results = expression.run_experiments(inputs, ["unseen compound"], [0, 1], settings,
                                               models=["training mean per cell line", "ridge"], progress=False)
    assert len(runs) == 4 and set(results) == {("unseen compound", 0), ("unseen compound", 1)}
    table = expression.results_table(runs)
    assert (table["runs"] == 2).all()
    assert np.isfinite(table["pearson_change_sd"]).all()


def test_attributions_shapes_and_token_attention(inputs, smoke_result):
    rows = smoke_result.split.test[:4]
    found = explain.attributions(smoke_result.graph_model, inputs, smoke_result.prepared, rows)
    atoms = [inputs.graphs[i].num_nodes for i in inputs.compound_index[rows]]
    assert [len(a) for a in found.atom_gradient] == atoms == [len(a) for a in found.atom_attention]
    assert found.gene_gradient.shape == found.gene_pool.shape == (4, N_LANDMARKS)
    assert list(found.token_attention.columns) == list(TOKEN_NAMES)
    np.testing.assert_allclose(found.token_attention.sum(axis=1), 1.0, atol=1e-5)
    expected = expression.predict_graph_model(smoke_result.graph_model, inputs, smoke_result.prepared, rows)
    np.testing.assert_allclose(found.predicted_change, expected, atol=1e-5)


def test_gradient_times_input_matches_a_finite_difference(inputs, smoke_result):
    """Attribution of gene g ~ f(scale_g = 1) - f(scale_g = 1 - eps), divided by eps."""
    model, prepared = smoke_result.graph_model, smoke_result.prepared
    row = smoke_result.split.test[:1]
    found = explain.attributions(model, inputs, prepared, row)
    gene = int(np.argmax(np.abs(found.gene_gradient[0])))
    eps = 1e-2
    mask = np.zeros((1, N_LANDMARKS))
    mask[0, gene] = eps
    moved = explain._masked_change(model, inputs, prepared, row, gene_masks=mask)
    finite = (0.5 * (found.predicted_change**2).sum() - 0.5 * (moved.astype(np.float64)**2).sum()) / eps
    assert finite == pytest.approx(found.gene_gradient[0, gene], rel=0.05)


def test_faithfulness_masks_the_requested_number(inputs, smoke_result):
    rows = smoke_result.split.test[:3]
    found = explain.attributions(smoke_result.graph_model, inputs, smoke_result.prepared, rows)
    genes = explain.faithfulness(smoke_result.graph_model, inputs, smoke_result.prepared, found, "genes", 7)
    assert genes["masked"].tolist() == [7, 7, 7]
    assert (genes[["top", "random"]] > 0).all().all()
    atoms = explain.faithfulness(smoke_result.graph_model, inputs, smoke_result.prepared, found, "atoms", 0.5)
    sizes = [len(a) for a in found.atom_gradient]
    assert atoms["masked"].tolist() == [max(1, round(0.5 * n)) for n in sizes]
    with pytest.raises(ValueError):
        explain.faithfulness(smoke_result.graph_model, inputs, smoke_result.prepared, found, "bonds", 1)


def test_pathway_importance_ranks_by_mean_absolute_score():
    scores = np.zeros(N_LANDMARKS)
    scores[:5] = [1, -1, 1, -1, 1]
    scores[10:20] = 0.6
    table = explain.pathway_importance(scores, {"a": list(range(10)), "b": list(range(10, 20)), "tiny": [0, 1]})
    assert table["pathway"].tolist() == ["b", "a"]  # 'tiny' has fewer than 5 genes
    assert table["mean_abs_attribution"].tolist() == pytest.approx([0.6, 0.5])


def test_causal_atoms_and_recovery_against_known_bits(inputs):
    smiles = chem.canonical_smiles(SMILES["aspirin"])
    covered = chem.morgan_bit_atoms(smiles, radius=2, n_bits=256)
    bit = min(covered, key=lambda b: len(covered[b]))
    mask = explain.causal_atoms(smiles, np.array([bit]), n_bits=256)
    assert set(np.flatnonzero(mask)) == covered[bit]
    # attributions equal to the causal mask recover it perfectly; reversed ones score 0
    row = int(np.flatnonzero(inputs.data.metadata["compound_id"] == "aspirin")[0])
    perfect = mask.astype(float)
    found = SimpleNamespace(rows=np.array([row, row]), atom_gradient=[perfect, 1 - perfect],
                            atom_attention=[perfect, perfect])
    truth = SimpleNamespace(fingerprints=np.zeros((1, 256)), causal_bits=np.array([bit]))
    recovered = explain.atom_recovery(found, inputs, truth)
    assert recovered["gradient_auroc"].tolist() == [1.0, 0.0]
    assert recovered["attention_auroc"].tolist() == [1.0, 1.0]
