r"""Conditional denoising diffusion over a vector of genes: DDPM training, ancestral (DDPM) and DDIM sampling,
classifier-free guidance.

The model generates a vector ``x`` (here: a standardised change from basal of the 978 landmark genes) given a
condition split in two parts (see :class:`PerturbationConditioner`):

- a **context** that is always given (the cell line's basal expression), and
- a **perturbation** (compound, dose, time) that is replaced by a learned null embedding with probability
  ``p_uncond`` during training. Guidance therefore pushes samples towards the drug effect,
  :math:`\tilde\epsilon = \epsilon(x_t, c, \varnothing) + w\,[\epsilon(x_t, c, p) - \epsilon(x_t, c, \varnothing)]`:
  ``w = 0`` is the model of the untreated-looking response of that cell line, ``w = 1`` the plain conditional
  model, ``w > 1`` extrapolates the perturbation's effect (Ho & Salimans 2022, with their weight shifted by one).

Conditioning mechanism: the target has no spatial or sequence structure to attend over, so the denoiser is a
residual MLP whose every block is modulated by the sum of the timestep and condition embeddings through an
adaptive LayerNorm (scale, shift and a gate initialised at zero, "adaLN-Zero"). This is how DiT-style and tabular
diffusion models inject a global condition; cross-attention would need a set of condition tokens.

Notation (Ho et al. 2020): :math:`\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)`,
:math:`q(x_t \mid x_0) = N(\sqrt{\bar\alpha_t} x_0, (1 - \bar\alpha_t) I)`. Timesteps are 0-based: ``t = 0`` is
the least noisy step.

The network predicts :math:`v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1 - \bar\alpha_t}\,x_0` (Salimans & Ho
2022), from which :math:`\epsilon = \sqrt{\bar\alpha_t}\,v + \sqrt{1 - \bar\alpha_t}\,x_t` and
:math:`x_0 = \sqrt{\bar\alpha_t}\,x_t - \sqrt{1 - \bar\alpha_t}\,v`. Why not :math:`\epsilon` itself: at high noise
the best :math:`\epsilon` is nearly :math:`x_t`, an identity map on all 978 genes that a 256-wide network cannot
represent (an ε-predicting denoiser of this width learned an ε of SD 0.5 at t = T and its samples diverged); v is
zero for white standardised data, so the network only has to model the structure of the responses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.std import tqdm


class NoiseSchedule(nn.Module):
    r"""Variance schedule :math:`\beta_0..\beta_{T-1}` and the quantities derived from it (buffers, float64 -> float32).

    Args:
        n_steps: T, the number of diffusion steps.
        kind: ``"cosine"`` (Nichol & Dhariwal 2021: :math:`\bar\alpha_t = f(t)/f(0)`,
            :math:`f(t) = \cos^2(\frac{t/T + s}{1 + s}\frac{\pi}{2})`, s = 0.008, betas clipped at 0.999) or
            ``"linear"`` (Ho et al. 2020: betas linear from 1e-4 to 0.02 for T = 1000, rescaled for other T).
    """

    def __init__(self, n_steps: int = 1000, kind: str = "cosine"):
        super().__init__()
        if n_steps < 2:
            raise ValueError(f"a noise schedule needs at least 2 steps, got {n_steps}")
        if kind == "cosine":
            s = 0.008
            f = np.cos((np.arange(n_steps + 1) / n_steps + s) / (1 + s) * math.pi / 2) ** 2
            betas = np.clip(1 - f[1:] / f[:-1], 1e-8, 0.999)
        elif kind == "linear":
            scale = 1000 / n_steps
            betas = np.linspace(1e-4 * scale, 0.02 * scale, n_steps)
        else:
            raise ValueError(f"unknown noise schedule {kind!r}; use 'cosine' or 'linear'")
        alpha_bar = np.cumprod(1 - betas)
        alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
        self.n_steps, self.kind = n_steps, kind
        for name, values in {"betas": betas, "alpha_bar": alpha_bar, "alpha_bar_prev": alpha_bar_prev,
                             # variance of q(x_{t-1} | x_t, x_0), the DDPM ancestral step
                             "posterior_variance": betas * (1 - alpha_bar_prev) / (1 - alpha_bar)}.items():
            self.register_buffer(name, torch.as_tensor(values, dtype=torch.float32), persistent=False)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        r"""Draw :math:`x_t \sim q(x_t \mid x_0)` in closed form; x0, noise (B, D), t (B,) long -> (B, D)."""
        a = self.alpha_bar[t].unsqueeze(-1)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def _alpha_bar(self, t: torch.Tensor | int) -> torch.Tensor:
        a = self.alpha_bar[t]
        return a.unsqueeze(-1) if a.dim() else a

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
        """Invert :meth:`q_sample` for a predicted noise: (B, D)."""
        a = self._alpha_bar(t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def velocity(self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        r"""The v target of (x0, noise) at t: :math:`\sqrt{\bar\alpha_t}\epsilon - \sqrt{1-\bar\alpha_t}x_0`."""
        a = self._alpha_bar(t)
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    def from_velocity(self, x_t: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) implied by a predicted v at x_t."""
        a = self._alpha_bar(t)
        return a.sqrt() * x_t - (1 - a).sqrt() * v, a.sqrt() * v + (1 - a).sqrt() * x_t

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: int) -> torch.Tensor:
        r"""Mean of :math:`q(x_{t-1} \mid x_t, x_0)` for one timestep t (int): (B, D)."""
        beta, a, a_prev = self.betas[t], self.alpha_bar[t], self.alpha_bar_prev[t]
        return (a_prev.sqrt() * beta / (1 - a)) * x0 + ((1 - beta).sqrt() * (1 - a_prev) / (1 - a)) * x_t


