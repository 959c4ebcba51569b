"""Per-profile accuracy of predicted expression profiles (chapter on drug-induced expression)."""

import numpy as np
import pytest
from scipy import stats

from perturbx.evaluation.metrics import EXPRESSION_METRICS, expression_metrics, spearman_rows


def synthetic(n: int = 5, genes: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    basal = rng.normal(8.0, 2.0, size=(n, genes))
    change = rng.normal(0.0, 1.0, size=(n, genes))
    return basal + change, basal


def test_columns_and_one_row_per_profile():
    expression, basal = synthetic(n=4)
    table = expression_metrics(expression, expression, basal)
    assert tuple(table.columns) == EXPRESSION_METRICS and len(table) == 4
    assert (table.dtypes == np.float64).all()


def test_perfect_prediction():
    expression, basal = synthetic()
    table = expression_metrics(expression, expression.copy(), basal, n_degs=20, k=10)
    for column in ("pearson", "spearman", "pearson_change", "r2_top_degs", "precision_up", "precision_down"):
        np.testing.assert_allclose(table[column], 1.0, atol=1e-12, err_msg=column)
    np.testing.assert_array_equal(table["rmse"], 0.0)


def test_no_change_prediction():
    """Predicting the basal profile: the change is constant (zero), so it ranks no genes and correlates with nothing."""
    expression, basal = synthetic()
    table = expression_metrics(expression, basal.copy(), basal, n_degs=20, k=10)
    assert table["pearson_change"].isna().all()
    assert table["precision_up"].isna().all() and table["precision_down"].isna().all()
    # a zero change over the top DEGs: 1 - sum(t^2) / sum((t - mean t)^2) <= 0
    assert (table["r2_top_degs"] <= 0).all() and table["r2_top_degs"].notna().all()
    change = expression - basal
    np.testing.assert_allclose(table["rmse"], np.sqrt((change**2).mean(axis=1)))
    # the profile itself is still well predicted (basal explains most of the treated profile)
    assert (table["pearson"] > 0.8).all() and table["spearman"].notna().all()


def test_opposite_change_prediction():
    expression, basal = synthetic()
    predicted = basal - (expression - basal)
    table = expression_metrics(expression, predicted, basal, n_degs=20, k=10)
    np.testing.assert_allclose(table["pearson_change"], -1.0, atol=1e-12)
    np.testing.assert_array_equal(table["precision_up"], 0.0)
    np.testing.assert_array_equal(table["precision_down"], 0.0)
    # predicted = -t on the DEGs: SS_res = 4 sum t^2 >= 4 SS_tot, so R^2 <= -3
    assert (table["r2_top_degs"] <= -3).all()


def test_hand_checked_profile():
    basal = np.array([[5.0, 6.0, 7.0, 8.0, 9.0, 10.0]])
    change = np.array([[3.0, -2.0, 1.0, 0.5, -0.1, 0.0]])
    predicted_change = np.array([[2.0, -2.0, -0.5, 1.0, -0.7, 0.1]])
    table = expression_metrics(basal + change, basal + predicted_change, basal, n_degs=3, k=2)
    row = table.iloc[0]
    # top 3 DEGs by |change|: genes 0, 1, 2 with changes 3, -2, 1 (mean 2/3) -> SS_tot = 114 / 9;
    # predicted 2, -2, -0.5 -> SS_res = 1 + 0 + 2.25
    assert row["r2_top_degs"] == pytest.approx(1 - 3.25 / (114 / 9))
    # 2 most up: measured {0, 2}, predicted {0, 3} -> 1/2; 2 most down: measured {1, 4}, predicted {1, 4} -> 1
    assert row["precision_up"] == pytest.approx(0.5)
    assert row["precision_down"] == pytest.approx(1.0)
    assert row["rmse"] == pytest.approx(np.sqrt((1 + 0 + 2.25 + 0.25 + 0.36 + 0.01) / 6))
    assert row["pearson_change"] == pytest.approx(np.corrcoef(change[0], predicted_change[0])[0, 1])
    assert row["pearson"] == pytest.approx(np.corrcoef(basal[0] + change[0], basal[0] + predicted_change[0])[0, 1])
    assert row["spearman"] == pytest.approx(stats.spearmanr(basal[0] + change[0],
                                                            basal[0] + predicted_change[0]).statistic)
    # k = 1: the most up-regulated gene (0) and the most down-regulated gene (1) are both predicted
    row = expression_metrics(basal + change, basal + predicted_change, basal, n_degs=2, k=1).iloc[0]
    assert row["precision_up"] == 1.0 and row["precision_down"] == 1.0
    # top 2 DEGs: changes 3, -2 (mean 1/2, SS_tot = 12.5), predicted 2, -2 -> SS_res = 1
    assert row["r2_top_degs"] == pytest.approx(1 - 1 / 12.5)


def test_degs_are_chosen_by_measured_change_not_prediction():
    basal = np.zeros((1, 5))
    change = np.array([[4.0, -3.0, 0.1, 0.2, -0.3]])
    # wildly wrong on the small changes, exact on the two DEGs
    predicted_change = np.array([[4.0, -3.0, 9.0, -9.0, 9.0]])
    row = expression_metrics(change, predicted_change, basal, n_degs=2, k=2).iloc[0]
    assert row["r2_top_degs"] == pytest.approx(1.0)
    assert expression_metrics(change, predicted_change, basal, n_degs=3, k=2).iloc[0]["r2_top_degs"] < 0


def test_rows_are_independent():
    expression, basal = synthetic(n=6)
    rng = np.random.default_rng(1)
    predicted = expression + rng.normal(0, 0.7, size=expression.shape)
    together = expression_metrics(expression, predicted, basal, n_degs=25, k=15)
    for i in range(6):
        alone = expression_metrics(expression[i:i + 1], predicted[i:i + 1], basal[i:i + 1], n_degs=25, k=15)
        np.testing.assert_allclose(alone.iloc[0].to_numpy(), together.iloc[i].to_numpy())
    assert (together["precision_up"] > 0).all() and (together["precision_up"] < 1).all()


@pytest.mark.parametrize("seed", range(3))
def test_spearman_rows_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(7, 40))
    b = a + rng.normal(size=(7, 40))
    # integer values make ties, which both average
    a_ties, b_ties = np.round(a * 2), np.round(b * 2)
    for x, y in ((a, b), (a_ties, b_ties)):
        expected = [stats.spearmanr(x[i], y[i]).statistic for i in range(len(x))]
        np.testing.assert_allclose(spearman_rows(x, y), expected, rtol=1e-12, atol=1e-12)


def test_spearman_rows_broadcasts_one_reference_row():
    rng = np.random.default_rng(3)
    a, reference = rng.normal(size=(4, 30)), rng.normal(size=30)
    expected = [stats.spearmanr(a[i], reference).statistic for i in range(4)]
    np.testing.assert_allclose(spearman_rows(a, reference), expected, rtol=1e-12)
    # monotone transforms do not change ranks
    np.testing.assert_allclose(spearman_rows(np.exp(a), reference ** 3), expected, rtol=1e-12)
    np.testing.assert_allclose(spearman_rows(a, a), 1.0)
    np.testing.assert_allclose(spearman_rows(a, -a), -1.0)
