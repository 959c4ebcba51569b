"""Diffusion: noise schedules, the forward process, a toy 2-D distribution, guidance, DDIM vs DDPM, determinism."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

from perturbx.evaluation.metrics import energy_distance
from perturbx.models.diffusion import (
    ConditionalDiffusion,
    DiffusionConfig,
    NoiseSchedule,
    PerturbationConditioner,
    diffusion_loss,
    timestep_embedding,
)
from perturbx.tasks.l1000 import L1000Batch
from perturbx.training import FitConfig, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_schedule_properties(kind):
    schedule = NoiseSchedule(1000, kind)
    betas, alpha_bar = schedule.betas.double(), schedule.alpha_bar.double()
    assert ((betas > 0) & (betas < 1)).all()
    assert (alpha_bar[1:] < alpha_bar[:-1]).all()  # strictly more noise at every step
    assert alpha_bar[0] == pytest.approx(1 - float(betas[0]), rel=1e-6)
    assert float(alpha_bar[-1]) < 1e-3  # the last step is (nearly) pure noise
    assert torch.allclose(alpha_bar, torch.cumprod(1 - betas, 0).double(), rtol=1e-4)
    posterior = schedule.posterior_variance.double()
    assert posterior[0] == 0 and ((posterior[1:] > 0) & (posterior[1:] <= betas[1:] + 1e-7)).all()


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown noise schedule"):
        NoiseSchedule(10, "quadratic")
    with pytest.raises(ValueError, match="at least 2 steps"):
        NoiseSchedule(1)


def test_forward_process_matches_its_closed_form():
    """Iterating x_t = sqrt(1 - b_t) x_{t-1} + sqrt(b_t) e reaches N(sqrt(ab_t) x0, (1 - ab_t))."""
    schedule = NoiseSchedule(50, "linear")
    generator = torch.Generator().manual_seed(0)
    x0 = torch.tensor([3.0, -1.0]).expand(40_000, 2)
    x = x0.clone().double()
    for t in range(50):
        beta = schedule.betas[t].double()
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(x.shape, generator=generator, dtype=torch.float64)
        if t in (5, 25, 49):
            a = schedule.alpha_bar[t].double()
            assert torch.allclose(x.mean(0), a.sqrt() * x0[0].double(), atol=0.02)
            assert torch.allclose(x.var(0), (1 - a).expand(2), rtol=0.03)
    noise = torch.randn(4, 2, generator=generator)
    t = torch.tensor([0, 5, 25, 49])
    a = schedule.alpha_bar[t].unsqueeze(-1)
    assert torch.allclose(schedule.q_sample(x0[:4], t, noise), a.sqrt() * x0[:4] + (1 - a).sqrt() * noise)
    x_t = schedule.q_sample(x0[:4], t, noise)
    assert torch.allclose(schedule.predict_x0(x_t, t, noise), x0[:4], atol=1e-4)
    recovered_x0, recovered_noise = schedule.from_velocity(x_t, t, schedule.velocity(x0[:4], t, noise))
    assert torch.allclose(recovered_x0, x0[:4], atol=1e-4) and torch.allclose(recovered_noise, noise, atol=1e-4)


def test_timestep_embedding_shape_and_distinct_steps():
    embedding = timestep_embedding(torch.arange(10), 33)
    assert embedding.shape == (10, 33)
    assert torch.cdist(embedding, embedding).fill_diagonal_(1).min() > 0.1


class LabelConditioner(nn.Module):
    """Toy condition: no context, a label embedding as the perturbation."""

    def __init__(self, n_labels: int, width: int):
        super().__init__()
        self.embedding = nn.Embedding(n_labels, width)

    def forward(self, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        perturbation = self.embedding(label)
        return torch.zeros_like(perturbation), perturbation


CENTRES = torch.tensor([[-2.0, 0.0], [2.0, 1.0]])


def toy_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two labelled Gaussians in 2-D, SD 0.3 around CENTRES."""
    generator = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 2, (n,), generator=generator)
    return label, CENTRES[label] + 0.3 * torch.randn(n, 2, generator=generator)


def toy_model(seed: int = 0) -> ConditionalDiffusion:
    torch.manual_seed(seed)
    return ConditionalDiffusion(2, LabelConditioner(2, 64),
                                DiffusionConfig(width=64, depth=2, dropout=0.0, n_steps=100, p_uncond=0.2))


class ToyBatch(NamedTuple):
    label: torch.Tensor
    target: torch.Tensor


def toy_loss(model: ConditionalDiffusion, batch: ToyBatch) -> dict[str, torch.Tensor]:
    """The toy's fit loss: the model's v-prediction loss given the label (diffusion_loss reads an L1000 batch)."""
    return model.loss(batch.target, batch.label)


@pytest.fixture(scope="module")
def trained_toy() -> ConditionalDiffusion:
    model = toy_model()
    label, x = toy_data(4096, seed=1)
    model.set_range(x)  # as generative.fit_generative does
    fit(model, toy_loss, ToyBatch(label, x), None, FitConfig(epochs=60, batch_size=256, lr=3e-3, progress=False,
                                                             plateau_patience=100))
    return model


