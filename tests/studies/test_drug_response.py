"""The drug-response chapter's protocol on a toy dataset: priors, undersampling, features fitted on training pairs,
one split with every kind of model, the evaluation helpers and the two experiments."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from perturbx import papers
from perturbx.datasets.drug_response import TEST_DATASET, TRAIN_DATASET, DRPData
from perturbx.models.classical import sensitivity_priors
from perturbx.models.drug_response import DeepDRA, DRPEstimator, FeatureBlocks, PairLoss, drp_loss, predict_deep
from perturbx.splits import kfold
from perturbx.studies.drug_response import (
    DEFAULT_MODELS,
    METRICS,
    MODELS,
    PROTOCOLS,
    CrossDatasetRuns,
    DRPSettings,
    ccle_decomposition,
    cross_dataset,
    cross_validate,
    decide_claims,
    drug_identity_oracle,
    drug_rate_shift,
    epoch_spread,
    per_drug_auc,
    protocol_table,
    results_table,
    run_split,
    shown_columns,
    width_sweep,
    within_drug_auc,
)
from perturbx.tasks.drug_cell_pairs import (
    PairBatch,
    PairFold,
    column_l2_scaled,
    pair_batch,
    prepare_features,
    undersample,
)
from perturbx.training import FitConfig

N_CELLS, N_DRUGS, N_GENES = 12, 6, 5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fake_data(seed: int = 0) -> DRPData:
    """12 cell lines x 6 drugs, all 72 pairs labelled, both classes for every cell line and drug."""
    rng = np.random.default_rng(seed)
    cells = pd.Index([f"CELL{i}" for i in range(N_CELLS)], name="cell_id")
    drug_ids = [f"drug{j}" for j in range(N_DRUGS)]
    cell_index, drug_index = np.meshgrid(np.arange(N_CELLS), np.arange(N_DRUGS), indexing="ij")
    cell_index, drug_index = cell_index.ravel(), drug_index.ravel()
    label = ((cell_index + drug_index) % 2).astype(int)  # a checkerboard: every cell and drug has both classes
    pairs = pd.DataFrame({"cell_id": cells[cell_index], "drug_id": np.array(drug_ids)[drug_index],
                          "drug_name": [f"Drug {j}" for j in drug_index], "label": label, "dataset": "toy",
                          "cell_index": cell_index, "drug_index": drug_index, "labelled_in_training": False})
    cell_features = {
        "expression": rng.normal(size=(N_CELLS, N_GENES)).astype(np.float32),
        "copy_number": rng.integers(-1, 2, size=(N_CELLS, N_GENES)).astype(np.float32),
        "mutation": rng.integers(0, 2, size=(N_CELLS, N_GENES)).astype(np.float32),
    }
    descriptors = rng.normal(size=(N_DRUGS, 3))
    descriptors[2, 1] = np.nan
    drug_features = {"descriptors": descriptors,
                     "fingerprint": rng.integers(0, 2, size=(N_DRUGS, 16)).astype(np.float32)}
    drugs = pd.DataFrame({"names": [[f"Drug {j}"] for j in range(N_DRUGS)], "smiles": "C"},
                         index=pd.Index(drug_ids, name="drug_id"))
    return DRPData(pairs, cells, [f"G{g}" for g in range(N_GENES)], cell_features, drugs, drug_features)


# --------------------------------------------------------------------------------------------------- registry

def test_models_by_id():
    assert MODELS.ids() == ["drug_prior", "cell_prior", "drug_cell_prior", "gradient_boosting", "deepdra",
                            "cross_attention", "cross_attention_blocks"]
    assert MODELS.ids("learned") == ["deepdra", "cross_attention", "cross_attention_blocks"]
    assert DEFAULT_MODELS == tuple(MODELS.ids()[:-1])  # the block-token extension only on request
    assert MODELS.labels(["drug_cell_prior", "deepdra"]) == ["drug + cell prior", "DeepDRA"]


# --------------------------------------------------------------------------------------------------- priors

def prior_tables():
    train = pd.DataFrame({"drug_id": ["A"] * 4 + ["B"] * 4,
                          "cell_id": ["c1", "c2", "c3", "c4"] * 2,
                          "label": [1, 1, 1, 0, 0, 0, 0, 0]})
    test = pd.DataFrame({"drug_id": ["A", "C", "B"], "cell_id": ["c1", "c4", "c5"]})
    return train, test


def test_sensitivity_priors_shrink_towards_the_overall_rate():
    train, test = prior_tables()
    priors = sensitivity_priors(train, test, strength=5.0)
    assert set(priors) == set(MODELS.ids("baseline")) - {"gradient_boosting"}  # keyed by model id
    overall = 3 / 8
    # drug A: 3 of 4 sensitive; drug C unseen; drug B: 0 of 4
    np.testing.assert_allclose(priors["drug_prior"], [(3 + 5 * overall) / 9, overall, (0 + 5 * overall) / 9])
    # cell c1: 1 of 2; c4: 0 of 2; c5 unseen
    np.testing.assert_allclose(priors["cell_prior"], [(1 + 5 * overall) / 7, (0 + 5 * overall) / 7, overall])
    assert priors["drug_prior"][0] == pytest.approx(0.5416667, abs=1e-6)


def test_combined_prior_adds_log_odds_and_removes_overall_once():
    train, test = prior_tables()
    priors = sensitivity_priors(train, test, strength=5.0)

    def logit(p):
        return np.log(p / (1 - p))

    expected = 1 / (1 + np.exp(-(logit(priors["drug_prior"]) + logit(priors["cell_prior"]) - logit(3 / 8))))
    np.testing.assert_allclose(priors["drug_cell_prior"], expected)
    # an unseen side contributes nothing: the combined prior is the other side's
    assert priors["drug_cell_prior"][1] == pytest.approx(priors["cell_prior"][1])
    assert priors["drug_cell_prior"][2] == pytest.approx(priors["drug_prior"][2])
    assert priors["drug_cell_prior"][0] == pytest.approx(0.57856, abs=1e-4)


# --------------------------------------------------------------------------------------------------- undersampling

def imbalanced_pairs():
    return pd.DataFrame({"pair": range(10), "label": [0] * 7 + [1] * 3})


def test_undersample_balances_by_dropping_majority_rows_only():
    pairs = imbalanced_pairs()
    kept = undersample(pairs, seed=0)
    assert kept["label"].value_counts().to_dict() == {0: 3, 1: 3}
    assert set(pairs.loc[pairs["label"] == 1, "pair"]) <= set(kept["pair"])
    assert set(kept["pair"]) <= set(pairs["pair"]) and not kept["pair"].duplicated().any()


def test_undersample_is_deterministic_per_seed():
    pairs = imbalanced_pairs()
    pd.testing.assert_frame_equal(undersample(pairs, seed=5), undersample(pairs, seed=5))
    outcomes = {tuple(undersample(pairs, seed=s)["pair"]) for s in range(10)}
    assert len(outcomes) > 1


def test_undersample_with_a_repeated_index_still_balances():
    """Two tables concatenated without ignore_index share the index labels 0..4."""
    pairs = pd.concat([pd.DataFrame({"pair": range(5), "label": [0, 0, 0, 1, 1]}),
                       pd.DataFrame({"pair": range(5, 10), "label": [0, 0, 0, 0, 1]})])
    kept = undersample(pairs, seed=0)
    assert kept["label"].value_counts().to_dict() == {0: 3, 1: 3}
    assert set(pairs.loc[pairs["label"] == 1, "pair"]) <= set(kept["pair"])


# --------------------------------------------------------------------------------------------------- features

TRAIN_CELLS = np.arange(10)  # cell lines 10 and 11 are test-only


def train_pairs(data: DRPData, drugs=range(5)) -> pd.DataFrame:
    pairs = data.pairs
    return pairs[pairs["cell_index"].isin(TRAIN_CELLS) & pairs["drug_index"].isin(list(drugs))]


def test_scaling_uses_training_cell_lines_only():
    data = fake_data()
    expression = data.cell_features["expression"]
    expression[11, 0] = expression[TRAIN_CELLS, 0].max() + 5.0  # a test-only cell line above the training max
    features = prepare_features(data, train_pairs(data))
    block = features.cell_blocks[0]
    assert block.dtype == np.float32 and block.shape == (N_CELLS, N_GENES)
    assert block[TRAIN_CELLS].min() == pytest.approx(0.0) and block[TRAIN_CELLS].max() == pytest.approx(1.0)
    assert block[11, 0] == pytest.approx(1.0)  # above the training range: clipped to it
    # test-only cell 10, inside the training range, is scaled with the training minimum and maximum; scaling over
    # all cell lines would have divided by the larger span that cell 11 creates
    low, high = expression[TRAIN_CELLS, 0].min(), expression[TRAIN_CELLS, 0].max()
    assert block[10, 0] == pytest.approx((expression[10, 0] - low) / (high - low), rel=1e-5)


def test_gene_selection_uses_training_variance_only():
    """Gene 0 is constant over the training cell lines and varies only because of a test cell line."""
    data = fake_data()
    expression = data.cell_features["expression"]
    expression[:, 0] = 0.0
    expression[11, 0] = 100.0
    expression[TRAIN_CELLS, 3] *= 10  # the most variable gene in training
    features = prepare_features(data, train_pairs(data), n_genes=2)
    assert "G0" not in features.genes["expression"]
    assert "G3" in features.genes["expression"]
    assert features.cell_dims == [2, 2, 2]
    expected = list(np.array(data.genes)[np.sort(np.argsort(-expression[TRAIN_CELLS].var(axis=0))[:2])])
    assert features.genes["expression"] == expected


def test_descriptors_scaled_on_training_drugs_nan_to_zero():
    data = fake_data()
    descriptors = data.drug_features["descriptors"]
    descriptors[5, 0] = np.nanmax(descriptors[:5, 0]) + 1.0  # drug 5 is not in training
    features = prepare_features(data, train_pairs(data, drugs=range(5)))
    scaled, fingerprint = features.drug_blocks
    assert scaled[2, 1] == 0.0  # NaN descriptor
    assert not np.isnan(scaled).any()
    assert scaled[:5].min() >= 0.0 and scaled[:5].max() <= 1.0
    assert scaled[5, 0] == pytest.approx(1.0)  # an unseen drug above the training range is clipped to it
    np.testing.assert_array_equal(fingerprint, data.drug_features["fingerprint"])  # bits unchanged
    assert features.drug_dims == [3, 16]


def test_constant_training_column_scales_to_zero():
    data = fake_data()
    data.cell_features["mutation"][TRAIN_CELLS, 1] = 1.0
    block = prepare_features(data, train_pairs(data)).cell_blocks[2]
    np.testing.assert_array_equal(block[TRAIN_CELLS, 1], 0.0)


# --------------------------------------------------------------------------------------------------- deep models

def test_pair_batch_and_the_pair_loss_gather_each_pairs_features():
    data = fake_data()
    pairs = data.pairs.iloc[[0, 13, 71]]
    batch = pair_batch(pairs)
    assert isinstance(batch, PairBatch) and batch._fields == ("cell", "drug", "label")
    assert batch.cell.tolist() == [0, 2, 11] and batch.drug.tolist() == [0, 1, 5]
    assert batch.label.dtype == torch.float32 and batch.label.tolist() == pairs["label"].tolist()
    features = prepare_features(data, data.pairs)
    cells, drugs = FeatureBlocks(features, "cpu")(batch)
    for gathered, block in zip(cells, features.cell_blocks):
        np.testing.assert_array_equal(gathered.numpy(), block[[0, 2, 11]])
    for gathered, block in zip(drugs, features.drug_blocks):
        np.testing.assert_array_equal(gathered.numpy(), block[[0, 1, 5]])
    torch.manual_seed(0)
    model = DeepDRA(features.cell_dims, features.drug_dims, latent_dim=4, hidden_dim=8, classifier_dim=4).eval()
    losses = PairLoss(FeatureBlocks(features, "cpu"))(model, batch)
    expected = drp_loss(model(cells, drugs), cells, drugs, batch.label)
    assert set(losses) == set(expected)
    for key in expected:
        torch.testing.assert_close(losses[key], expected[key])


def small_fold() -> tuple[DRPData, PairFold]:
    data = fake_data()
    pairs = data.pairs
    train, val = pairs[pairs["cell_index"] < 8], pairs[pairs["cell_index"].isin([8, 9])]
    return data, PairFold(prepare_features(data, train), train, val)


@pytest.mark.parametrize("architecture", ["deepdra", "cross_attention", "cross_attention_blocks"])
def test_a_drp_estimator_is_reproducible_and_predicts_probabilities(architecture):
    data, fold = small_fold()
    config = FitConfig(epochs=2, batch_size=8, progress=False)
    fits = [DRPEstimator(architecture, config) for _ in range(2)]
    reports = [estimator.fit(fold, seed=1) for estimator in fits]
    assert reports[0].epochs_run == 2 and "val_loss" in reports[0].history.columns
    scores = fits[0].predict(fold, data.pairs, batch_size=50)
    assert scores.shape == (len(data.pairs),) and ((scores > 0) & (scores < 1)).all()
    np.testing.assert_array_equal(fits[1].predict(fold, data.pairs, batch_size=50), scores)
    _, outputs = predict_deep(fits[0].network, fold.features, data.pairs, batch_size=50)
    assert len(outputs) == 2  # 72 pairs in batches of 50


def test_a_saved_drp_estimator_predicts_what_it_predicted(tmp_path):
    data, fold = small_fold()
    estimator = DRPEstimator("cross_attention", FitConfig(epochs=2, batch_size=8, progress=False))
    estimator.fit(fold, seed=2)
    loaded = DRPEstimator.load(estimator.save(tmp_path / "drp"))
    assert loaded.architecture == "cross_attention" and loaded.genes == fold.features.genes
    np.testing.assert_array_equal(loaded.ranges["descriptors"][1], fold.features.ranges["descriptors"][1])
    np.testing.assert_array_equal(loaded.predict(fold, data.pairs), estimator.predict(fold, data.pairs))


def test_an_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown drug-response architecture 'mlp'; use one of deepdra"):
        DRPEstimator("mlp")


# --------------------------------------------------------------------------------------------------- one split

def test_run_split_scores_every_model_on_the_test_pairs():
    data = fake_data()
    pairs = data.pairs
    test = pairs[pairs["cell_index"] >= 10].reset_index(drop=True)  # 12 pairs, both classes
    val = pairs[pairs["cell_index"].isin([8, 9])].reset_index(drop=True)
    train = pairs[pairs["cell_index"] < 8].reset_index(drop=True)
    models = ("drug_prior", "gradient_boosting", "deepdra", "cross_attention")
    settings = DRPSettings(n_genes=None, fit=FitConfig(epochs=1, batch_size=8, progress=False), gbm_components=2)
    subset = (test["drug_index"] < 4).to_numpy()
    result = run_split(data, train, val, test, models=models, settings=settings, seed=0,
                       test_subsets={"first drugs": subset})
    metrics = result.metrics
    assert len(metrics) == 2 * len(models)
    assert list(metrics.loc[metrics["subset"] == "all", "model"]) == list(models)  # ids; chapter.table shows labels
    assert (metrics.loc[metrics["subset"] == "all", "n_test"] == len(test)).all()
    assert (metrics.loc[metrics["subset"] == "first drugs", "n_test"] == subset.sum()).all()
    assert list(result.predictions) == list(models)  # keyed by id
    for model_id in models:
        scores = result.predictions[model_id]
        assert scores.shape == (len(test),)
        assert ((scores >= 0) & (scores <= 1)).all()
    for column in ("accuracy", "precision", "recall", "f1", "roc_auc", "auprc", "pr_auc_trapezoid"):
        assert metrics[column].between(0, 1).all(), column
    assert set(result.fits) == set(result.models) == {"deepdra", "cross_attention"}
    assert metrics.loc[metrics["model"] == "deepdra", "train_seconds"].notna().all()
    assert metrics.loc[metrics["model"] == "drug_prior", "train_seconds"].isna().all()
    # the drug prior of a checkerboard with 8 training cells per drug: every drug is exactly half sensitive
    np.testing.assert_allclose(result.predictions["drug_prior"], 0.5)
    # the context holds what the models saw: training-fitted features and the test pairs
    pd.testing.assert_frame_equal(result.context.test, test)
    np.testing.assert_array_equal(result.context.features.cell_blocks[0],
                                  prepare_features(data, train).cell_blocks[0])
    assert result.split.test.tolist() == list(range(len(test)))


def test_run_split_rejects_unknown_model_ids():
    data = fake_data()
    message = "unknown model 'DeepDRA' in the drug response experiments; use one of drug_prior"
    with pytest.raises(ValueError, match=message):
        run_split(data, data.pairs, data.pairs, data.pairs, models=["drug_prior", "DeepDRA"])


def test_run_split_subsamples_training_pairs():
    data = fake_data()
    pairs = data.pairs
    settings = DRPSettings(max_train_pairs=20)
    result = run_split(data, pairs[pairs["cell_index"] < 10], pairs.iloc[:0], pairs[pairs["cell_index"] >= 10],
                       models=["cell_prior"], settings=settings, seed=3)
    assert len(result.context.train) == len(result.split.train) == 20


# --------------------------------------------------------------------------------------------------- evaluation

def test_per_drug_auc_skips_one_class_and_small_drugs():
    test = pd.DataFrame({"drug_name": ["X"] * 4 + ["Y"] * 4 + ["Z"] * 2,
                         "label": [1, 1, 0, 0, 1, 1, 1, 1, 1, 0]})
    scores = np.array([0.9, 0.4, 0.6, 0.1, 0.5, 0.5, 0.5, 0.5, 0.9, 0.1])
    table = per_drug_auc(test, scores, min_pairs=3)
    assert list(table["drug_name"]) == ["X"]  # Y has one class, Z too few pairs
    assert table.iloc[0]["n"] == 4
    assert table.iloc[0]["auc"] == pytest.approx(0.75)


def test_results_table_adds_the_papers_numbers_by_model_id():
    rows = [{"model": label, "subset": subset, **{m: value for m in ("accuracy", "precision", "recall", "f1",
                                                                      "roc_auc", "auprc", "pr_auc_trapezoid")}}
            for label in ("deepdra", "cross_attention", "drug_prior") for subset in ("all", "other")
            for value in (0.6, 0.8)]
    runs = pd.DataFrame(rows)
    table = results_table(runs, "5-fold CV on CTRP+GDSC")
    assert list(table.index) == ["deepdra", "cross_attention", "drug_prior"]
    assert (table["runs"] == 2).all() and table["roc_auc_mean"].tolist() == pytest.approx([0.7] * 3)
    reported = papers.DRP_REPORTED["5-fold CV on CTRP+GDSC"]
    assert table.loc["deepdra", "paper roc_auc"] == reported["deepdra"]["roc_auc"]
    assert table.loc["cross_attention", "paper f1"] == reported["cross_attention"]["f1"]
    assert np.isnan(table.loc["drug_prior", "paper auprc"])  # the paper has no priors
    assert not any(c.startswith("paper") for c in results_table(runs, "an experiment of our own").columns)
    shown = shown_columns(table)
    assert list(shown.columns) == ["roc_auc", "paper roc_auc", "auprc", "paper auprc", "accuracy", "paper accuracy",
                                   "runs"]
    ours_only = shown_columns(results_table(runs, "an experiment of our own"))
    assert list(ours_only.columns) == ["roc_auc", "auprc", "accuracy", "runs"]


def drp_protocol_pairs(n_cells: int = 30, n_drugs: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cell, drug = np.meshgrid(np.arange(n_cells), np.arange(n_drugs), indexing="ij")
    return pd.DataFrame({"cell_id": [f"c{i}" for i in cell.ravel()], "drug_id": [f"d{j}" for j in drug.ravel()],
                         "label": (rng.random(cell.size) < 0.35).astype(int)})


def test_stratified_folds_partition_the_pairs():
    pairs = drp_protocol_pairs()
    labels = pairs["label"].to_numpy()
    folds = list(kfold(len(pairs), k=5, labels=labels, seed=0))
    assert len(folds) == 5
    np.testing.assert_array_equal(np.sort(np.concatenate([f.test for f in folds])), np.arange(len(pairs)))
    positives = [labels[f.test].sum() for f in folds]
    assert max(positives) - min(positives) <= 1
    for fold in folds:
        parts = np.concatenate([fold.train, fold.val, fold.test])
        np.testing.assert_array_equal(np.sort(parts), np.arange(len(pairs)))  # every pair in exactly one part


def test_drug_grouped_folds_never_share_a_drug():
    pairs = drp_protocol_pairs()
    drugs = pairs["drug_id"].to_numpy()
    tested = []
    for fold in kfold(len(pairs), k=4, groups=drugs, seed=0):
        assert not set(drugs[fold.test]) & set(drugs[fold.train])
        assert not set(drugs[fold.test]) & set(drugs[fold.val])
        assert not set(drugs[fold.val]) & set(drugs[fold.train])
        tested += sorted(set(drugs[fold.test]))
    assert sorted(tested) == sorted(set(drugs))  # every drug is tested in exactly one fold


# --------------------------------------------------------------------------------------------------- experiments

def test_cross_validate_runs_every_fold_of_every_seed():
    data = fake_data()
    runs, last = cross_validate(data, data.pairs, ["drug_prior", "cell_prior"], DRPSettings(), seeds=[0, 1], k=3,
                                group_by="drug_id", progress=False)
    assert list(runs.columns[:4]) == ["seed", "fold", "model", "subset"]
    assert len(runs) == 2 * 3 * 2 and set(runs["model"]) == {"drug_prior", "cell_prior"}
    assert runs.groupby("seed")["fold"].unique().map(sorted).tolist() == [[1, 2, 3], [1, 2, 3]]
    # every pair tested once per seed; a held-out drug has no training rate: its drug prior is the overall rate
    assert runs[runs["model"] == "drug_prior"].groupby("seed")["n_test"].sum().tolist() == [len(data.pairs)] * 2
    assert last.split.kind == "held-out drug_id fold 3" and last.seed == 1
    assert not set(last.context.test["drug_id"]) & set(last.context.train["drug_id"])
    np.testing.assert_allclose(last.predictions["drug_prior"], last.context.train["label"].mean())
    few, _ = cross_validate(data, data.pairs, ["drug_prior"], DRPSettings(), seeds=[0], k=3, max_folds=1,
                            progress=False)
    assert few["fold"].tolist() == [1]


def test_cross_validate_can_undersample_before_splitting():
    data = fake_data()
    imbalanced = data.pairs[~((data.pairs["label"] == 1) & (data.pairs["cell_index"] < 6))]  # 18 of 54 sensitive
    runs, _ = cross_validate(data, imbalanced, ["drug_prior"], DRPSettings(), seeds=[0], k=3,
                             undersample_first=True, progress=False)
    assert runs["n_test"].sum() == 36  # 18 sensitive + 18 resistant
    assert runs["positive_rate"].mean() == pytest.approx(0.5, abs=0.1)
    natural, _ = cross_validate(data, imbalanced, ["drug_prior"], DRPSettings(), seeds=[0], k=3, progress=False)
    assert natural["n_test"].sum() == len(imbalanced)


def cross_dataset_data(imbalanced: bool = False) -> DRPData:
    """The toy data with cell lines 0-8 as CTRP+GDSC and 9-11 as CCLE; ``imbalanced``: the sensitive training pairs
    of drugs 0-2 turned resistant (14 sensitive, 40 resistant)."""
    data = fake_data()
    pairs = data.pairs
    pairs["dataset"] = np.where(pairs["cell_index"] < 9, TRAIN_DATASET, TEST_DATASET)
    pairs["labelled_in_training"] = (pairs["dataset"] == TEST_DATASET) & (pairs["drug_index"] < 2)
    if imbalanced:
        pairs.loc[(pairs["dataset"] == TRAIN_DATASET) & (pairs["label"] == 1) & (pairs["drug_index"] < 3),
                  "label"] = 0
    return data


def test_cross_dataset_trains_on_ctrp_gdsc_and_tests_on_ccle():
    data = cross_dataset_data()
    ccle = cross_dataset(data, ["drug_prior", "drug_cell_prior"], DRPSettings(), seeds=[0, 1], progress=False)
    runs, last, test = ccle.runs, ccle.last, ccle.test
    assert len(test) == 18 and (test["dataset"] == TEST_DATASET).all() and ccle.protocol == "leakage-free"
    assert list(runs.columns[:3]) == ["seed", "model", "subset"]
    assert len(runs) == 2 * 2 * 2
    n_test = runs.groupby("subset")["n_test"].unique()
    assert n_test["all"].tolist() == [18] and n_test["not labelled in training"].tolist() == [12]
    assert last.seed == 1 and last.split.kind == f"{TRAIN_DATASET} -> {TEST_DATASET}"
    assert (last.context.train["dataset"] == TRAIN_DATASET).all()
    assert len(last.context.train) + len(last.context.val) == 54
    assert set(ccle.predictions()) == {(s, m) for s in (0, 1) for m in ("drug_prior", "drug_cell_prior")}
    assert ccle.histories().empty  # no deep model


def test_the_paper_protocol_balances_training_pairs_and_keeps_the_last_epoch():
    data = cross_dataset_data(imbalanced=True)
    settings = DRPSettings(fit=FitConfig(epochs=3, batch_size=8, progress=False, early_stopping_patience=1),
                           paper_fit=FitConfig(epochs=3, batch_size=8, progress=False, validation="log"))
    paper = cross_dataset(data, ["drug_prior", "deepdra"], settings, seeds=[0], protocol="paper", watch_test=True)
    context = paper.last.context
    used = pd.concat([context.train, context.val])
    assert len(used) == 28 and used["label"].mean() == 0.5  # 14 of each class, before the validation split
    deep = paper.runs[(paper.runs["model"] == "deepdra") & (paper.runs["subset"] == "all")].iloc[0]
    assert deep["best_epoch"] == deep["epochs_run"] == 3  # every epoch, the last one's weights
    history = paper.histories()
    assert list(history.columns[:3]) == ["seed", "model", "epoch"] and len(history) == 3
    assert history["test_roc_auc"].between(0, 1).all()  # watched, not used
    natural = cross_dataset(data, ["drug_prior"], settings, seeds=[0])
    assert len(natural.last.context.train) + len(natural.last.context.val) == 54
    with pytest.raises(ValueError, match="unknown protocol 'deepdra'"):
        cross_dataset(data, ["drug_prior"], settings, seeds=[0], protocol="deepdra")
    assert set(PROTOCOLS) == {"paper", "leakage-free"}
    assert settings.for_protocol("paper").fit.validation == "log"
    assert settings.for_protocol("leakage-free").fit.validation == "select"


def test_column_l2_scaling_divides_each_column_by_its_norm_over_the_pairs():
    data = fake_data()
    features = prepare_features(data, data.pairs)
    some = data.pairs.iloc[[0, 1, 7, 7]]  # a pair counted twice counts twice
    scaled = column_l2_scaled(features, some)
    for block, original in zip(scaled.cell_blocks, features.cell_blocks):
        rows = block[some["cell_index"].to_numpy()]
        norms = np.linalg.norm(rows, axis=0)
        nonzero = np.linalg.norm(original[some["cell_index"].to_numpy()], axis=0) > 0
        np.testing.assert_allclose(norms[nonzero], 1.0, rtol=1e-5)
        assert (block[:, ~nonzero] == 0).all()
    assert scaled.drug_blocks[1].shape == features.drug_blocks[1].shape
    assert features.cell_blocks[0].max() == 1.0  # the input is left as it was


def test_the_column_l2_switch_scales_training_and_test_pairs_each_by_their_own_norms():
    data = cross_dataset_data()
    settings = DRPSettings(paper_fit=FitConfig(epochs=1, batch_size=8, progress=False, validation="log"),
                           column_l2=True)
    switched = cross_dataset(data, ["deepdra"], settings, seeds=[0], protocol="paper")
    plain = cross_dataset(data, ["deepdra"], replace(settings, column_l2=False), seeds=[0], protocol="paper")
    assert not np.allclose(switched.predictions()[0, "deepdra"], plain.predictions()[0, "deepdra"])


def test_drug_identity_oracle_scores_each_pair_by_its_drugs_test_rate():
    test = pd.DataFrame({"drug_name": ["a", "a", "a", "b", "b"], "label": [1, 1, 0, 0, 0]})
    np.testing.assert_allclose(drug_identity_oracle(test), [2 / 3, 2 / 3, 2 / 3, 0, 0])


def test_within_drug_auc_averages_over_drugs_per_seed_and_model():
    test = pd.DataFrame({"drug_name": ["a"] * 4 + ["b"] * 4, "label": [1, 0, 1, 0, 1, 1, 0, 0]})
    perfect = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.4, 0.1, 0.2])  # ranks inside each drug, not across
    reversed_a = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.4, 0.1, 0.2])
    table = within_drug_auc(test, {(0, "m"): perfect, (1, "m"): reversed_a}, min_pairs=4)
    assert table["roc_auc"].tolist() == [1.0, 0.5] and table["drugs"].tolist() == [2, 2]


def test_drug_rate_shift_orders_drugs_by_how_much_their_rate_moves():
    train = pd.DataFrame({"drug_id": ["A"] * 4 + ["B"] * 2, "drug_name": ["alpha"] * 4 + ["beta"] * 2,
                          "label": [1, 1, 1, 0, 0, 0]})
    test = pd.DataFrame({"drug_id": ["A", "A", "B", "B", "C"], "drug_name": ["a", "a", "b", "b", "c"],
                         "label": [0, 0, 0, 1, 1]})  # matched by structure (drug_id), shown under the test name
    table = drug_rate_shift(train, test)
    assert table.index.tolist() == ["c", "a", "b"]  # no training pairs first, then |-0.75| > |0.5|
    assert table.loc["c", "training pairs"] == 0 and np.isnan(table.loc["c", "training sensitive rate"])
    assert table.loc["a", "difference"] == pytest.approx(-0.75)
    assert table.loc["b", "CCLE pairs"] == 2


def test_ccle_decomposition_puts_each_model_beside_the_drug_identity_oracle():
    data = cross_dataset_data()
    ccle = cross_dataset(data, ["drug_prior", "cell_prior"], DRPSettings(), seeds=[0, 1, 2], progress=False)
    table = ccle_decomposition(ccle, ["drug_prior", "cell_prior"])
    assert table.index.tolist() == ["drug_prior", "cell_prior", "drug identity (oracle: the drug's CCLE rate)"]
    assert (table.loc[["drug_prior", "cell_prior"], "seeds"] == 3).all()
    oracle = table.loc["drug identity (oracle: the drug's CCLE rate)"]
    # three CCLE cell lines of a checkerboard: each drug is 1/3 or 2/3 sensitive, which the oracle reads
    assert oracle["pooled_mean"] == pytest.approx(roc_auc_score(ccle.test["label"], drug_identity_oracle(ccle.test)))
    assert oracle["pooled_mean"] > 0.6 and np.isnan(oracle["within_mean"])  # 3 pairs per drug: too few within


def test_width_sweep_stacks_runs_with_the_number_of_genes():
    data = cross_dataset_data()
    tiny = FitConfig(epochs=1, batch_size=8, progress=False, validation="log")
    runs = width_sweep(data, [2, None], ["drug_prior", "deepdra"], DRPSettings(paper_fit=tiny), seeds=[0, 1])
    assert runs["genes"].tolist()[::4] == [N_GENES, N_GENES, 2, 2]  # widest first, seeds within a width
    for width in (2, None):  # the same runs as cross_dataset at that width
        alone = cross_dataset(data, ["drug_prior", "deepdra"], DRPSettings(n_genes=width, paper_fit=tiny), [0, 1],
                              protocol="paper", progress=False).runs
        swept = runs[runs["genes"] == (width or N_GENES)].reset_index(drop=True)
        measured = ["seed", "model", "subset", "roc_auc", "auprc"]
        pd.testing.assert_frame_equal(swept[measured], alone[measured])


def comparison_runs(deepdra_auc: list[float], ours_auc: list[float], prior_auc: list[float]) -> pd.DataFrame:
    rows = [{"seed": s, "fold": 1, "subset": "all", "model": model, "roc_auc": value, "auprc": value}
            for model, values in (("deepdra", deepdra_auc), ("cross_attention", ours_auc),
                                  ("drug_prior", prior_auc)) for s, value in enumerate(values)]
    return pd.DataFrame(rows)


def test_decide_claims_reads_paired_differences_under_both_protocols():
    wins = comparison_runs([0.80, 0.81, 0.82, 0.83], [0.85, 0.86, 0.86, 0.88], [0.83, 0.83, 0.83, 0.83])
    ties = comparison_runs([0.80, 0.86, 0.82, 0.85], [0.82, 0.83, 0.84, 0.84], [0.90, 0.90, 0.90, 0.90])
    paper = CrossDatasetRuns(wins, {}, pd.DataFrame(), "paper")
    ours = CrossDatasetRuns(ties, {}, pd.DataFrame(), "leakage-free")
    ccle, cv, prior = decide_claims(paper, ours, ties, "toy")
    assert ccle.verdict == "partly" and "paper protocol" in ccle.evidence[0].text
    assert [e.supports for e in ccle.evidence] == [True, True, False]  # a tie under ours counts against
    assert cv.verdict == "does not hold"
    assert prior.verdict == "partly"  # beats the prior under the paper protocol, not under ours
    assert "0.910" in ccle.claim  # the paper's number, read from perturbx.papers
    assert [c.id for c in (ccle, cv, prior)] == ["ccle_beats_deepdra", "cv_beats_deepdra", "ccle_beyond_drug_prior"]
    # runs hold ids, the evidence reads with labels
    assert ccle.evidence[0].text.startswith("cross-attention (paper protocol) beats DeepDRA in roc_auc")


def test_results_table_keeps_a_metric_that_is_undefined_for_every_run():
    runs = pd.DataFrame([{"model": "drug_prior", "subset": "one class", **dict.fromkeys(METRICS, np.nan),
                          "accuracy": 0.5}] * 2)
    table = results_table(runs, subset="one class")
    assert table.loc["drug_prior", "accuracy_mean"] == 0.5 and np.isnan(table.loc["drug_prior", "roc_auc_mean"])


def test_protocol_table_reads_the_settings_the_run_uses():
    settings = DRPSettings.quick()
    table = protocol_table(settings)
    assert table.loc["paper", "epochs"] == str(settings.paper_fit.epochs)
    assert table.loc["paper", "batch size"] == settings.paper_fit.batch_size
    assert table.loc["paper", "weights kept"] == "last epoch"
    assert table.loc["leakage-free", "epochs"] == f"up to {settings.fit.epochs}"
    assert "patience" in table.loc["leakage-free", "validation (10%)"]


def test_epoch_spread_separates_movement_within_runs_from_spread_between_seeds():
    histories = pd.DataFrame({"seed": [0] * 4 + [1] * 4, "model": "m", "epoch": [1, 2, 3, 4] * 2,
                              "test_roc_auc": [0.5, 0.6, 0.80, 0.70, 0.5, 0.6, 0.82, 0.72]})
    row = epoch_spread(histories).loc["m"]
    assert row["seeds"] == 2
    assert row["range within a run (second half)"] == pytest.approx(0.10)  # epochs 3-4
    assert row["mean change epoch to epoch"] == pytest.approx(0.10)
    assert row["sd over seeds (last epoch)"] == pytest.approx(np.std([0.70, 0.72], ddof=1))


def test_cross_dataset_seeds_in_parallel_workers_give_the_serial_numbers():
    data = cross_dataset_data()
    settings = DRPSettings(paper_fit=FitConfig(epochs=2, batch_size=8, progress=False, validation="log"))
    serial = cross_dataset(data, ["drug_prior", "deepdra"], settings, seeds=[0, 1], protocol="paper")
    parallel = cross_dataset(data, ["drug_prior", "deepdra"], replace(settings, workers=2), seeds=[0, 1],
                             protocol="paper")
    pd.testing.assert_frame_equal(parallel.runs.drop(columns="train_seconds"),
                                  serial.runs.drop(columns="train_seconds"), rtol=1e-5)
    assert set(parallel.results) == {0, 1} and parallel.last.models["deepdra"] is not None
