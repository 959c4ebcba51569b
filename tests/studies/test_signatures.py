"""The structure -> consensus-signature experiment, on a dozen drugs made here with random signatures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from perturbx import chem
from perturbx.datasets.cmap import N_LANDMARKS
from perturbx.datasets.curated import CuratedL1000
from perturbx.models.structure import SignatureDiffusionEstimator, StructureEstimator
from perturbx.runtime import parallel_jobs
from perturbx.studies import signatures
from perturbx.tasks import consensus_signatures
from perturbx.tasks.consensus_signatures import SignatureFold

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: name -> SMILES; two salt/stereo pairs share a compound_group, three scaffolds have several members.
DRUGS = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O", "aspirin sodium": "CC(=O)Oc1ccccc1C(=O)[O-].[Na+]",
    "toluene": "Cc1ccccc1", "phenol": "Oc1ccccc1", "aniline": "Nc1ccccc1",
    "naphthol": "Oc1ccc2ccccc2c1", "methylnaphthalene": "Cc1ccc2ccccc2c1", "naphthylamine": "Nc1ccc2ccccc2c1",
    "piperidine": "C1CCNCC1", "methylpiperidine": "CC1CCNCC1", "S-alanine": "C[C@H](N)C(=O)O",
    "R-alanine": "C[C@@H](N)C(=O)O", "ethanol": "CCO", "propanol": "CCCO", "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "theophylline": "Cn1c2nc[nH]c2c(=O)n(C)c1=O",
}


def consensus_data(seed: int = 0) -> CuratedL1000:
    """One random z-score signature per drug of :data:`DRUGS`; drugs of one scaffold share a component."""
    rng = np.random.default_rng(seed)
    names = list(DRUGS)
    groups = [chem.structure_key(DRUGS[n]) for n in names]
    scaffold = chem.scaffold_groups(groups)
    effect = {s: rng.normal(0, 2, N_LANDMARKS) for s in set(scaffold)}
    signatures = np.stack([effect[s] + rng.normal(0, 1, N_LANDMARKS) for s in scaffold]).astype(np.float32)
    metadata = pd.DataFrame({
        "profile_id": names, "source": "test", "level": 5, "compound_id": [f"DB{i:05d}" for i in range(len(names))],
        "compound_name": names, "canonical_smiles": [chem.canonical_smiles(DRUGS[n]) for n in names],
        "compound_group": groups, "smiles_source": "test", "cell_id": np.nan, "dose_um": np.nan, "time_h": np.nan,
        "plate": np.nan, "basal_source": "none"})
    genes = pd.DataFrame({"gene_id": np.arange(N_LANDMARKS), "gene_symbol": [f"G{i}" for i in range(N_LANDMARKS)]})
    return CuratedL1000(signatures, np.zeros_like(signatures), metadata,
                        pd.DataFrame(columns=["profile_id", "source", "reason"]), genes)


@pytest.fixture(scope="module")
def inputs() -> consensus_signatures.SignatureInputs:
    return consensus_signatures.build_signature_inputs(consensus_data(), fingerprint_bits=256)


@pytest.fixture(scope="module")
def experiment(inputs):
    """Two seeds x 3 scaffold folds of every model, smoke sizes (one torch thread: the module-scoped fixture is
    set up before the function-scoped ``one_torch_thread``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return signatures.run_experiments(inputs, [0, 1], signatures.SignatureSettings.smoke(), progress=False)
    finally:
        torch.set_num_threads(threads)


def test_inputs_refuse_profiles_that_are_not_signatures():
    data = consensus_data()
    data.metadata.loc[3, "level"] = 3
    with pytest.raises(ValueError, match="not level-5 signatures.*Fix"):
        consensus_signatures.build_signature_inputs(data, fingerprint_bits=64)


def test_scaffold_folds_hold_out_whole_scaffolds_and_compound_groups(inputs):
    meta = inputs.data.metadata
    assert inputs.scaffolds[0] == inputs.scaffolds[1] == "scaffold:c1ccccc1"  # the salt shares the parent's group
    for seed in (0, 1):
        folds = consensus_signatures.scaffold_folds(inputs, k=3, seed=seed, val_size=0.2)
        tested = np.concatenate([f.test for f in folds])
        assert sorted(tested) == list(range(len(meta)))  # every drug tested exactly once per seed
        for fold in folds:
            outside = np.union1d(fold.train, fold.val)
            assert not set(inputs.scaffolds[fold.test]) & set(inputs.scaffolds[outside])
            assert not set(meta["compound_group"][fold.test]) & set(meta["compound_group"][outside])
            assert len(fold.val) and fold.kind.startswith("scaffold fold")
    with pytest.raises(ValueError, match="scaffold groups cannot fill"):
        consensus_signatures.scaffold_folds(inputs, k=50)


def test_nearest_neighbours_with_k1_is_the_most_similar_drug():
    bits = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 0, 1]], dtype=np.uint8)
    train_signatures = np.arange(9, dtype=float).reshape(3, 3)
    query = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]], dtype=np.uint8)
    predicted = signatures.nearest_neighbours(bits, train_signatures, query, k=1)
    np.testing.assert_allclose(predicted, train_signatures[[0, 1]], atol=1e-5)
    # k=2: weights are the similarities (0.75 to drug 0, 0.4 to drug 2, 1/6 to drug 1 for the first query)
    two = signatures.nearest_neighbours(bits, train_signatures, query[:1], k=2)
    np.testing.assert_allclose(two[0], (0.75 * train_signatures[0] + 0.4 * train_signatures[2]) / 1.15, atol=1e-5)


