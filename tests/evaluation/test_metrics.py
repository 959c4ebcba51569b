import numpy as np
from scipy.stats import pearsonr

from perturbx.evaluation.metrics import pearson_rows


def test_pearson_rows_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 50)), rng.normal(size=(5, 50))
    expected = [pearsonr(x, y).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(pearson_rows(a, b), expected)
    np.testing.assert_allclose(pearson_rows(a, a[0]), [pearsonr(x, a[0]).statistic for x in a])


def test_constant_row_gives_nan():
    assert np.isnan(pearson_rows(np.ones((1, 4)), np.arange(4.0)))[0]


# --------------------------------------------------------------------------------------------------- classification

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from perturbx.evaluation.metrics import classification_metrics, deepdra_precision_recall, summarise_runs  # noqa: E402


def test_classification_metrics_hand_checked():
    """Called positive at > 0.5: TP (0.9), FN (0.4), FP (0.6), TN (0.1)."""
    y, score = np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.6, 0.1])
    result = classification_metrics(y, score)
    for name in ("accuracy", "precision", "recall", "f1"):
        assert result[name] == pytest.approx(0.5), name
    assert result["roc_auc"] == pytest.approx(0.75)  # 3 of 4 positive-negative pairs ordered correctly
    # ranked P N P N: precision 1 at recall 1/2, 2/3 at recall 1
    assert result["auprc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert result["auprc"] == pytest.approx(skm.average_precision_score(y, score))
    precision, recall, _ = skm.precision_recall_curve(y, score)
    assert result["pr_auc_trapezoid"] == pytest.approx(skm.auc(recall, precision))
    # curve (recall, precision): (1, 1/2), (1, 2/3), (1/2, 1/2), (1/2, 1), (0, 1)
    assert result["pr_auc_trapezoid"] == pytest.approx(0.5 * (2 / 3 + 1 / 2) / 2 + 0.5 * 1)


def test_classification_metrics_threshold_is_strict():
    result = classification_metrics(np.array([1, 0]), np.array([0.5, 0.2]))
    assert result["recall"] == 0.0 and result["precision"] == 0.0  # 0.5 is not above 0.5


def test_deepdra_precision_recall_are_specificity_and_npv():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    score = np.array([0.1, 0.2, 0.3, 0.8, 0.2, 0.4, 0.9, 0.7])
    tn, fp, fn, tp = 3, 1, 2, 2
    np.testing.assert_array_equal(skm.confusion_matrix(y, score > 0.5).ravel(), [tn, fp, fn, tp])
    result = deepdra_precision_recall(y, score)
    assert result["deepdra_precision"] == pytest.approx(tn / (tn + fp))  # 3/4
    assert result["deepdra_recall"] == pytest.approx(tn / (tn + fn))  # 3/5
    standard = classification_metrics(y, score)
    assert standard["precision"] == pytest.approx(tp / (tp + fp))  # 2/3
    assert standard["recall"] == pytest.approx(tp / (tp + fn))  # 1/2
    assert result["deepdra_precision"] != pytest.approx(standard["precision"])
    assert result["deepdra_recall"] != pytest.approx(standard["recall"])


def test_summarise_runs_mean_and_sample_sd():
    runs = pd.DataFrame({"model": ["b", "a", "a"], "auc": [0.8, 0.7, 0.9], "f1": [0.5, 0.2, 0.6]})
    summary = summarise_runs(runs, by=["model"], columns=["auc", "f1"])
    assert list(summary.index) == ["b", "a"]  # groups in order of appearance
    assert summary.at["a", "auc"] == "0.800 ± 0.141"  # sd of (0.7, 0.9) with ddof=1 is 0.1 * sqrt(2)
    assert summary.at["a", "f1"] == "0.400 ± 0.283"
    assert summary.at["b", "auc"] == "0.800"  # one run: no sd
    assert summary.at["a", "auc_mean"] == pytest.approx(0.8)
    assert summary.at["a", "auc_sd"] == pytest.approx(np.sqrt(0.02))
    assert np.isnan(summary.at["b", "auc_sd"])
    assert list(summary["runs"]) == [1, 2]


# --------------------------------------------------------------------------------------------------- comparisons

from perturbx.evaluation.metrics import compare_models  # noqa: E402


def _runs(model_values, baseline_values):
    seeds = range(len(model_values))
    return pd.DataFrame([{"seed": s, "model": "m", "r": v} for s, v in zip(seeds, model_values)]
                        + [{"seed": s, "model": "b", "r": v} for s, v in zip(seeds, baseline_values)])


def test_compare_models_needs_three_paired_seeds():
    one = compare_models(_runs([0.9], [0.1]), "m", "b", "r")
    assert one.verdict == "cannot be compared with" and one.n == 1 and "at least 3" in str(one)


def test_compare_models_pairs_by_seed_not_by_means():
    # Large spread over seeds but the model is better in every seed by ~0.05: a paired test sees it.
    base = np.array([0.1, 0.4, 0.7, 0.2, 0.5])
    result = compare_models(_runs(base + [0.05, 0.06, 0.04, 0.05, 0.05], base), "m", "b", "r")
    assert result.verdict == "beats" and result.wins == 5 and result.low > 0
    np.testing.assert_allclose(result.difference, 0.05)


def test_compare_models_tie_and_loss_and_lower_is_better():
    tie = compare_models(_runs([0.5, 0.6, 0.4], [0.55, 0.45, 0.5]), "m", "b", "r")
    assert tie.verdict == "ties with" and tie.low < 0 < tie.high
    loss = compare_models(_runs([0.1, 0.2, 0.15], [0.5, 0.6, 0.55]), "m", "b", "r")
    assert loss.verdict == "does NOT beat" and loss.wins == 0
    assert compare_models(_runs([0.1, 0.2, 0.15], [0.5, 0.6, 0.55]), "m", "b", "r",
                          higher_is_better=False).verdict == "beats"


def test_compare_models_refuses_ambiguous_pairs_and_unknown_models():
    runs = pd.concat([_runs([0.5, 0.6, 0.4], [0.5, 0.5, 0.5])] * 2)
    with pytest.raises(ValueError, match="several runs"):
        compare_models(runs, "m", "b", "r")
    with pytest.raises(ValueError, match="no runs of 'x'"):
        compare_models(_runs([0.5], [0.5]), "x", "b", "r")