@pytest.mark.parametrize("method, steps", [("ddpm", 0), ("ddim", 50)])
def test_denoiser_learns_a_toy_conditional_distribution(trained_toy, method, steps):
    """Samples of each label match fresh draws: energy distance below 0.05, about what shifting the mean by 2/3
    of the SD gives (0.15 for a whole SD; an untrained model scores > 1)."""
    generator = torch.Generator().manual_seed(2)
    samples = trained_toy.sample(torch.tensor([0, 1]), n_samples=600, method=method, steps=steps,
                                 generator=generator)
    assert samples.shape == (2, 600, 2)
    for label in (0, 1):
        reference = CENTRES[label] + 0.3 * torch.randn(600, 2, generator=generator)
        assert energy_distance(samples[label].numpy(), reference.numpy()) < 0.05
    untrained = toy_model(seed=3).sample(torch.tensor([0]), n_samples=600, generator=generator)
    assert energy_distance(untrained[0].numpy(), (CENTRES[0] + 0.3 * torch.randn(600, 2)).numpy()) > 1.0


def test_guidance_zero_is_the_unconditional_model(trained_toy):
    labels = torch.tensor([0, 1])
    draw = {name: trained_toy.sample(labels, n_samples=50, steps=20, generator=torch.Generator().manual_seed(5),
                                     **kwargs)
            for name, kwargs in {"w0": {"guidance": 0.0}, "dropped": {"drop_perturbation": True},
                                 "w1": {"guidance": 1.0}}.items()}
    assert torch.equal(draw["w0"], draw["dropped"])
    # without the perturbation both labels come from one mixture; with it they separate
    assert (draw["w0"][0].mean(0) - draw["w0"][1].mean(0)).norm() < 1.0
    assert (draw["w1"][0].mean(0) - draw["w1"][1].mean(0)).norm() > 3.0


def test_guided_prediction_is_the_classifier_free_combination(trained_toy):
    x, t = torch.randn(3, 2), 40
    labels = torch.tensor([0, 1, 1])
    conditional = trained_toy.embed((labels,))
    unconditional = trained_toy.embed((labels,), torch.ones(3, dtype=torch.bool))
    steps = torch.full((3,), t)
    v_c, v_u = (trained_toy.denoiser(x, steps, e) for e in (conditional, unconditional))
    for w in (0.0, 1.0, 2.5):
        expected = v_u + w * (v_c - v_u)
        guided = trained_toy._guided_velocity(x, t, conditional, unconditional, w)
        assert torch.allclose(guided, expected, atol=1e-5)
        # the same combination of the implied noises
        eps = [trained_toy.schedule.from_velocity(x, t, v)[1] for v in (v_c, v_u, guided)]
        assert torch.allclose(eps[2], eps[1] + w * (eps[0] - eps[1]), atol=1e-5)


def test_ddim_with_eta_one_and_all_steps_is_ddpm(trained_toy):
    labels = torch.tensor([0, 1])
    ddpm = trained_toy.sample(labels, n_samples=20, method="ddpm", generator=torch.Generator().manual_seed(9))
    ddim = trained_toy.sample(labels, n_samples=20, method="ddim", steps=100, eta=1.0,
                              generator=torch.Generator().manual_seed(9))
    assert torch.allclose(ddpm, ddim, atol=1e-3)


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_deterministic_ddim_in_place_step_is_the_general_step(trained_toy, guidance):
    labels = torch.tensor([0, 1])
    def draw(eta):  # eta > 0 takes the general step; at 1e-12 its added noise is far below float32 resolution
        return trained_toy.sample(labels, n_samples=16, method="ddim", steps=20, eta=eta, guidance=guidance,
                                  generator=torch.Generator().manual_seed(4))
    fast, general = draw(0.0), draw(1e-12)
    assert not torch.equal(fast, torch.zeros_like(fast)) and torch.allclose(fast, general, atol=1e-5)


@pytest.mark.parametrize("method, eta", [("ddim", 0.0), ("ddim", 1.0), ("ddpm", 0.0)])
def test_temperature_scales_the_spread_of_the_samples(trained_toy, method, eta):
    """Temperature 1 is the default sampler; below 1 the samples of a label spread less (the toy's SD is 0.3), at
    0 the deterministic DDIM sampler gives one sample per condition; negative temperatures are refused."""
    labels = torch.tensor([0, 1])

    def draw(**kwargs) -> torch.Tensor:
        return trained_toy.sample(labels, n_samples=400, method=method, steps=25, eta=eta,
                                  generator=torch.Generator().manual_seed(4), **kwargs)

    default, one, cold = draw(), draw(temperature=1.0), draw(temperature=0.5)
    assert torch.equal(default, one)
    spread = {name: samples.std(dim=1).mean().item() for name, samples in {"one": one, "cold": cold}.items()}
    assert 0.2 < spread["one"] < 0.4
    assert spread["cold"] < 0.7 * spread["one"]
    # the colder samples stay at the label's centre
    assert (cold.mean(dim=1) - CENTRES).norm(dim=1).max() < 0.3
    if method == "ddim" and eta == 0:
        frozen = draw(temperature=0.0)
        assert torch.allclose(frozen, frozen[:, :1].expand_as(frozen))
    with pytest.raises(ValueError, match="temperature"):
        draw(temperature=-0.1)