def test_ridge_and_knn_choose_without_test_drugs(inputs, monkeypatch):
    seen = {}
    original = signatures.fit_ridge

    def spy(fingerprints, targets, groups, alphas, folds=5):
        seen["targets"], seen["groups"] = targets, groups
        return original(fingerprints, targets, groups, alphas, folds)

    monkeypatch.setattr(signatures, "fit_ridge", spy)
    settings = signatures.SignatureSettings.smoke()
    split = consensus_signatures.scaffold_folds(inputs, k=3, seed=0, val_size=0.2)[0]
    result = signatures.run_split(inputs, split, settings, seed=0, models=["ridge", "nearest_neighbours"])
    test_signatures = inputs.signatures[split.test]
    assert not any((seen["targets"] == row).all(axis=1).any() for row in test_signatures)
    assert len(seen["targets"]) == len(split.train) + len(split.val)
    assert not set(seen["groups"]) & set(inputs.scaffolds[split.test])
    assert result.outputs["ridge"].chosen["alpha"] in settings.alphas
    assert result.outputs["nearest_neighbours"].chosen["k"] in settings.neighbours


def test_ridge_needs_two_scaffold_groups():
    with pytest.raises(ValueError, match="at least 2 scaffold groups"):
        signatures.fit_ridge(np.eye(4), np.ones((4, 3)), np.array(["a"] * 4), [1.0])


def test_mean_signature_is_the_mean_outside_the_test_fold(inputs):
    split = consensus_signatures.scaffold_folds(inputs, k=3, seed=0, val_size=0.2)[1]
    result = signatures.run_split(inputs, split, signatures.SignatureSettings.smoke(), 0, ["mean_signature"])
    rest = np.union1d(split.train, split.val)
    np.testing.assert_allclose(result.predictions["mean_signature"][0], inputs.signatures[rest].mean(axis=0),
                               rtol=1e-5, atol=1e-6)
    metrics = result.metrics
    assert list(metrics["row"]) == list(split.test)
    expected = chem.nearest_similarity(inputs.fingerprints[split.test], inputs.fingerprints[rest])
    np.testing.assert_allclose(metrics["similarity"], expected)


def test_signature_metrics_precision_at_50():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(2, N_LANDMARKS))
    scores = signatures.signature_metrics(truth, truth)
    np.testing.assert_allclose(scores[["pearson", "precision_up", "precision_down"]], 1.0)
    flipped = signatures.signature_metrics(truth, -truth)
    np.testing.assert_allclose(flipped[["precision_up", "precision_down"]], 0.0)
    assert (flipped["pearson"] < -0.99).all()


