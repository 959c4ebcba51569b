"""Distribution metrics of generated profiles: energy distance and score, variance R², spread ratio."""

from __future__ import annotations

import numpy as np
import pytest

from perturbx.evaluation.metrics import energy_distance, energy_score, spread_ratio, variance_r2


def draws(n: int, shift: float = 0.0, sd: float = 1.0, seed: int = 0, dims: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, sd, (n, dims))


def test_energy_distance_is_about_zero_for_one_distribution_and_grows_with_a_shift():
    same = energy_distance(draws(400, seed=1), draws(300, seed=2))
    assert abs(same) < 0.05
    shifted = [energy_distance(draws(400, seed=1), draws(300, shift=s, seed=2)) for s in (0.5, 1.0, 2.0)]
    assert same < shifted[0] < shifted[1] < shifted[2]
    assert energy_distance(draws(400, sd=1.0, seed=1), draws(300, sd=2.0, seed=2)) > 0.2  # spread counts too


def test_energy_distance_v_statistic_and_symmetry():
    a, b = draws(50, seed=3), draws(40, shift=0.3, seed=4)
    assert energy_distance(a, b) == pytest.approx(energy_distance(b, a))
    assert energy_distance(a, a, unbiased=False) == pytest.approx(0.0, abs=1e-9)
    assert energy_distance(a, b, unbiased=False) > energy_distance(a, b)  # the V-statistic's positive bias
    # a point mass against a point: twice the distance between them
    assert energy_distance(np.zeros((1, 2)), np.array([[3.0, 4.0]])) == pytest.approx(10.0)


def test_energy_distance_rejects_mismatched_genes():
    with pytest.raises(ValueError, match="same genes"):
        energy_distance(draws(5, dims=3), draws(5, dims=4))


def test_energy_score_prefers_a_forecast_around_the_observation():
    observed = np.zeros(5)
    assert energy_score(draws(200, seed=5), observed) < energy_score(draws(200, shift=1.0, seed=5), observed)
    # a point forecast scores its Euclidean error; a forecast spread the right amount beats an overconfident one
    assert energy_score(np.array([[3.0, 4.0]]), np.zeros(2)) == pytest.approx(5.0)
    truth = draws(300, seed=6)
    wide = np.mean([energy_score(draws(200, seed=7), y) for y in truth])
    point = np.mean([energy_score(np.zeros((1, 5)), y) for y in truth])
    narrow = np.mean([energy_score(draws(200, sd=0.1, seed=7), y) for y in truth])
    assert wide < narrow and wide < point  # a proper score: the true distribution scores best


def test_variance_r2_and_spread_ratio():
    true_sd = np.linspace(0.2, 2.0, 30)
    samples = np.random.default_rng(8).normal(0, true_sd, (4000, 30))
    assert variance_r2(samples.var(axis=0, ddof=1), true_sd**2) > 0.95
    assert spread_ratio(samples, true_sd) == pytest.approx(1.0, abs=0.03)
    assert spread_ratio(0.5 * samples, true_sd) == pytest.approx(0.5, abs=0.02)
    assert variance_r2(np.zeros(30), true_sd**2) < 0  # no spread at all: worse than the mean variance