def timestep_embedding(t: torch.Tensor, width: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (Vaswani et al.): t (B,) -> (B, width)."""
    half = width // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float().unsqueeze(-1) * frequencies
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return nn.functional.pad(embedding, (0, width % 2))


class AdaptiveBlock(nn.Module):
    """Residual MLP block modulated by an embedding: h + gate * MLP(LayerNorm(h) * (1 + scale) + shift)."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Linear(2 * width, width))
        self.modulation = nn.Linear(width, 3 * width)
        nn.init.zeros_(self.modulation.weight)  # adaLN-Zero: every block starts as the identity
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """h: (B, width) and embedding: (B, width) -> the modulated residual update of h, (B, width)."""
        shift, scale, gate = self.modulation(nn.functional.silu(embedding)).chunk(3, dim=-1)
        return h + gate * self.mlp(self.norm(h) * (1 + scale) + shift)


class Denoiser(nn.Module):
    r"""Predicts v at x_t: (x_t (B, D), t (B,), condition embedding (B, width)) -> (B, D).

    The residual MLP sees x_t through a ``width``-wide input layer, so what it adds to v depends on x_t only through
    a ``width``-dimensional projection. With ``gene_scale`` it also adds :math:`d \odot x_t`, a per-feature
    multiplier d (B, D) read from the timestep + condition embedding (initialised at 0). Why: v is zero for white
    standardised data, and a conditional distribution narrower than the training marginal needs v to contain a
    multiple of x_t in every feature (for x0 ~ N(mu, s^2) per feature,
    :math:`E[v \mid x_t] = k\,x_t + \dots` with :math:`k = \sqrt{\bar\alpha_t(1-\bar\alpha_t)}(1 - s^2) /
    (\bar\alpha_t s^2 + 1 - \bar\alpha_t)`); through the bottleneck the samples keep the marginal's spread in the
    D - width directions it cannot reach.
    """

    def __init__(self, n_features: int, width: int = 256, depth: int = 4, dropout: float = 0.0,
                 gene_scale: bool = False):
        super().__init__()
        self.width = width
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.input = nn.Linear(n_features, width)
        self.blocks = nn.ModuleList(AdaptiveBlock(width, dropout) for _ in range(depth))
        self.output_norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, n_features)
        self.gene_scale = nn.Linear(width, n_features) if gene_scale else None
        if self.gene_scale is not None:  # starts as the plain denoiser
            nn.init.zeros_(self.gene_scale.weight)
            nn.init.zeros_(self.gene_scale.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """x_t (B, D), t (B,) long timesteps and condition embedding (B, width) -> predicted v (B, D)."""
        embedding = self.time_mlp(timestep_embedding(t, self.width)) + condition
        h = self.input(x_t)
        for block in self.blocks:
            h = block(h, embedding)
        v = self.output(self.output_norm(h))
        if self.gene_scale is not None:
            v = v + self.gene_scale(nn.functional.silu(embedding)) * x_t
        return v


def _mlp(n_in: int, width: int, dropout: float = 0.0) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, width), nn.SiLU(), nn.Dropout(dropout), nn.Linear(width, width))