def test_run_experiments_scores_every_model_on_every_drug_once_per_seed(inputs, experiment):
    runs, results = experiment
    assert sorted(results) == [(s, f) for s in (0, 1) for f in (1, 2, 3)]
    drugs = signatures.drug_table(results)
    per_seed = drugs.groupby(["seed", "model"]).size()
    assert (per_seed == len(inputs.data)).all() and len(per_seed) == 2 * len(signatures.MODELS.ids())
    for result in results.values():
        for prediction in result.predictions.values():
            assert prediction.shape == (len(result.split.test), N_LANDMARKS) and np.isfinite(prediction).all()
    assert set(results[(0, 1)].fits) == {"gat_regressor", "diffusion"}


def test_results_table_reports_seed_means_and_best_epochs(experiment):
    runs, results = experiment
    table = signatures.results_table(runs, results)
    assert list(table.index) == signatures.MODELS.ids()  # ids; a chapter shows the labels
    assert set(runs["model"]) == set(signatures.MODELS.ids())
    assert (table["runs"] == 2).all()
    means = signatures.seed_means(runs)
    drugs = signatures.drug_table(results)
    direct = drugs.groupby(["seed", "model"], sort=False)["pearson"].mean()
    np.testing.assert_allclose(means.set_index(["seed", "model"])["pearson"].loc[direct.index], direct)
    assert 1 <= table.loc["gat_regressor", "best_epoch_mean"] <= 3 and "(" in table.loc["gat_regressor", "best_epoch"]
    assert "(" in table.loc["diffusion", "epochs_run"]
    assert np.isnan(table.loc["ridge", "best_epoch_mean"])


def test_similarity_table_bins_every_test_drug(experiment):
    _, results = experiment
    table = signatures.similarity_table(results, "precision_up")
    assert list(table.columns) == ["<0.3", "0.3-0.5", "0.5-0.7", ">=0.7"]
    assert table.loc["drugs"].sum() == 2 * len(DRUGS)
    assert table.index.name == "model" and list(table.index) == [*signatures.MODELS.ids(), "drugs"]
    bins = signatures.similarity_bins(np.array([0.0, 0.3, 0.49, 0.7, 1.0]))
    assert list(bins) == ["<0.3", "0.3-0.5", "0.3-0.5", ">=0.7", ">=0.7"]
    with pytest.raises(ValueError, match="unknown metric"):
        signatures.similarity_table(results, "auroc")


def test_selection_table_and_profiles():
    assert signatures.SignatureSettings.for_profile("quick").structure.width == 64
    with pytest.raises(ValueError, match="unknown profile"):
        signatures.SignatureSettings.for_profile("huge")


def test_structure_regressor_atom_scale_needs_molecules(inputs):
    from perturbx.models.structure import StructureConfig, StructureRegressor

    model = StructureRegressor(inputs.graphs, N_LANDMARKS, StructureConfig(width=8, layers=1, heads=2, hidden=8))
    compound = torch.tensor([0, 0, 2])
    assert model(compound).shape == (3, N_LANDMARKS)
    with pytest.raises(ValueError, match="molecules="):
        model(compound, atom_scale=torch.ones(5))
    molecules = model.molecule_batch(compound, distinct=False)
    scale = torch.ones(molecules[0].num_nodes)
    torch.testing.assert_close(model.eval()(compound, scale, molecules), model(compound))


def test_motif_atoms_find_the_hinge_binders():
    from perturbx.evaluation import explain

    gefitinib = "COc1cc2ncnc(Nc3ccc(F)c(Cl)c3)c2cc1OCCCN1CCOCC1"
    mask = explain.motif_atoms(gefitinib)
    assert mask.sum() == 10  # the quinazoline's ten ring atoms
    assert not explain.motif_atoms("CCO").any()
    overlap = explain.motif_overlap(np.where(mask, 1.0, 0.1), mask)
    assert overlap["top_in_motif"] == 1.0 and overlap["auroc"] == 1.0 and overlap["chance"] == mask.mean()
    with pytest.raises(ValueError, match="invalid SMARTS"):
        explain.motif_atoms("CCO", {"broken": "c1(("})


