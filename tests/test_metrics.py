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
