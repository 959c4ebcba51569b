"""Generative experiments (diffusion, PRnet-style encoder-decoder, baselines) on the tiny dataset of
test_expression, with a stand-in for the simulator's truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perturbx import expression, generative
from perturbx.datasets.cmap import N_LANDMARKS
from perturbx.models.encoder_decoder import (UNKNOWN_DOSE_UM, EncoderDecoderConfig, PerturbationEncoderDecoder,
                                             dose_scale, encoder_decoder_loss)

from .test_expression import tiny_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def inputs() -> expression.Inputs:
    return expression.build_inputs(tiny_data(), fingerprint_bits=256)


class TinyTruth(generative.Truth):
    """Known moments of tiny_data: the generating change has SD 0.1 around its mean (aspirin at 10 µM: +2)."""

    def __init__(self, data):
        super().__init__(simulation=None, n_reference=16)
        self.data = data
        meta = data.metadata
        self.mean = np.zeros_like(data.change)
        self.mean[((meta["compound_id"] == "aspirin") & (meta["dose_um"] > 1)).to_numpy(), :10] = 2.0

    def moments(self, rows):
        return self.mean[rows], np.full((len(rows), N_LANDMARKS), 0.1, np.float32)

    def draws(self, rows, n, seed):
        rng = np.random.default_rng(seed)
        return (self.data.basal[rows][:, None] + self.mean[rows][:, None]
                + rng.normal(0, 0.1, (len(rows), n, N_LANDMARKS))).astype(np.float32)


def test_dose_scale_is_log1p_with_unknown_doses_at_one_micromolar():
    scale = dose_scale(np.array([0.0, 1.0, 9.0, np.nan, -666.0]))
    assert scale.shape == (5, 1)
    np.testing.assert_allclose(scale[:, 0], np.log1p([UNKNOWN_DOSE_UM, 1.0, 9.0, UNKNOWN_DOSE_UM, UNKNOWN_DOSE_UM]),
                               rtol=1e-6)


def test_encoder_decoder_shapes_variance_and_sampling():
    torch.manual_seed(0)
    model = PerturbationEncoderDecoder(np.eye(4, 32), n_genes=20, config=EncoderDecoderConfig(width=16, latent=8))
    condition = [torch.tensor([0, 3]), torch.randn(2, 20), torch.ones(2, 1), torch.zeros(2, 2)]
    mean, variance = model(*condition)
    assert mean.shape == variance.shape == (2, 20)
    assert (variance >= model.config.min_variance).all()
    plain = model.sample(*condition, n_samples=50, generator=torch.Generator().manual_seed(1))
    noisy = model.sample(*condition, n_samples=50, from_variance=True, generator=torch.Generator().manual_seed(1))
    assert plain.shape == noisy.shape == (2, 50, 20)
    assert noisy.std(dim=1).mean() > plain.std(dim=1).mean()
    again = model.sample(*condition, n_samples=50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain, again)
    losses = encoder_decoder_loss(model, [*condition, torch.zeros(2, 20)])
    assert torch.isfinite(losses["loss"]) and set(losses) == {"loss", "mse"}


def test_target_scaler_uses_training_rows_only(inputs):
    train = np.arange(24)
    prepared = generative.prepare(inputs, train)
    change = inputs.data.change
    np.testing.assert_allclose(prepared.scaler.mean, change[train].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prepared.scaler.inverse(prepared.scaler.transform(change)), change, atol=1e-5)
    altered = tiny_data()
    altered.expression[24:] += 50.0  # test targets must not move the scaler
    again = generative.prepare(expression.Inputs(altered, *[getattr(inputs, f) for f in
                                                             ("compounds", "compound_index", "graphs",
                                                              "fingerprints", "gene_graph")]), train)
    np.testing.assert_array_equal(again.scaler.mean, prepared.scaler.mean)
    np.testing.assert_array_equal(again.scaler.sd, prepared.scaler.sd)


def test_test_conditions_group_replicates(inputs):
    data = tiny_data()
    data.metadata["condition_id"] = ["C" + str(i // 2) for i in range(len(data))]  # pairs of profiles
    grouped = generative.test_conditions(expression.Inputs(data, *[getattr(inputs, f) for f in
                                                                   ("compounds", "compound_index", "graphs",
                                                                    "fingerprints", "gene_graph")]),
                                         np.array([5, 1, 0, 4, 8]))
    assert grouped["condition"].tolist() == ["C2", "C0", "C4"]
    assert [m.tolist() for m in grouped["members"]] == [[5, 4], [1, 0], [8]]
    assert grouped["row"].tolist() == [5, 1, 8]


@pytest.fixture(scope="module")
def smoke_result(inputs):
    settings = generative.settings_for("smoke")
    split = expression.make_split(inputs, "random", seed=0, test_size=0.3, val_size=0.15)
    return generative.run_split(inputs, split, settings, seed=0, truth=TinyTruth(inputs.data))


def test_run_split_scores_every_model(smoke_result):
    accuracy, distribution = smoke_result.accuracy, smoke_result.distribution
    expected = set(generative.ALL_MODELS) | {generative.ORACLE}
    assert set(accuracy["model"]) == set(distribution["model"]) == expected
    for _, part in accuracy.groupby("model"):
        assert sorted(part["row"]) == sorted(smoke_result.split.test)
    for _, part in distribution.groupby("model"):
        assert len(part) == len(smoke_result.conditions)
    point = distribution[distribution["model"].isin(generative.POINT_MODELS)]
    assert point["spread_ratio"].isna().all() and point["variance_r2"].isna().all()  # one point has no spread
    oracle = distribution[distribution["model"] == generative.ORACLE]
    assert oracle["spread_ratio"].between(0.8, 1.2).all()
    assert abs(oracle["energy_distance_true"].mean()) < 0.5 < distribution.loc[
        distribution["model"] == "basal (no change)", "energy_distance_true"].mean()
    assert set(smoke_result.models) == {generative.DIFFUSION, generative.ENCODER_DECODER}
    assert smoke_result.models[generative.DIFFUSION].x0_limit < np.inf


def test_point_prediction_energy_score_is_its_euclidean_error(inputs, smoke_result):
    conditions = smoke_result.conditions
    change = smoke_result.sample_means["ridge"]
    scores = generative.score_samples(change[:, None], conditions, inputs.data)
    first = conditions["row"].to_numpy()
    errors = np.linalg.norm(inputs.data.basal[first] + change - inputs.data.expression[first], axis=1)
    np.testing.assert_allclose(scores["energy_score"], errors, rtol=1e-5)


def test_sweeps_and_tables(inputs, smoke_result):
    settings = generative.settings_for("smoke")
    sweep = generative.guidance_sweep(smoke_result, inputs, [0.0, 2.0], settings, max_conditions=3)
    assert sweep["guidance"].tolist() == [0.0, 2.0] and sweep["pearson_change"].notna().all()
    samplers = generative.sampler_comparison(smoke_result, inputs, [("ddpm", 0), ("ddim", 5)], settings,
                                             max_conditions=2)
    assert samplers["steps"].tolist() == [settings.diffusion.n_steps, 5]
    assert (samplers["seconds per 1,000 profiles"] > 0).all()
    runs, results = generative.run_experiments(inputs, ["unseen compound"], [0, 1], settings,
                                               models=["ridge", generative.ENCODER_DECODER], progress=False)
    table = generative.results_table(runs)
    assert (table["runs"] == 2).all() and "variance_r2" not in table.columns  # no truth: NaN metrics left out
    with pytest.raises(ValueError, match="unknown model"):
        generative.run_split(inputs, results[("unseen compound", 0)].split, settings, 0, models=["gan"])