def test_structure_attributions_match_a_finite_difference_and_masking_moves_the_prediction(inputs):
    from perturbx.evaluation import explain
    from perturbx.models.structure import StructureConfig, StructureRegressor

    torch.manual_seed(0)
    model = StructureRegressor(inputs.graphs, N_LANDMARKS, StructureConfig(width=8, layers=2, heads=2, hidden=16))
    rows = np.array([0, 5])
    scores, predicted = explain.structure_atom_attributions(model, rows)
    assert [len(s) for s in scores] == [inputs.graphs[r].num_nodes for r in rows]
    index = torch.as_tensor(rows)
    molecules = model.molecule_batch(index, distinct=False)
    scale = torch.ones(molecules[0].num_nodes, dtype=torch.float64)
    first_atom_of_second = inputs.graphs[0].num_nodes
    epsilon = 1e-3

    def size(scale_value: float) -> float:
        scaled = scale.clone()
        scaled[first_atom_of_second] = scale_value
        with torch.no_grad():
            out = model(index, scaled.float(), molecules)[1].double()
        return float(0.5 * (out**2).sum())

    finite = (size(1 + epsilon) - size(1 - epsilon)) / (2 * epsilon)
    assert scores[1][0] == pytest.approx(finite, rel=0.05, abs=1e-3)
    faithful = explain.structure_faithfulness(model, rows, scores, n_masked=2, n_random=4)
    assert list(faithful.columns) == ["masked", "top", "random", "random_rank"]
    assert (faithful["top"] > 0).all() and faithful["random_rank"].between(0, 1).all()


def test_explain_drugs_uses_the_fold_that_held_the_drug_out(inputs, experiment):
    _, results = experiment
    table = signatures.explain_drugs(inputs, results, names=["Aspirin", "not a drug"], n_random=2)
    assert list(table["drug"]) == ["aspirin"]
    key = (table.at[0, "seed"], table.at[0, "fold"])
    assert 0 in results[key].split.test
    assert table.at[0, "motif_atoms"] == 0 and table.at[0, "atoms"] == 13


@pytest.mark.parametrize("estimator_class", [StructureEstimator, SignatureDiffusionEstimator])
def test_a_saved_signature_model_predicts_what_it_predicted(inputs, tmp_path, estimator_class):
    settings = signatures.SignatureSettings.smoke()
    fold = SignatureFold.of(inputs, consensus_signatures.scaffold_folds(inputs, k=3, seed=0)[0])
    if estimator_class is StructureEstimator:
        estimator = StructureEstimator(settings.structure, settings.fit)
    else:
        estimator = SignatureDiffusionEstimator(settings.diffusion, settings.diffusion_fit, n_samples=3, steps=4)
    report = estimator.fit(fold, seed=1)
    assert report.epochs_run >= 1
    predicted = estimator.predict(fold, fold.split.test)
    assert predicted.shape == (len(fold.split.test), inputs.n_genes) and predicted.dtype == np.float64
    loaded = estimator_class.load(estimator.save(tmp_path / "model"), inputs)
    np.testing.assert_array_equal(loaded.scaler.mean_, fold.scaler.mean_)
    np.testing.assert_array_equal(loaded.predict(fold, fold.split.test), predicted)


def test_two_workers_give_the_runs_of_one(inputs, experiment, jobs_workers):
    """Seeds x scaffold folds run as parallel jobs in quick and full, with the runs of one process."""
    settings = signatures.SignatureSettings.smoke()
    assert settings.workers == 1 and signatures.SignatureSettings.quick().workers == parallel_jobs("cpu")
    serial = experiment[0][experiment[0]["seed"] == 0].reset_index(drop=True)
    parallel, _ = signatures.run_experiments(inputs, [0], replace(settings, workers=2), progress=False)
    pd.testing.assert_frame_equal(parallel.drop(columns="seconds"), serial.drop(columns="seconds"))
    assert jobs_workers == [2]
