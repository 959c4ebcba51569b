"""The diffusion chapter's protocol (diffusion, PRnet-style encoder-decoder, baselines) on the tiny dataset of
test_l1000, with a stand-in for the simulator's truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perturbx.datasets.cmap import N_LANDMARKS
from perturbx.experiments import generative, l1000
from perturbx.experiments.l1000 import L1000Batch
from perturbx.models.diffusion import ConditionalDiffusion
from perturbx.models.encoder_decoder import (
    UNKNOWN_DOSE_UM,
    EncoderDecoderConfig,
    PerturbationEncoderDecoder,
    dose_scale,
    encoder_decoder_loss,
)

from .test_l1000 import tiny_data, with_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")

POINT_MODELS = ("no_change", "cell_line_mean", "ridge")


@pytest.fixture(scope="module")
def inputs() -> l1000.Inputs:
    return l1000.build_inputs(tiny_data(), fingerprint_bits=256)


class TinyTruth(l1000.Truth):
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


def test_models_by_id_and_role():
    assert generative.MODELS.ids() == [*POINT_MODELS, "encoder_decoder", "encoder_decoder_gaussian", "diffusion",
                                       "true_distribution"]
    assert generative.MODELS.ids("baseline") == list(POINT_MODELS)
    assert generative.GENERATIVE_MODELS == ("encoder_decoder", "encoder_decoder_gaussian", "diffusion")
    assert "true_distribution" not in generative.DEFAULT_MODELS
    assert generative.MODELS.label("encoder_decoder") == "encoder-decoder (PRnet-style)"


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
    # the loss reads a typed batch: the encoder-decoder takes dose_scale (b, 1), not the standardised dose (b, 2)
    compound, basal, scale, time = condition
    target = torch.zeros(2, 20)
    batch = L1000Batch(compound, basal, torch.full((2, 2), 5.0), time, scale, target)
    losses = encoder_decoder_loss(model, batch)
    assert torch.isfinite(losses["loss"]) and set(losses) == {"loss", "mse"}
    model.eval()  # the loss then draws its noise from a fixed generator
    mean, variance = model(*condition, generator=torch.Generator().manual_seed(0))
    losses = encoder_decoder_loss(model, batch)
    torch.testing.assert_close(losses["mse"], torch.nn.functional.mse_loss(mean, target))
    torch.testing.assert_close(losses["loss"], torch.nn.functional.gaussian_nll_loss(mean, target, variance))


def test_target_scaler_uses_training_rows_only(inputs):
    train = np.arange(24)
    prepared = generative.prepare(inputs, train)
    change = inputs.data.change
    np.testing.assert_allclose(prepared.scaler.mean, change[train].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prepared.scaler.inverse(prepared.scaler.transform(change)), change, atol=1e-5)
    altered = tiny_data()
    altered.expression[24:] += 50.0  # test targets must not move the scaler
    again = generative.prepare(with_data(inputs, altered), train)
    np.testing.assert_array_equal(again.scaler.mean, prepared.scaler.mean)
    np.testing.assert_array_equal(again.scaler.sd, prepared.scaler.sd)
    np.testing.assert_array_equal(again.features.basal, prepared.features.basal)  # l1000.prepare on the same rows


def test_training_batch_targets_the_standardised_change(inputs):
    prepared = generative.prepare(inputs, np.arange(24))
    rows = np.array([3, 30, 12])
    found = generative.training_batch(inputs, prepared, rows)
    assert isinstance(found, L1000Batch)
    np.testing.assert_allclose(found.target.numpy(), prepared.scaler.transform(inputs.data.change[rows]))
    np.testing.assert_array_equal(found.dose_scale.numpy(), prepared.features.dose_scale[rows])
    assert found.compound.tolist() == inputs.compound_index[rows].tolist()


def test_fit_generative_rejects_an_unknown_network(inputs):
    split = l1000.make_split(inputs, "random", seed=0)
    with pytest.raises(ValueError, match="unknown generative network 'gan'; use one of diffusion, encoder_decoder"):
        generative.fit_generative(inputs, generative.prepare(inputs, split.train), split,
                                  generative.GenerativeSettings.smoke(), seed=0, network="gan")


def test_test_conditions_group_replicates(inputs):
    data = tiny_data()
    data.metadata["condition_id"] = ["C" + str(i // 2) for i in range(len(data))]  # pairs of profiles
    grouped = generative.test_conditions(with_data(inputs, data), np.array([5, 1, 0, 4, 8]))
    assert grouped["condition"].tolist() == ["C2", "C0", "C4"]
    assert [m.tolist() for m in grouped["members"]] == [[5, 4], [1, 0], [8]]
    assert grouped["row"].tolist() == [5, 1, 8]


@pytest.fixture(scope="module")
def smoke_result(inputs):
    settings = generative.GenerativeSettings.smoke()
    split = l1000.make_split(inputs, "random", seed=0, test_size=0.3, val_size=0.15)
    return generative.run_split(inputs, split, settings, seed=0, truth=TinyTruth(inputs.data))


def test_run_split_scores_every_model(smoke_result):
    accuracy, distribution, label = smoke_result.metrics, smoke_result.distribution, generative.MODELS.label
    ids = [*generative.DEFAULT_MODELS, "true_distribution"]
    assert list(smoke_result.outputs) == ids
    expected = set(generative.MODELS.labels(ids))
    assert set(accuracy["model"]) == set(distribution["model"]) == expected
    for _, part in accuracy.groupby("model"):
        assert sorted(part["row"]) == sorted(smoke_result.split.test)
    for _, part in distribution.groupby("model"):
        assert len(part) == len(smoke_result.conditions)
    for model_id, prediction in smoke_result.predictions.items():
        assert prediction.shape == (len(smoke_result.conditions), N_LANDMARKS), model_id
    point = distribution[distribution["model"].isin(generative.MODELS.labels(POINT_MODELS))]
    assert len(point) == 3 * len(smoke_result.conditions)
    assert point["spread_ratio"].isna().all() and point["variance_r2"].isna().all()  # one point has no spread
    oracle = distribution[distribution["model"] == label("true_distribution")]
    assert oracle["spread_ratio"].between(0.8, 1.2).all()
    assert abs(oracle["energy_distance_true"].mean()) < 0.5 < distribution.loc[
        distribution["model"] == label("no_change"), "energy_distance_true"].mean()
    # one network per kind: the encoder-decoder is trained once for both of its samplers
    assert set(smoke_result.models) == set(generative.GENERATIVE_MODELS)
    assert smoke_result.models["encoder_decoder_gaussian"] is smoke_result.models["encoder_decoder"]
    assert set(smoke_result.fits) == {"diffusion", "encoder_decoder"}
    assert isinstance(smoke_result.models["diffusion"], ConditionalDiffusion)
    assert smoke_result.models["diffusion"].x0_limit < np.inf
    for model_id in generative.GENERATIVE_MODELS:
        assert smoke_result.outputs[model_id].extra["sampling_seconds"] > 0
    assert smoke_result.prepared is smoke_result.context.prepared


def test_point_prediction_energy_score_is_its_euclidean_error(inputs, smoke_result):
    conditions = smoke_result.conditions
    change = smoke_result.predictions["ridge"]
    scores = generative.score_samples(change[:, None], conditions, inputs.data, generative.Reference())
    first = conditions["row"].to_numpy()
    errors = np.linalg.norm(inputs.data.basal[first] + change - inputs.data.expression[first], axis=1)
    np.testing.assert_allclose(scores["energy_score"], errors, rtol=1e-5)
    # without a truth or a reference SD, the other distribution metrics are undefined
    assert scores[list(generative.DISTRIBUTION_METRICS[1:])].isna().all().all()


def test_spread_ratio_against_a_reference_sd_on_real_data(inputs, smoke_result):
    conditions = smoke_result.conditions
    samples = np.random.default_rng(0).normal(0, 0.2, (len(conditions), 50, N_LANDMARKS))
    scores = generative.score_samples(samples, conditions, inputs.data,
                                      generative.Reference(reference_sd=np.full(N_LANDMARKS, 0.1)))
    np.testing.assert_allclose(scores["spread_ratio"], 2.0, rtol=0.1)
    assert scores["variance_r2"].isna().all() and scores["energy_distance_true"].isna().all()


def test_draw_samples_a_trained_model_as_the_tables_do(inputs, smoke_result):
    first = smoke_result.conditions["row"].to_numpy()
    cells = inputs.data.metadata["cell_id"].to_numpy()[first]
    rows = np.array([first[0], first[np.flatnonzero(cells != cells[0])[0]]])  # two cell lines
    drawn = generative.draw(smoke_result, inputs, "diffusion", rows, n=3, seed=1)
    assert drawn.shape == (2, 3, N_LANDMARKS)
    np.testing.assert_array_equal(generative.draw(smoke_result, inputs, "diffusion", rows, n=3, seed=1), drawn)
    # basal + the change generated with the split's sampler (DDIM, the split's steps and guidance)
    settings = smoke_result.context.settings
    (_, change), = generative.generate(smoke_result.models["diffusion"], inputs, smoke_result.prepared, rows, 3,
                                       seed=1, max_batch=6, method="ddim", steps=settings.ddim_steps,
                                       guidance=settings.guidance)
    np.testing.assert_allclose(drawn, inputs.data.basal[rows][:, None] + change, rtol=1e-6)
    assert np.abs(drawn.mean(axis=1) - inputs.data.basal[rows]).mean() < \
        np.abs(drawn.mean(axis=1) - inputs.data.basal[rows[::-1]]).mean()
    gaussian = generative.draw(smoke_result, inputs, "encoder_decoder_gaussian", rows, n=3)
    assert gaussian.shape == (2, 3, N_LANDMARKS)
    with pytest.raises(ValueError, match="'ridge' does not sample"):
        generative.draw(smoke_result, inputs, "ridge", rows, n=3)


def test_sweeps_and_tables(inputs, smoke_result):
    settings = generative.GenerativeSettings.smoke()
    sweep = generative.guidance_sweep(smoke_result, inputs, [0.0, 2.0], max_conditions=3)
    assert sweep["guidance"].tolist() == [0.0, 2.0] and sweep["pearson_change"].notna().all()
    assert sweep["energy_distance_true"].notna().all()  # the split's truth is the reference
    samplers = generative.sampler_comparison(smoke_result, inputs, [("ddpm", 0), ("ddim", 5)], max_conditions=2)
    assert samplers["sampler"].tolist() == ["DDPM", "DDIM"]
    assert samplers["steps"].tolist() == [settings.diffusion.n_steps, 5]
    assert (samplers["seconds per 1,000 profiles"] > 0).all()
    runs, results = generative.run_experiments(inputs, ["unseen compound"], [0, 1], settings,
                                               models=["ridge", "encoder_decoder"], progress=False)
    assert set(results) == {("unseen compound", 0), ("unseen compound", 1)}
    assert set(runs["model"]) == {"ridge", "encoder-decoder (PRnet-style)"}
    table = generative.results_table(runs)
    assert (table["runs"] == 2).all() and "variance_r2" not in table.columns  # no truth: NaN metrics left out
    assert "energy_score" in table.columns
    with pytest.raises(ValueError, match="unknown model 'gan' in the generative experiments; use one of no_change"):
        generative.run_split(inputs, results[("unseen compound", 0)].split, settings, 0, models=["gan"])


def test_verdict_and_spread_lines_name_the_models_by_label(smoke_result):
    runs = generative.summarise(smoke_result).assign(split="random", seed=0)
    table = generative.results_table(runs)
    values = table.droplevel("split")
    (verdict,) = generative.verdict_lines(table, "tiny")
    assert verdict.startswith(f"tiny, random: diffusion Pearson of change "
                              f"{values.loc['diffusion', 'pearson_change_mean']:.3f}")
    for other in ("training mean per cell line", "ridge", "encoder-decoder (PRnet-style)"):
        assert f"{other} ({values.loc[other, 'pearson_change_mean']:.3f})" in verdict
    (spread,) = generative.spread_lines(table, "tiny", "true SD")
    for model_id in generative.GENERATIVE_MODELS:
        label = generative.MODELS.label(model_id)
        assert f"{label} {values.loc[label, 'spread_ratio_mean']:.2f}" in spread
