"""The diffusion chapter's protocol (diffusion, PRnet-style encoder-decoder, baselines) on the tiny dataset of
test_l1000, with a stand-in for the simulator's truth."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from perturbx.datasets.cmap import N_LANDMARKS
from perturbx.evaluation import distributions, replicates
from perturbx.models import generative as generative_models
from perturbx.models.diffusion import ConditionalDiffusion
from perturbx.models.encoder_decoder import EncoderDecoderConfig, PerturbationEncoderDecoder, encoder_decoder_loss
from perturbx.runtime import parallel_jobs
from perturbx.splits import Split
from perturbx.studies import generative, generative_claims
from perturbx.tasks import l1000
from perturbx.tasks.l1000 import UNKNOWN_DOSE_UM, L1000Batch, dose_scale

from ..tasks.test_l1000 import plate_data, tiny_data, with_data

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
    assert generative.MODELS.ids() == [*POINT_MODELS, "marginal_draws", "encoder_decoder",
                                       "encoder_decoder_gaussian", "diffusion", "diffusion_deterministic",
                                       "true_distribution", "replicate_ceiling"]
    assert generative.MODELS.ids("oracle") == ["true_distribution", "replicate_ceiling"]
    assert generative.MODELS.ids("baseline") == [*POINT_MODELS, "marginal_draws"]
    assert generative.GENERATIVE_MODELS == ("encoder_decoder", "encoder_decoder_gaussian", "diffusion")
    assert "true_distribution" not in generative.DEFAULT_MODELS
    assert "replicate_ceiling" not in generative.DEFAULT_MODELS
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
    prepared = l1000.prepare_generative(inputs, train)
    change = inputs.data.change
    np.testing.assert_allclose(prepared.scaler.mean, change[train].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prepared.scaler.inverse(prepared.scaler.transform(change)), change, atol=1e-5)
    altered = tiny_data()
    altered.expression[24:] += 50.0  # test targets must not move the scaler
    again = l1000.prepare_generative(with_data(inputs, altered), train)
    np.testing.assert_array_equal(again.scaler.mean, prepared.scaler.mean)
    np.testing.assert_array_equal(again.scaler.sd, prepared.scaler.sd)
    np.testing.assert_array_equal(again.features.basal, prepared.features.basal)  # l1000.prepare on the same rows


def test_training_batch_targets_the_standardised_change(inputs):
    prepared = l1000.prepare_generative(inputs, np.arange(24))
    rows = np.array([3, 30, 12])
    found = l1000.generative_batch(inputs, prepared, rows)
    assert isinstance(found, L1000Batch)
    np.testing.assert_allclose(found.target.numpy(), prepared.scaler.transform(inputs.data.change[rows]))
    np.testing.assert_array_equal(found.dose_scale.numpy(), prepared.features.dose_scale[rows])
    assert found.compound.tolist() == inputs.compound_index[rows].tolist()


def test_an_unknown_generative_network_is_refused():
    with pytest.raises(ValueError, match="unknown generative network 'gan'; use one of diffusion, encoder_decoder"):
        generative.generative_estimator("gan", generative.GenerativeSettings.smoke())


def test_test_conditions_group_replicates(inputs):
    data = tiny_data()
    data.metadata["condition_id"] = ["C" + str(i // 2) for i in range(len(data))]  # pairs of profiles
    grouped = l1000.test_conditions(with_data(inputs, data), np.array([5, 1, 0, 4, 8]))
    assert grouped["condition"].tolist() == ["C2", "C0", "C4"]
    assert [m.tolist() for m in grouped["members"]] == [[5, 4], [1, 0], [8]]
    assert grouped["row"].tolist() == [5, 1, 8]


@pytest.fixture(scope="module")
def smoke_result(inputs):
    settings = generative.GenerativeSettings.smoke()
    split = l1000.make_split(inputs, "random", seed=0, test_size=0.3, val_size=0.15)
    return generative.run_split(inputs, split, settings, seed=0, truth=TinyTruth(inputs.data))


def test_run_split_scores_every_model(smoke_result):
    accuracy, distribution = smoke_result.metrics, smoke_result.distribution
    ids = [*generative.DEFAULT_MODELS, "true_distribution"]
    assert list(smoke_result.outputs) == ids
    assert set(accuracy["model"]) == set(distribution["model"]) == set(ids)  # model ids, never labels
    assert set(generative.summarise(smoke_result)["model"]) == set(ids)
    for _, part in accuracy.groupby("model"):
        assert sorted(part["row"]) == sorted(smoke_result.split.test)
    for _, part in distribution.groupby("model"):
        assert len(part) == len(smoke_result.conditions)
    for model_id, prediction in smoke_result.predictions.items():
        assert prediction.shape == (len(smoke_result.conditions), N_LANDMARKS), model_id
    point = distribution[distribution["model"].isin(POINT_MODELS)]
    assert len(point) == 3 * len(smoke_result.conditions)
    assert point["spread_ratio"].isna().all() and point["variance_r2"].isna().all()  # one point has no spread
    deterministic = distribution[distribution["model"] == "diffusion_deterministic"]
    assert len(deterministic) == len(smoke_result.conditions) and deterministic["spread_ratio"].isna().all()
    oracle = distribution[distribution["model"] == "true_distribution"]
    assert oracle["spread_ratio"].between(0.8, 1.2).all()
    assert abs(oracle["energy_distance_true"].mean()) < 0.5 < distribution.loc[
        distribution["model"] == "no_change", "energy_distance_true"].mean()
    # one network per kind: the encoder-decoder is trained once for both of its samplers
    assert set(smoke_result.models) == set(generative.MODELS.ids("learned"))
    assert smoke_result.models["encoder_decoder_gaussian"] is smoke_result.models["encoder_decoder"]
    assert set(smoke_result.fits) == {"diffusion", "encoder_decoder"}  # one network per kind
    assert isinstance(smoke_result.models["diffusion"], ConditionalDiffusion)
    assert smoke_result.models["diffusion"].x0_limit < np.inf
    for model_id in generative.GENERATIVE_MODELS:
        assert smoke_result.outputs[model_id].sampling_seconds > 0
    assert smoke_result.prepared is smoke_result.context.prepared


def test_point_prediction_energy_score_is_its_euclidean_error(inputs, smoke_result):
    conditions = smoke_result.conditions
    change = smoke_result.predictions["ridge"]
    scores = distributions.score_samples(change[:, None], conditions, inputs.data, distributions.Reference())
    first = conditions["row"].to_numpy()
    errors = np.linalg.norm(inputs.data.basal[first] + change - inputs.data.expression[first], axis=1)
    np.testing.assert_allclose(scores["energy_score"], errors, rtol=1e-5)
    # without a truth or a reference SD, the other distribution metrics are undefined
    assert scores[list(distributions.DISTRIBUTION_METRICS[1:])].isna().all().all()


def test_spread_ratio_against_a_reference_sd_on_real_data(inputs, smoke_result):
    conditions = smoke_result.conditions
    samples = np.random.default_rng(0).normal(0, 0.2, (len(conditions), 50, N_LANDMARKS))
    scores = distributions.score_samples(samples, conditions, inputs.data,
                                      distributions.Reference(reference_sd=np.full(N_LANDMARKS, 0.1)))
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
    assert set(runs["model"]) == {"ridge", "encoder_decoder"}
    table = generative.results_table(runs)
    assert (table["runs"] == 2).all() and "variance_r2" not in table.columns  # no truth: NaN metrics left out
    assert "energy_score" in table.columns
    with pytest.raises(ValueError, match="unknown model 'gan' in the generative experiments; use one of no_change"):
        generative.run_split(inputs, results[("unseen compound", 0)].split, settings, 0, models=["gan"])


def test_verdict_lines_compare_paired_seeds_and_spread_lines_name_the_models(smoke_result):
    one = generative.summarise(smoke_result).assign(split="random", seed=0)
    runs = pd.concat([one.assign(seed=s, pearson_change=one["pearson_change"] + 0.01 * s) for s in range(3)])
    (verdict,) = generative_claims.verdict_lines(runs, "tiny", "energy_distance_true")
    diffusion = one.set_index("model").loc["diffusion", "pearson_change"]
    assert verdict.startswith(f"tiny, random: diffusion Pearson of change {diffusion + 0.01:.3f}; it ")
    for other in ("training mean per cell line", "ridge", "encoder-decoder (PRnet-style)",
                  "encoder-decoder + Gaussian draws", "random training changes"):
        assert other in verdict
    assert "better in" in verdict and "of 3)" in verdict  # paired over the 3 seeds
    (single,) = generative_claims.verdict_lines(one, "tiny")
    assert "cannot be compared with" in single  # one seed decides nothing
    table = generative.results_table(runs)
    values = table.droplevel("split")
    (spread,) = generative_claims.spread_lines(table, "tiny", "true SD")
    for model_id in generative.GENERATIVE_MODELS:  # the table is indexed by id, the sentence names labels
        label = generative.MODELS.label(model_id)
        assert f"{label} {values.loc[model_id, 'spread_ratio_mean']:.2f}" in spread
    assert "encoder_decoder" not in spread and "encoder_decoder" not in verdict
    assert values.loc["diffusion", "best_epoch_mean"] >= 1 and np.isnan(values.loc["ridge", "best_epoch_mean"])


def test_marginal_draws_are_training_changes_of_the_cell_line(inputs, smoke_result):
    context = smoke_result.context
    output = smoke_result.outputs["marginal_draws"]
    assert output.prediction.shape == (len(smoke_result.conditions), N_LANDMARKS)
    rerun = generative._marginal_draws(context, output.seed)
    np.testing.assert_allclose(rerun.prediction, output.prediction)
    train_changes = {tuple(np.round(row, 5)) for row in inputs.data.change[smoke_result.split.train]}
    # the mean of draws from the training changes lies inside their range, and the draws have spread
    assert output.distribution["spread_ratio"].gt(0).all()
    assert len(train_changes) == len(smoke_result.split.train)


def test_fewest_steps_picks_the_smallest_ddim_within_tolerance():
    samplers = pd.DataFrame({"sampler": ["DDPM", "DDIM", "DDIM", "DDIM"], "steps": [1000, 20, 10, 5],
                             "pearson_change": [0.50, 0.505, 0.495, 0.40],
                             "energy_distance_true": [10.0, 10.1, 10.15, 12.0]})
    table = generative_claims.fewest_steps(samplers)
    assert table["within tolerance"].tolist() == [True, True, False]
    assert table.loc[table["fewest within tolerance"], "steps"].tolist() == [10]
    with pytest.raises(ValueError, match="exactly one DDPM row"):
        generative_claims.fewest_steps(samplers.iloc[1:])


def test_budgets_are_counted_in_optimiser_steps_on_small_sets(inputs, monkeypatch):
    settings = generative.GenerativeSettings.smoke()
    settings.min_patience_steps, settings.min_steps = 40, 30
    settings.diffusion_fit.epochs, settings.diffusion_fit.early_stopping_patience = 2, 1
    split = l1000.make_split(inputs, "random", seed=0, test_size=0.3, val_size=0.15)
    steps_per_epoch = -(-len(split.train) // settings.diffusion_fit.batch_size)
    seen = {}
    monkeypatch.setattr(generative_models, "fit",
                        lambda model, loss, train, val, config: seen.setdefault("config", config))
    generative.generative_estimator("diffusion", settings).fit(inputs.fold(split, standardise_target=True), 0)
    assert seen["config"].epochs == max(2, -(-30 // steps_per_epoch))
    assert seen["config"].early_stopping_patience == max(1, -(-40 // steps_per_epoch)) > 1


# ------------------------------------------------------------------------------ real replicates (a plate)

@pytest.fixture(scope="module")
def plate_inputs() -> l1000.Inputs:
    return l1000.build_inputs(plate_data(n_replicates=4, noise=0.5), fingerprint_bits=256)


def test_pooled_replicate_sd_pools_within_condition_spread(plate_inputs):
    data = plate_inputs.data
    conditions = l1000.test_conditions(plate_inputs, np.arange(len(data)))
    sd = distributions.pooled_replicate_sd(data, conditions)
    assert sd.shape == (N_LANDMARKS,)
    assert np.median(sd) == pytest.approx(0.5, rel=0.05)  # the wells' noise, not the spread between conditions
    expected = np.sqrt(sum(((data.change[m] - data.change[m].mean(0)) ** 2).sum(0) for m in conditions["members"])
                       / (len(data) - len(conditions)))
    np.testing.assert_allclose(sd, expected, rtol=1e-5)
    single = l1000.test_conditions(with_data(plate_inputs, data), np.arange(0, len(data), 4))  # one each
    assert distributions.pooled_replicate_sd(data, single) is None


def test_samples_like_the_replicates_score_as_the_replicates(plate_inputs):
    data = plate_inputs.data
    conditions = l1000.test_conditions(plate_inputs, np.arange(len(data)))
    reference = distributions.Reference(reference_sd=np.full(N_LANDMARKS, 0.05),
                                     replicate_sd=distributions.pooled_replicate_sd(data, conditions))
    rng = np.random.default_rng(1)
    mean = plate_data(n_replicates=4, noise=0.0).change[conditions["row"]]  # the true mean change (same seed)
    same = mean[:, None] + rng.normal(0, 0.5, (len(conditions), 64, N_LANDMARKS))  # the replicates' distribution
    narrow = mean[:, None] + rng.normal(0, 0.1, (len(conditions), 64, N_LANDMARKS))
    scores = distributions.score_samples(same, conditions, data, reference)
    too_narrow = distributions.score_samples(narrow, conditions, data, reference)
    point = distributions.score_samples(mean[:, None], conditions, data, reference)
    assert abs(scores["energy_distance"].mean()) < 1.0 < too_narrow["energy_distance"].mean()
    assert point["energy_distance"].mean() > too_narrow["energy_distance"].mean()  # defined for one sample
    np.testing.assert_allclose(scores["spread_ratio"], 1.0, atol=0.1)  # the replicate SD, not the DMSO SD
    np.testing.assert_allclose(too_narrow["spread_ratio"], 0.2, atol=0.03)
    assert scores["variance_r2"].mean() > too_narrow["variance_r2"].mean()
    assert point[["spread_ratio", "variance_r2"]].isna().all().all()  # a point has no spread
    assert scores["energy_distance_true"].isna().all()  # no simulator


def test_replicate_ceiling_row_on_real_replicates(plate_inputs):
    settings = generative.GenerativeSettings.smoke()
    split = l1000.make_split(plate_inputs, "held-out dose", seed=0)
    result = generative.run_split(plate_inputs, split, settings, seed=0, models=["no_change", "ridge"])
    assert list(result.outputs) == ["no_change", "ridge", "replicate_ceiling"]
    model_id = "replicate_ceiling"
    ceiling = result.metrics[result.metrics["model"] == model_id]
    assert sorted(ceiling["row"]) == sorted(split.test)
    data = plate_inputs.data
    groups = l1000.condition_groups(data.metadata.iloc[split.test])
    expected = replicates.leave_one_out_ceiling(data.change[split.test], groups)
    found = ceiling.set_index("row").loc[split.test[expected["position"]], "pearson_change"]
    np.testing.assert_allclose(found, expected["pearson_change"], rtol=1e-5)
    assert result.distribution.loc[result.distribution["model"] == model_id,
                                   list(distributions.DISTRIBUTION_METRICS)].isna().all().all()
    assert result.distribution.loc[result.distribution["model"] == "ridge", "energy_distance"].notna().all()
    assert result.context.reference.replicate_sd is not None
    table = generative.summarise(result)
    assert model_id in set(table["model"])


def test_replicate_ceiling_is_one_on_noise_free_replicates(plate_inputs):
    exact = plate_data(n_replicates=3, noise=0.0)
    inputs = with_data(plate_inputs, exact)
    split = l1000.make_split(inputs, "held-out time", seed=0)
    result = generative.run_split(inputs, split, generative.GenerativeSettings.smoke(), seed=0,
                                  models=["replicate_ceiling"])
    np.testing.assert_allclose(result.metrics["pearson_change"], 1.0, atol=1e-5)
    simulated = generative.run_split(inputs, split, generative.GenerativeSettings.smoke(), seed=0,
                                     models=["no_change"], truth=TinyTruth(exact))
    assert list(simulated.outputs) == ["no_change", "true_distribution"]  # the simulator keeps its own oracle
    assert simulated.context.reference.replicate_sd is None
    one_each = Split(split.train, split.val, split.test[::3], split.kind)  # one replicate per test condition
    assert distributions.pooled_replicate_sd(exact, l1000.test_conditions(inputs, one_each.test)) is None
    with pytest.raises(ValueError, match="the replicate ceiling needs test conditions with 2 or more replicates"):
        generative.run_split(inputs, one_each, generative.GenerativeSettings.smoke(), seed=0,
                             models=["replicate_ceiling"])


def test_diffusion_chooses_its_temperature_on_validation_conditions(inputs):
    settings = generative.GenerativeSettings.smoke()
    settings.temperatures = (0.0, 1.0)
    split = l1000.make_split(inputs, "random", seed=0, test_size=0.3, val_size=0.15)
    result = generative.run_split(inputs, split, settings, seed=0, models=["diffusion"])
    output = result.outputs["diffusion"]
    choice = output.choice_table
    assert choice["temperature"].tolist() == [0.0, 1.0]
    assert output.chosen["temperature"] == choice.loc[choice["value"].idxmin(), "temperature"]
    summary = generative.summarise(result).set_index("model")
    assert summary.loc["diffusion", "temperature"] == output.chosen["temperature"]


def test_temperature_sweep_shows_the_spread_trade_off(inputs, smoke_result):
    sweep = generative.temperature_sweep(smoke_result, inputs, [0.0, 1.0], max_conditions=3)
    assert sweep["temperature"].tolist() == [0.0, 1.0]
    assert sweep.loc[0, "spread_ratio"] < 1e-3 < sweep.loc[1, "spread_ratio"]  # DDIM at 0: one point per condition


def test_decide_claims_follow_the_paired_runs():
    rows = []
    for split in ("random", "held-out dose"):
        for seed in range(3):
            for model, distance, r in [("diffusion", 1.0, 0.30), ("encoder_decoder", 2.0, 0.32),
                                       ("encoder_decoder_gaussian", 0.9 + 0.01 * seed, 0.2),
                                       ("marginal_draws", 1.5, 0.05), ("cell_line_mean", np.nan, 0.1 + 0.01 * seed)]:
                rows.append({"split": split, "seed": seed, "model": model, "energy_distance": distance,
                             "energy_distance_true": distance, "pearson_change": r + 0.001 * seed})
    runs = pd.DataFrame(rows)
    steps = pd.DataFrame({"sampler": ["DDIM", "DDIM"], "steps": [20, 10], "fewest within tolerance": [False, True]})
    found = generative_claims.decide_claims(runs, runs, steps, "toy")
    assert [c.verdict for c in found] == ["holds", "partly", "holds", "holds"]
    assert [c.id for c in found] == ["spread_beats_encoder_decoder", "spread_beats_cheaper_sources",
                                     "mean_beats_cell_line_mean", "few_step_ddim"]
    # the runs hold ids; the evidence names the models by label
    assert found[0].evidence[0].text.startswith(
        "real replicates, random: diffusion beats encoder-decoder (PRnet-style) in energy_distance")
    assert "training mean per cell line in pearson_change" in found[2].evidence[0].text
    assert not any("encoder_decoder" in e.text or "cell_line_mean" in e.text for c in found for e in c.evidence)
    assert "10" in found[3].evidence[0].text
    none = generative_claims.decide_claims(runs, runs, steps.assign(**{"fewest within tolerance": False}), "toy")
    assert none[3].verdict == "does not hold"


def test_the_settings_describe_themselves_for_the_chapter():
    settings = generative.GenerativeSettings.smoke()
    text = settings.describe()
    assert text.startswith(f"diffusion: {settings.diffusion}\n")
    assert f"DDIM {settings.ddim_steps} steps, guidance {settings.guidance}" in text


def test_two_workers_give_the_runs_of_one(inputs, jobs_workers):
    """As in the graph-model study: splits x seeds run as parallel jobs in quick and full, with the same runs."""
    settings = generative.GenerativeSettings.smoke()
    assert settings.workers == 1 and generative.GenerativeSettings.quick().workers == parallel_jobs("cpu")
    models = ["ridge", "encoder_decoder", "diffusion"]
    serial, _ = generative.run_experiments(inputs, ["random"], [0, 1], settings, models=models, progress=False)
    parallel, results = generative.run_experiments(inputs, ["random"], [0, 1], replace(settings, workers=2),
                                                   models=models, progress=False)
    pd.testing.assert_frame_equal(parallel.drop(columns="seconds"), serial.drop(columns="seconds"))
    assert jobs_workers == [1, 2]
    assert isinstance(results[("random", 1)].models["diffusion"], ConditionalDiffusion)  # the model came back
