r"""A PRnet-style encoder-decoder: the single-shot generator the diffusion paper argues against.

PRnet (Qi et al. 2024) encodes the unperturbed profile, adds a compound encoding scaled by the dose, concatenates a
noise vector, and decodes a mean and a variance per gene trained with a Gaussian negative log-likelihood. Here:

- cell: standardised basal expression (B, genes) -> MLP -> latent;
- compound: Morgan fingerprint -> MLP -> latent, multiplied by :math:`\log(1 + d)` with d the dose in µM
  (PRnet's dose scaling; a profile without a dose gets the scale of 1 µM), plus a time embedding;
- decoder: [cell latent, scaled compound latent, time, z ~ N(0, I)] -> mean and log-variance per gene.

It predicts the same standardised change from basal as :class:`perturbx.models.diffusion.ConditionalDiffusion`.
Two ways to get several samples of a condition are compared in the diffusion chapter: new noise vectors z
(PRnet's own "sampling", which a Gaussian-NLL model is free to ignore), and draws from the predicted
per-gene Gaussian N(mean, variance), independent across genes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class EncoderDecoderConfig:
    """Sizes of :class:`PerturbationEncoderDecoder` and the floor of its predicted variance."""

    width: int = 256
    latent: int = 64
    noise_dim: int = 16
    dropout: float = 0.1
    min_variance: float = 1e-3  # floor of the predicted variance (standardised units), keeps the NLL finite


class PerturbationEncoderDecoder(nn.Module):
    """Inputs, in order: compound_index (B,) long, basal (B, genes), dose_scale (B, 1), time (B, 2).

    ``forward`` returns (mean, variance), each (B, genes), for one noise vector per row.
    """

    def __init__(self, fingerprints: np.ndarray, n_genes: int, config: EncoderDecoderConfig | None = None):
        super().__init__()
        config = config or EncoderDecoderConfig()
        self.config = config
        self.register_buffer("fingerprints", torch.as_tensor(np.asarray(fingerprints), dtype=torch.float32))
        c = config

        def mlp(n_in: int, n_out: int) -> nn.Module:
            return nn.Sequential(nn.Linear(n_in, c.width), nn.SiLU(), nn.Dropout(c.dropout), nn.Linear(c.width, n_out))

        self.cell_encoder = mlp(n_genes, c.latent)
        self.compound_encoder = mlp(self.fingerprints.shape[1], c.latent)
        self.time_encoder = nn.Sequential(nn.Linear(2, c.latent), nn.SiLU())
        self.decoder = nn.Sequential(nn.Linear(3 * c.latent + c.noise_dim, c.width), nn.SiLU(), nn.Dropout(c.dropout),
                                     nn.Linear(c.width, c.width), nn.SiLU(), nn.Linear(c.width, 2 * n_genes))

    def forward(self, compound_index: torch.Tensor, basal: torch.Tensor, dose_scale: torch.Tensor,
                time: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """compound_index (B,), basal (B, genes), dose_scale (B, 1), time (B, 2) -> (mean, variance), (B, genes)."""
        compound = self.compound_encoder(self.fingerprints[compound_index]) * dose_scale
        z = torch.randn((len(basal), self.config.noise_dim), device=basal.device, generator=generator)
        hidden = torch.cat([self.cell_encoder(basal), compound, self.time_encoder(time), z], dim=-1)
        mean, log_variance = self.decoder(hidden).chunk(2, dim=-1)
        return mean, nn.functional.softplus(log_variance) + self.config.min_variance

    @torch.no_grad()
    def sample(self, *condition: torch.Tensor, n_samples: int = 1, from_variance: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, n_samples, genes): decoded means for new noise vectors, plus N(0, variance) draws if
        ``from_variance``."""
        self.eval()
        condition = tuple(c.repeat_interleave(n_samples, dim=0) for c in condition)
        mean, variance = self(*condition, generator=generator)
        if from_variance:
            mean = mean + variance.sqrt() * torch.randn(mean.shape, device=mean.device, generator=generator)
        return mean.reshape(-1, n_samples, mean.shape[-1])


def condition_of(batch) -> tuple[torch.Tensor, ...]:
    """The model's inputs from an L1000 batch (fields ``compound``, ``basal``, ``dose_scale``, ``time``; see
    :class:`perturbx.tasks.l1000.L1000Batch`)."""
    return batch.compound, batch.basal, batch.dose_scale, batch.time


def encoder_decoder_loss(model: PerturbationEncoderDecoder, batch) -> dict[str, torch.Tensor]:
    """:func:`perturbx.training.fit` loss of an L1000 batch: Gaussian NLL of ``batch.target`` (B, genes)."""
    target = batch.target
    generator = None if model.training else torch.Generator(target.device).manual_seed(0)
    mean, variance = model(*condition_of(batch), generator=generator)
    return {"loss": nn.functional.gaussian_nll_loss(mean, target, variance),
            "mse": nn.functional.mse_loss(mean.detach(), target)}
