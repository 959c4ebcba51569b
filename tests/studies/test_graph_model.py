"""The graph-model chapter's protocol and the graph model's attributions, on the tiny dataset of test_l1000."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from perturbx import chem
from perturbx.datasets.cmap import N_LANDMARKS
from perturbx.evaluation import explain
from perturbx.models.gnn import TOKEN_NAMES, PerturbationGNN
from perturbx.runtime import parallel_jobs
from perturbx.studies import graph_model
from perturbx.tasks import l1000

from ..tasks.test_l1000 import SMILES, tiny_data, tiny_graph

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def inputs() -> l1000.Inputs:
    return l1000.build_inputs(tiny_data(), tiny_graph(), fingerprint_bits=256)


def test_models_are_the_baselines_the_graph_model_and_the_oracle():
    assert graph_model.MODELS.ids() == ["no_change", "cell_line_mean", "ridge", "random_forest", "gradient_boosting",
                                       "mlp", "graph_model", "true_mean"]
    assert graph_model.MODELS.ids("oracle") == ["true_mean"]
    assert graph_model.DEFAULT_MODELS == tuple(graph_model.MODELS.ids()[:-1])  # the ceiling only with true changes


def test_graph_model_needs_a_gene_graph():
    no_graph = l1000.build_inputs(tiny_data(), fingerprint_bits=256)
    split = l1000.make_split(no_graph, "random", seed=0)
    with pytest.raises(ValueError, match="no gene graph"):
        graph_model.graph_estimator(graph_model.ExpressionSettings.smoke()).fit(no_graph.fold(split), seed=0)


@pytest.fixture(scope="module")
def smoke_result(inputs):
    settings = graph_model.ExpressionSettings.smoke()
    split = l1000.make_split(inputs, "random", seed=0, test_size=0.3, val_size=0.15)
    return graph_model.run_split(inputs, split, settings, seed=0, true_change=inputs.data.change)


def test_run_split_scores_every_model_on_the_test_rows(smoke_result):
    metrics = smoke_result.metrics
    expected = [*graph_model.DEFAULT_MODELS, "true_mean"]
    assert list(smoke_result.outputs) == expected  # keyed by id, in the order run
    assert list(metrics["model"].unique()) == expected  # ids; a chapter shows the labels
    for _, part in metrics.groupby("model"):
        assert sorted(part["row"]) == sorted(smoke_result.split.test)
    oracle = metrics[metrics["model"] == "true_mean"]  # the measured change itself: perfect scores
    np.testing.assert_allclose(oracle["pearson_change"], 1.0, atol=1e-6)
    np.testing.assert_allclose(oracle["rmse"], 0.0, atol=1e-5)
    assert metrics.loc[metrics["model"] == "no_change", "pearson_change"].isna().all()
    for model_id, prediction in smoke_result.predictions.items():
        assert prediction.shape == (len(smoke_result.split.test), N_LANDMARKS), model_id
    assert set(smoke_result.fits) == set(smoke_result.models) == {"graph_model"}
    assert isinstance(smoke_result.models["graph_model"], PerturbationGNN)
    assert len(smoke_result.fits["graph_model"].history) == 2  # the smoke profile's 2 epochs
    assert all(seconds >= 0 for seconds in smoke_result.seconds.values())
    np.testing.assert_array_equal(smoke_result.context.prepared.basal,
                                  l1000.prepare(smoke_result.context.inputs, smoke_result.split.train).basal)


def test_the_estimator_predicts_what_the_split_predicted(smoke_result):
    estimator, fold, test = smoke_result.outputs["graph_model"].estimator, smoke_result.context.fold, \
        smoke_result.split.test
    assert estimator.network is smoke_result.models["graph_model"]
    again = estimator.predict(fold, test, batch_size=3)  # batches of 3 rows
    np.testing.assert_allclose(again, smoke_result.predictions["graph_model"], atol=1e-5)
    assert estimator.predict(fold, test[:0]).shape == (0, N_LANDMARKS)


def test_true_mean_needs_the_true_change_and_unknown_ids_are_refused(inputs, smoke_result):
    settings = graph_model.ExpressionSettings.smoke()
    with pytest.raises(ValueError, match="simulated data only"):
        graph_model.run_split(inputs, smoke_result.split, settings, seed=0, models=["true_mean"])
    message = "unknown model 'graph model' in the graph model experiments; use one of no_change"
    with pytest.raises(ValueError, match=message):
        graph_model.run_split(inputs, smoke_result.split, settings, seed=0, models=["graph model"])


def test_run_experiments_table_has_mean_and_sd(inputs):
    settings = graph_model.ExpressionSettings.smoke()
    runs, results = graph_model.run_experiments(inputs, ["unseen compound"], [0, 1], settings,
                                               models=["cell_line_mean", "ridge"], progress=False)
    assert len(runs) == 4 and set(results) == {("unseen compound", 0), ("unseen compound", 1)}
    assert list(runs.columns[:3]) == ["split", "seed", "model"]
    assert set(runs["model"]) == {"cell_line_mean", "ridge"}
    assert (runs["n_test"] == [len(results[("unseen compound", s)].split.test) for s in (0, 0, 1, 1)]).all()
    table = graph_model.results_table(runs)
    assert (table["runs"] == 2).all()
    assert np.isfinite(table["pearson_change_sd"]).all()
    assert list(table.index.get_level_values("model")) == ["cell_line_mean", "ridge"]


def _three_seeds(smoke_result):
    one = graph_model.summarise(smoke_result).assign(split="random", seed=0)
    return pd.concat([one.assign(seed=s, pearson_change=one["pearson_change"] + 0.01 * s) for s in range(3)])


def test_verdict_lines_compare_paired_seeds_and_the_ceiling_share(smoke_result):
    runs = _three_seeds(smoke_result)
    table = graph_model.results_table(runs)
    values = table.droplevel("split")["pearson_change_mean"]
    (verdict,) = graph_model.verdict_lines(runs, "tiny")
    assert verdict.startswith(f"tiny, random: graph model Pearson of change {values['graph_model']:.3f}; it ")
    assert "the training mean per cell line (paired difference" in verdict and "better in" in verdict  # labels
    classical = values[["ridge", "random_forest", "gradient_boosting", "mlp"]]
    best = graph_model.MODELS.label(classical.idxmax())
    assert verdict.endswith(f"best classical: {best} ({classical.max():.3f}).")
    shares = graph_model.ceiling_share(table)
    assert shares.loc["random", "share of ceiling"] == values["graph_model"] / values["true_mean"]
    assert shares.loc["random", "best learned model"] == "graph model"  # the label, as the chapter shows it
    assert table.droplevel("split").loc["graph_model", "best_epoch_mean"] >= 1


def test_decide_claims_turn_tables_into_verdicts(smoke_result):
    runs = _three_seeds(smoke_result)
    unseen = pd.concat([runs, runs.assign(split="unseen compound"), runs.assign(split="unseen cell")])
    shares = graph_model.ceiling_share(graph_model.results_table(unseen))
    consensus = pd.DataFrame([{"split": "scaffold CV", "seed": s, "model": m, "pearson": v + 0.01 * s}
                              for s in range(3) for m, v in [("gat_regressor", 0.3), ("mean_signature", 0.2),
                                                             ("ridge", 0.4)]])
    recovery = pd.DataFrame({"what": ["causal atoms"], "score": ["AUROC"], "mean": [0.6], "chance": [0.5]})
    faithful = pd.DataFrame({"dataset": ["simulator"], "masked": ["top atoms"], "top > random (fraction)": [0.4]})
    found = graph_model.decide_claims(unseen, shares, consensus, recovery, faithful, "toy")
    assert [c.id for c in found] == ["beats_classical_regressors", "generalises_to_unseen", "reaches_ceiling_share",
                                     "attributions_point_at_causes"]
    first = found[0].evidence[0].text  # the evidence names the models by label
    assert first.startswith("simulator, random: graph model ") and " ridge in pearson_change (" in first
    assert any(" random forest in " in e.text for e in found[0].evidence)
    assert [c.verdict for c in found][3] == "partly"  # recovery above chance, faithfulness below one half
    structure = [e for e in found[1].evidence if e.text.startswith("DrugBank consensus")]
    assert [e.supports for e in structure] == [True, False]  # beats the mean signature, loses to ridge
    assert structure[0].text.startswith("DrugBank consensus, scaffold CV: GAT regressor beats mean signature in")
    assert found[2].evidence[0].supports == (shares.loc["unseen compound", "share of ceiling"] >= 0.6)
    kinase = pd.DataFrame({"top_in_motif": [0.0, 0.2], "chance": [0.2, 0.3]})
    with_motif = graph_model.decide_claims(unseen, shares, consensus, recovery, faithful, "toy", pharmacophores=kinase)
    assert with_motif[3].evidence[-1].supports is False and "hinge-binding motif" in with_motif[3].evidence[-1].text


# --------------------------------------------------------------------------------------------------- attributions

def test_attributions_shapes_and_token_attention(inputs, smoke_result):
    model, prepared = smoke_result.models["graph_model"], smoke_result.context.prepared
    rows = smoke_result.split.test[:4]
    found = explain.attributions(model, inputs, prepared, rows)
    atoms = [inputs.graphs[i].num_nodes for i in inputs.compound_index[rows]]
    assert [len(a) for a in found.atom_gradient] == atoms == [len(a) for a in found.atom_attention]
    assert found.gene_gradient.shape == found.gene_pool.shape == (4, N_LANDMARKS)
    assert list(found.token_attention.columns) == list(TOKEN_NAMES)
    np.testing.assert_allclose(found.token_attention.sum(axis=1), 1.0, atol=1e-5)
    expected = smoke_result.outputs["graph_model"].estimator.predict(smoke_result.context.fold, rows)
    np.testing.assert_allclose(found.predicted_change, expected, atol=1e-5)


def test_explain_split_explains_the_highest_dose_test_profiles(inputs, smoke_result):
    found = graph_model.explain_split(smoke_result, per_compound=1, limit=3)
    rows = l1000.highest_dose_rows(inputs, smoke_result.split.test, 1, 3)
    np.testing.assert_array_equal(found.rows, rows)
    expected = smoke_result.outputs["graph_model"].estimator.predict(smoke_result.context.fold, rows)
    np.testing.assert_allclose(found.predicted_change, expected, atol=1e-5)


def test_gradient_times_input_matches_a_finite_difference(inputs, smoke_result):
    """Attribution of gene g ~ (f(scale_g = 1 + eps) - f(scale_g = 1 - eps)) / (2 eps), a central difference (a
    one-sided one was off by more than 5% for some trained smoke models, e.g. with one torch thread)."""
    model, prepared = smoke_result.models["graph_model"], smoke_result.context.prepared
    row = smoke_result.split.test[:1]
    found = explain.attributions(model, inputs, prepared, row)
    gene = int(np.argmax(np.abs(found.gene_gradient[0])))
    eps = 1e-2

    def size(masked: float) -> float:  # f = |predicted change|^2 / 2 with gene g scaled by 1 - masked
        mask = np.zeros((1, N_LANDMARKS))
        mask[0, gene] = masked
        moved = explain._masked_change(model, inputs, prepared, row, gene_masks=mask).astype(np.float64)
        return 0.5 * (moved**2).sum()

    finite = (size(-eps) - size(eps)) / (2 * eps)
    assert finite == pytest.approx(found.gene_gradient[0, gene], rel=0.05)


def test_faithfulness_masks_the_requested_number(inputs, smoke_result):
    model, prepared = smoke_result.models["graph_model"], smoke_result.context.prepared
    rows = smoke_result.split.test[:3]
    found = explain.attributions(model, inputs, prepared, rows)
    genes = explain.faithfulness(model, inputs, prepared, found, "genes", 7)
    assert genes["masked"].tolist() == [7, 7, 7]
    assert (genes[["top", "random"]] > 0).all().all()
    atoms = explain.faithfulness(model, inputs, prepared, found, "atoms", 0.5)
    sizes = [len(a) for a in found.atom_gradient]
    assert atoms["masked"].tolist() == [max(1, round(0.5 * n)) for n in sizes]
    with pytest.raises(ValueError):
        explain.faithfulness(model, inputs, prepared, found, "bonds", 1)


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


def test_token_attention_tables_of_the_chapter(smoke_result):
    found = graph_model.explain_split(smoke_result, per_compound=1, limit=3)
    table = graph_model.token_attention_table(found)
    assert table.index.tolist() == list(TOKEN_NAMES) and table.columns.tolist() == ["mean attention received"]
    assert table["mean attention received"].sum() == pytest.approx(1.0, abs=1e-5)  # each query's attention sums to 1
    layers = graph_model.token_attention_layers(smoke_result, int(found.rows[0]))
    assert len(layers) == smoke_result.models["graph_model"].config.transformer_layers
    for layer in layers:
        assert layer.index.tolist() == layer.columns.tolist() == list(TOKEN_NAMES)
        np.testing.assert_allclose(layer.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(layers[-1].to_numpy().mean(axis=0), found.token_attention.iloc[0],
                               atol=1e-5)  # the last layer, as the attributions report it


def test_faithfulness_table_has_one_row_per_masked_kind(smoke_result):
    found = graph_model.explain_split(smoke_result, per_compound=1, limit=3)
    table = graph_model.faithfulness_table(smoke_result, found, seed=0)
    assert table["masked"].tolist() == ["top atoms", "top genes"] and (table["profiles"] == len(found.rows)).all()
    assert table["top > random (fraction)"].between(0, 1).all()
    direct = explain.faithfulness(smoke_result.models["graph_model"], smoke_result.context.inputs,
                                  smoke_result.context.prepared, found, "genes", 50, seed=0)
    assert table.loc[1, "effect of top-attributed"] == pytest.approx(direct["top"].mean())


def test_two_workers_give_the_runs_of_one(inputs, jobs_workers):
    """Splits x seeds run as parallel jobs in quick and full; every job seeds its own models, so the runs are those
    of one process with the same torch threads per job (one here, as in each of two workers on two cores)."""
    settings = graph_model.ExpressionSettings.smoke()
    assert settings.workers == 1 and graph_model.ExpressionSettings.quick("cuda").workers == 1
    assert graph_model.ExpressionSettings.quick().workers == graph_model.ExpressionSettings.full().workers == \
        parallel_jobs("cpu")
    serial, _ = graph_model.run_experiments(inputs, ["random"], [0, 1], settings, models=["ridge", "graph_model"],
                                            progress=False)
    parallel, results = graph_model.run_experiments(inputs, ["random"], [0, 1], replace(settings, workers=2),
                                                    models=["ridge", "graph_model"], progress=False)
    pd.testing.assert_frame_equal(parallel.drop(columns="seconds"), serial.drop(columns="seconds"))
    assert jobs_workers == [1, 2]
    assert results[("random", 1)].outputs["graph_model"].estimator.network is not None  # the model came back