def narrow_toy_spread(gene_scale: bool) -> float:
    """Sample SD of a 32-feature toy (one label, every feature N(0, 0.3^2)) learnt by a denoiser 8 wide."""
    torch.manual_seed(0)
    model = ConditionalDiffusion(32, LabelConditioner(1, 8), DiffusionConfig(width=8, depth=1, dropout=0.0,
                                                                             n_steps=100, gene_scale=gene_scale))
    x = 0.3 * torch.randn(2048, 32, generator=torch.Generator().manual_seed(1))
    fit(model, toy_loss, ToyBatch(torch.zeros(2048, dtype=torch.long), x), None,
        FitConfig(epochs=40, batch_size=256, lr=1e-2, progress=False, plateau_patience=100))
    samples = model.sample(torch.tensor([0]), n_samples=400, steps=20, generator=torch.Generator().manual_seed(2))
    return samples[0].std(dim=0).mean().item()


def test_gene_scale_lets_samples_be_narrower_than_white_in_every_feature():
    """Through an 8-wide input the plain denoiser cannot shrink 24 of the 32 directions: its samples keep most of
    the white (SD 1) spread; with the per-feature x_t multiplier they match the data's SD of 0.3."""
    assert narrow_toy_spread(gene_scale=False) > 0.6
    assert narrow_toy_spread(gene_scale=True) == pytest.approx(0.3, abs=0.08)


def test_sample_rejects_bad_sampler_arguments(trained_toy):
    with pytest.raises(ValueError, match="unknown sampling method"):
        trained_toy.sample(torch.tensor([0]), method="euler")
    with pytest.raises(ValueError, match="DDIM steps"):
        trained_toy.sample(torch.tensor([0]), steps=101)


def test_x0_is_clipped_to_the_training_range():
    model = toy_model()
    model.set_range(torch.tensor([[0.5, -0.25]]))
    samples = model.sample(torch.tensor([0, 1]), n_samples=30, steps=10, generator=torch.Generator().manual_seed(0))
    assert samples.abs().max() <= 0.5 + 1e-6


def perturbation_model(seed: int) -> tuple[ConditionalDiffusion, list[torch.Tensor]]:
    torch.manual_seed(seed)
    fingerprints = np.random.default_rng(0).integers(0, 2, (5, 64))
    model = ConditionalDiffusion(30, PerturbationConditioner(fingerprints, n_genes=30, width=16),
                                 DiffusionConfig(width=16, depth=2, n_steps=50))
    generator = torch.Generator().manual_seed(1)
    condition = [torch.tensor([0, 3, 4]), torch.randn(3, 30, generator=generator),
                 torch.randn(3, 2, generator=generator), torch.randn(3, 2, generator=generator)]
    return model, condition


def test_perturbation_model_shapes_and_determinism():
    first, condition = perturbation_model(seed=0)
    second, _ = perturbation_model(seed=0)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    draws = [m.sample(*condition, n_samples=4, steps=5, generator=torch.Generator().manual_seed(3))
             for m in (first, second)]
    assert draws[0].shape == (3, 4, 30)
    assert torch.equal(draws[0], draws[1])
    other = first.sample(*condition, n_samples=4, steps=5, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(draws[0], other)
    first.train()
    losses = [first.loss(torch.randn(3, 30), *condition)["loss"] for _ in range(2)]
    assert losses[0] != losses[1]  # training draws new timesteps and noise
    first.eval()
    assert first.loss(torch.ones(3, 30), *condition)["loss"] == first.loss(torch.ones(3, 30), *condition)["loss"]


def test_diffusion_loss_reads_the_condition_and_target_of_an_l1000_batch():
    """The conditioner gets compound, basal, dose and time by name; dose_scale (the encoder-decoder's) is unused."""
    model, (compound, basal, dose, time) = perturbation_model(seed=0)
    target = torch.randn(3, 30, generator=torch.Generator().manual_seed(2))
    batch = L1000Batch(compound, basal, dose, time, torch.full((3, 1), 99.0), target)
    with torch.no_grad():  # adaLN-Zero: an untrained model ignores its condition; move every weight off zero
        generator = torch.Generator().manual_seed(3)
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    model.eval()  # fixed timesteps and noise
    expected = model.loss(target, compound, basal, dose, time)["loss"]
    assert diffusion_loss(model, batch)["loss"] == expected
    assert diffusion_loss(model, batch._replace(dose_scale=torch.zeros(3, 1)))["loss"] == expected
    assert diffusion_loss(model, batch._replace(dose=torch.zeros(3, 2)))["loss"] != expected
    assert diffusion_loss(model, batch._replace(target=target + 1))["loss"] != expected
