import numpy as np
from scipy.stats import pearsonr

from perturbx.metrics import pearson_rows


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

from perturbx.metrics import classification_metrics, deepdra_precision_recall, summarise_runs  # noqa: E402


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
