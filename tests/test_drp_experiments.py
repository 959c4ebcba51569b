import numpy as np
import pandas as pd
import pytest

from perturbx.datasets.drp import DRPData
from perturbx.drp import DRPSettings, build_model, per_drug_auc, prepare_features, run_split, undersample
from perturbx.models.classical import sensitivity_priors
from perturbx.splits import kfold
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
    overall = 3 / 8
    # drug A: 3 of 4 sensitive; drug C unseen; drug B: 0 of 4
    np.testing.assert_allclose(priors["drug prior"], [(3 + 5 * overall) / 9, overall, (0 + 5 * overall) / 9])
    # cell c1: 1 of 2; c4: 0 of 2; c5 unseen
    np.testing.assert_allclose(priors["cell prior"], [(1 + 5 * overall) / 7, (0 + 5 * overall) / 7, overall])
    assert priors["drug prior"][0] == pytest.approx(0.5416667, abs=1e-6)


def test_combined_prior_adds_log_odds_and_removes_overall_once():
    train, test = prior_tables()
    priors = sensitivity_priors(train, test, strength=5.0)

    def logit(p):
        return np.log(p / (1 - p))

    expected = 1 / (1 + np.exp(-(logit(priors["drug prior"]) + logit(priors["cell prior"]) - logit(3 / 8))))
    np.testing.assert_allclose(priors["drug + cell prior"], expected)
    # an unseen side contributes nothing: the combined prior is the other side's
    assert priors["drug + cell prior"][1] == pytest.approx(priors["cell prior"][1])
    assert priors["drug + cell prior"][2] == pytest.approx(priors["drug prior"][2])
    assert priors["drug + cell prior"][0] == pytest.approx(0.57856, abs=1e-4)


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


def test_build_model_rejects_unknown_names():
    data = fake_data()
    with pytest.raises(ValueError, match="unknown deep model"):
        build_model("transformer", prepare_features(data, data.pairs))


# --------------------------------------------------------------------------------------------------- one split

def test_run_split_scores_every_model_on_the_test_pairs():
    data = fake_data()
    pairs = data.pairs
    test = pairs[pairs["cell_index"] >= 10].reset_index(drop=True)  # 12 pairs, both classes
    val = pairs[pairs["cell_index"].isin([8, 9])].reset_index(drop=True)
    train = pairs[pairs["cell_index"] < 8].reset_index(drop=True)
    models = ("drug prior", "gradient boosting", "DeepDRA", "cross-attention")
    settings = DRPSettings(n_genes=None, fit=FitConfig(epochs=1, batch_size=8, progress=False), gbm_components=2)
    subset = (test["drug_index"] < 4).to_numpy()
    result = run_split(data, train, val, test, models=models, settings=settings, seed=0,
                       test_subsets={"first drugs": subset})
    metrics = result.metrics
    assert len(metrics) == 2 * len(models)
    assert list(metrics.loc[metrics["subset"] == "all", "model"]) == list(models)
    assert (metrics.loc[metrics["subset"] == "all", "n_test"] == len(test)).all()
    assert (metrics.loc[metrics["subset"] == "first drugs", "n_test"] == subset.sum()).all()
    for name in models:
        assert result.scores[name].shape == (len(test),)
        assert ((result.scores[name] >= 0) & (result.scores[name] <= 1)).all()
    for column in ("accuracy", "precision", "recall", "f1", "roc_auc", "auprc", "pr_auc_trapezoid"):
        assert metrics[column].between(0, 1).all(), column
    assert set(result.fits) == {"DeepDRA", "cross-attention"}
    assert metrics.loc[metrics["model"] == "DeepDRA", "train_seconds"].notna().all()
    assert metrics.loc[metrics["model"] == "drug prior", "train_seconds"].isna().all()
    # the drug prior of a checkerboard with 8 training cells per drug: every drug is exactly half sensitive
    np.testing.assert_allclose(result.scores["drug prior"], 0.5)


# --------------------------------------------------------------------------------------------------- evaluation

def test_per_drug_auc_skips_one_class_and_small_drugs():
    test = pd.DataFrame({"drug_name": ["X"] * 4 + ["Y"] * 4 + ["Z"] * 2,
                         "label": [1, 1, 0, 0, 1, 1, 1, 1, 1, 0]})
    scores = np.array([0.9, 0.4, 0.6, 0.1, 0.5, 0.5, 0.5, 0.5, 0.9, 0.1])
    table = per_drug_auc(test, scores, min_pairs=3)
    assert list(table["drug_name"]) == ["X"]  # Y has one class, Z too few pairs
    assert table.iloc[0]["n"] == 4
    assert table.iloc[0]["auc"] == pytest.approx(0.75)


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
