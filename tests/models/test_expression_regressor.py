"""scikit-learn regressors of expression changes (baselines of the drug-induced expression chapter)."""

import joblib
import numpy as np
import pytest
from sklearn.metrics import r2_score

from perturbx.models.classical import EXPRESSION_REGRESSORS, ExpressionRegressor

PCA_KINDS = ("random_forest", "gradient_boosting")
N_ESTIMATORS = 20


@pytest.fixture(autouse=True)
def threads_not_processes():
    """The regressors ask for n_jobs=-1; threads spare the tests starting a pool of worker processes."""
    with joblib.parallel_config(backend="threading"):
        yield


def linear_data(n: int = 120, features: int = 10, genes: int = 30, noise: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    design = rng.normal(size=(n, features))
    change = design @ rng.normal(size=(features, genes)) + noise * rng.normal(size=(n, genes))
    return design, change


def test_kinds():
    """Regressors are keyed by id; the label is what tables show."""
    assert EXPRESSION_REGRESSORS == {"ridge": "ridge", "random_forest": "random forest",
                                     "gradient_boosting": "gradient boosting", "mlp": "MLP"}


@pytest.mark.parametrize("kind", EXPRESSION_REGRESSORS)
def test_every_kind_predicts_every_gene_and_learns(kind):
    design, change = linear_data()
    model = ExpressionRegressor(kind, n_target_components=8, n_estimators=N_ESTIMATORS)
    assert model.fit(design[:90], change[:90]) is model
    predicted = model.predict(design[90:])
    assert predicted.shape == (30, 30) and np.isfinite(predicted).all()
    # even the trees, on 90 rows, beat predicting the training mean on held-out rows
    assert r2_score(change[90:], predicted) > 0.2
    assert model.predict(design[:1]).shape == (1, 30)
    if kind in PCA_KINDS:
        assert model.target_pca.n_components_ == 8
    else:  # all genes, no low-rank target: 30 held-out predictions span more than 8 directions
        assert model.target_pca is None
        assert np.linalg.matrix_rank(predicted - predicted.mean(axis=0), tol=1e-6) > 8
    # the same seed gives the same model (up to the summation order of threads averaging the forest's trees)
    again = ExpressionRegressor(kind, n_target_components=8, n_estimators=N_ESTIMATORS).fit(design[:90], change[:90])
    np.testing.assert_allclose(again.predict(design[90:]), predicted, rtol=1e-12, atol=1e-12)


def test_ridge_recovers_a_linear_signal():
    design, change = linear_data()
    model = ExpressionRegressor("ridge").fit(design[:90], change[:90])
    assert model.target_pca is None
    predicted = model.predict(design[90:])
    assert r2_score(change[90:], predicted) > 0.9
    # per gene too, not only on average
    assert min(r2_score(change[90:, g], predicted[:, g]) for g in range(30)) > 0.7


# one component: the forest is fitted on a column vector, which scikit-learn warns about (and ravels)
@pytest.mark.filterwarnings("ignore:A column-vector y was passed:sklearn.exceptions.DataConversionWarning")
@pytest.mark.parametrize("kind", PCA_KINDS)
@pytest.mark.parametrize("components", [1, 3])
def test_pca_kinds_predict_within_the_target_components(kind, components):
    design, change = linear_data()
    model = ExpressionRegressor(kind, n_target_components=components, n_estimators=N_ESTIMATORS)
    model.fit(design[:90], change[:90])
    assert model.target_pca.n_components_ == components
    np.testing.assert_allclose(model.target_pca.mean_, change[:90].mean(axis=0))  # fitted on training rows
    predicted = model.predict(design[90:])
    assert predicted.shape == (30, 30)
    centred = predicted - model.target_pca.mean_
    assert np.linalg.matrix_rank(centred, tol=1e-8 * np.abs(centred).max()) <= components


@pytest.mark.parametrize("kind", PCA_KINDS)
@pytest.mark.parametrize("rows, genes, expected", [(20, 30, 20), (120, 5, 5), (12, 8, 8)])
def test_pca_kinds_clamp_the_number_of_components(kind, rows, genes, expected):
    design, change = linear_data(n=rows, genes=genes)
    model = ExpressionRegressor(kind, n_target_components=32, n_estimators=N_ESTIMATORS).fit(design, change)
    assert model.target_pca.n_components_ == expected
    assert model.n_target_components == 32  # the request is kept; a later fit on more rows gets more components
    assert model.predict(design[:4]).shape == (4, genes)
    design, change = linear_data(n=200, genes=genes, seed=1)
    assert model.fit(design, change).target_pca.n_components_ == min(32, genes)


@pytest.mark.parametrize("kind", ["lasso", "Ridge", "", "MLP", "random forest"])  # labels are not ids
def test_unknown_kind(kind):
    with pytest.raises(ValueError, match="unknown regressor.*use one of ridge, random_forest, gradient_boosting, mlp"):
        ExpressionRegressor(kind)