class PerturbationConditioner(nn.Module):
    """Embeds an L1000 condition into (context, perturbation), each (B, width).

    - context: the cell line, as its standardised basal expression (B, genes) through an MLP. The basal profile,
      not a cell-line id, so that the model can be asked about a cell line it has not been trained on.
    - perturbation: the compound's Morgan fingerprint (a fixed table indexed by compound, so unseen compounds
      have features too), dose and time (each (B, 2): standardised log value and a "known" flag, as
      :func:`perturbx.tasks.l1000.prepare` makes them), each through an MLP, summed.

    Inputs, in order: compound_index (B,) long, basal (B, genes), dose (B, 2), time (B, 2).
    """

    def __init__(self, fingerprints: np.ndarray, n_genes: int, width: int = 256, dropout: float = 0.1):
        super().__init__()
        self.register_buffer("fingerprints", torch.as_tensor(np.asarray(fingerprints), dtype=torch.float32))
        self.cell = _mlp(n_genes, width, dropout)
        self.compound = _mlp(self.fingerprints.shape[1], width, dropout)
        self.dose, self.time = _mlp(2, width), _mlp(2, width)

    def forward(self, compound_index: torch.Tensor, basal: torch.Tensor, dose: torch.Tensor,
                time: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """compound_index (B,), basal (B, genes), dose (B, 2), time (B, 2) -> (context, perturbation), (B, width)."""
        perturbation = self.compound(self.fingerprints[compound_index]) + self.dose(dose) + self.time(time)
        return self.cell(basal), perturbation


@dataclass
class DiffusionConfig:
    """Sizes of the denoiser and the diffusion process."""

    width: int = 256
    depth: int = 4
    dropout: float = 0.1
    n_steps: int = 1000
    schedule: str = "cosine"
    p_uncond: float = 0.15  # probability of dropping the perturbation during training (classifier-free guidance)
    gene_scale: bool = False  # the denoiser's per-gene x_t multiplier (Denoiser); lets samples be narrower than
    # the training marginal in every gene (without it they keep the marginal's spread outside the input bottleneck)


class ConditionalDiffusion(nn.Module):
    """DDPM with a conditioner returning (context, perturbation) embeddings of width ``config.width``.

    Args:
        n_features: D, the size of the generated vector.
        conditioner: ``conditioner(*condition) -> (context (B, width), perturbation (B, width))``.
    """

    def __init__(self, n_features: int, conditioner: nn.Module, config: DiffusionConfig | None = None):
        super().__init__()
        config = config or DiffusionConfig()
        self.config, self.n_features = config, n_features
        self.conditioner = conditioner
        self.schedule = NoiseSchedule(config.n_steps, config.schedule)
        self.denoiser = Denoiser(n_features, config.width, config.depth, config.dropout, config.gene_scale)
        self.null_perturbation = nn.Parameter(torch.zeros(config.width))
        # Sampling clips each predicted x0 to the range of the training data (a guard, as for images): the first,
        # noisiest steps of a sampler can predict x0 beyond anything seen in training.
        self.register_buffer("x0_limit", torch.tensor(float("inf")))

    def set_range(self, x0: torch.Tensor) -> None:
        """Clip sampled x0 predictions to the largest absolute value in ``x0`` (the training targets)."""
        self.x0_limit.fill_(float(x0.abs().max()))

    def embed(self, condition: tuple[torch.Tensor, ...], drop: torch.Tensor | None = None) -> torch.Tensor:
        """Condition embedding (B, width); rows where ``drop`` (B,) bool is True get the null perturbation."""
        context, perturbation = self.conditioner(*condition)
        if drop is not None:
            perturbation = torch.where(drop.unsqueeze(-1), self.null_perturbation.expand_as(perturbation),
                                       perturbation)
        return context + perturbation

    def loss(self, x0: torch.Tensor, *condition: torch.Tensor) -> dict[str, torch.Tensor]:
        """MSE of the predicted v at a uniformly drawn timestep, x0 (B, D).

        In eval mode (validation) the timesteps, noise and dropped conditions come from a fixed seed, so that
        validation losses of different epochs compare like with like.
        """
        generator = None if self.training else torch.Generator(x0.device).manual_seed(0)
        batch = len(x0)
        t = torch.randint(0, self.schedule.n_steps, (batch,), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        drop = torch.rand(batch, device=x0.device, generator=generator) < self.config.p_uncond
        predicted = self.denoiser(self.schedule.q_sample(x0, t, noise), t, self.embed(condition, drop))
        return {"loss": nn.functional.mse_loss(predicted, self.schedule.velocity(x0, t, noise))}

    def _guided_velocity(self, x_t: torch.Tensor, t: int, conditional: torch.Tensor, unconditional: torch.Tensor,
                      guidance: float) -> torch.Tensor:
        steps = torch.full((len(x_t),), t, device=x_t.device, dtype=torch.long)
        if guidance == 1:
            return self.denoiser(x_t, steps, conditional)
        if guidance == 0:
            return self.denoiser(x_t, steps, unconditional)
        both = self.denoiser(torch.cat([x_t, x_t]), torch.cat([steps, steps]),
                             torch.cat([conditional, unconditional]))
        conditional_v, unconditional_v = both.chunk(2)  # eps is affine in v at a fixed x_t: same combination
        # unconditional + w (conditional - unconditional), in one pass over the batch
        return torch.lerp(unconditional_v, conditional_v, guidance)

    @torch.no_grad()
    def sample(self, *condition: torch.Tensor, n_samples: int = 1, method: str = "ddim", steps: int = 50,
               guidance: float = 1.0, eta: float = 0.0, drop_perturbation: bool = False, temperature: float = 1.0,
               generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """Draw ``n_samples`` vectors per condition row: (B, n_samples, D).

        Args:
            condition: the conditioner's inputs, each with B rows, on the model's device.
            method: ``"ddpm"`` (ancestral sampling through all T steps; ``steps`` ignored) or ``"ddim"``
                (Song et al. 2021, ``steps`` evenly spaced timesteps; ``eta = 0`` deterministic given the start
                noise, ``eta = 1`` with all T steps is the DDPM sampler).
            guidance: classifier-free guidance weight w (0: perturbation dropped, 1: conditional).
            drop_perturbation: sample from the model with the perturbation dropped (the unconditional branch).
            temperature: multiplies the SD of the start noise x_T and of every noise the sampler adds (DDPM and
                DDIM with ``eta > 0``); 1 samples the learned distribution, below 1 shrinks the spread of the
                samples towards the model's mode (0 with DDIM and ``eta = 0``: one deterministic sample per
                condition), above 1 widens it. It trades spread for accuracy of the sample mean; choose it on
                validation (e.g. lowest energy score). Over-dispersion from the denoiser's bottleneck is better
                fixed by ``DiffusionConfig.gene_scale``.
            generator: torch generator on the model's device, for reproducible draws.
        """
        self.eval()
        device = self.null_perturbation.device
        condition = tuple(c.repeat_interleave(n_samples, dim=0) for c in condition)
        batch = len(condition[0])
        drop_all = torch.ones(batch, dtype=torch.bool, device=device)
        unconditional = self.embed(condition, drop_all)
        conditional = unconditional if drop_perturbation else self.embed(condition)
        if temperature < 0:
            raise ValueError(f"the sampling temperature must be >= 0, got {temperature}")
        x = temperature * torch.randn((batch, self.n_features), device=device, generator=generator)
        schedule, timesteps = self.schedule, sampling_timesteps(self.schedule.n_steps, method, steps)
        alpha_bar, limit = schedule.alpha_bar.tolist(), float(self.x0_limit)
        for i, t in enumerate(tqdm(timesteps, desc=f"{method} sampling", disable=not progress, leave=False)):
            v = self._guided_velocity(x, t, conditional, unconditional, guidance)
            if method == "ddim" and eta == 0:
                x = _deterministic_ddim_step(x, v, alpha_bar[t], alpha_bar[timesteps[i + 1]]
                                             if i + 1 < len(timesteps) else 1.0, limit)
                continue
            x0 = schedule.from_velocity(x, t, v)[0].clamp(-self.x0_limit, self.x0_limit)
            if method == "ddpm":
                x = schedule.posterior_mean(x0, x, t)
                if t > 0:
                    x = x + temperature * schedule.posterior_variance[t].sqrt() * torch.randn(
                        x.shape, device=device, generator=generator)
                continue
            a = schedule.alpha_bar[t]
            a_prev = schedule.alpha_bar[timesteps[i + 1]] if i + 1 < len(timesteps) else torch.ones_like(a)
            sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()  # the noise consistent with the (clipped) x0
            x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
            if i + 1 < len(timesteps) and eta > 0:
                x = x + temperature * sigma * torch.randn(x.shape, device=device, generator=generator)
        return x.reshape(-1, n_samples, self.n_features)


def sampling_timesteps(n_steps: int, method: str, steps: int) -> list[int]:
    """The timesteps a sampler visits, from the noisiest: all ``n_steps`` for ``"ddpm"``, ``steps`` evenly spaced
    ones for ``"ddim"``; an unknown method or a step count outside 1..n_steps is a ``ValueError``."""
    if method == "ddpm":
        return list(range(n_steps - 1, -1, -1))
    if method != "ddim":
        raise ValueError(f"unknown sampling method {method!r}; use 'ddpm' or 'ddim'")
    if not 1 <= steps <= n_steps:
        raise ValueError(f"DDIM steps must be between 1 and {n_steps}, got {steps}")
    return sorted({int(round(s)) for s in np.linspace(0, n_steps - 1, steps)}, reverse=True)


def _deterministic_ddim_step(x: torch.Tensor, v: torch.Tensor, a: float, a_prev: float, limit: float) -> torch.Tensor:
    """One DDIM step with eta = 0 from x_t (B, D) and the predicted v (B, D) to x at the previous timestep, whose
    alpha-bars are ``a`` and ``a_prev``; x0 clipped to ``limit``. The general step's formulas, with the coefficients
    as Python floats and the arithmetic in place on ``x`` and ``v`` (which it overwrites): five passes over the
    batch instead of about a dozen, so sampling costs little beyond the denoiser's calls."""
    x0 = v.mul_(-math.sqrt(1 - a)).add_(x, alpha=math.sqrt(a)).clamp_(-limit, limit)
    # eps = (x - sqrt(a) x0) / sqrt(1 - a), then x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps
    keep = math.sqrt(1 - a_prev) / math.sqrt(1 - a)
    return x.mul_(keep).add_(x0, alpha=math.sqrt(a_prev) - keep * math.sqrt(a))


def condition_of(batch) -> tuple[torch.Tensor, ...]:
    """The :class:`PerturbationConditioner` inputs of an L1000 batch (fields ``compound``, ``basal``, ``dose``,
    ``time``; see :class:`perturbx.tasks.l1000.L1000Batch`)."""
    return batch.compound, batch.basal, batch.dose, batch.time


def diffusion_loss(model: ConditionalDiffusion, batch) -> dict[str, torch.Tensor]:
    """:func:`perturbx.training.fit` loss of an L1000 batch: the v-prediction MSE of ``batch.target`` (B, D) given
    :func:`condition_of` the batch."""
    return model.loss(batch.target, *condition_of(batch))
