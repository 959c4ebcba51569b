"""Drug-response classifiers: DeepDRA and the bidirectional cross-attention model.

Both take a pair as blocks of features: the cell line's omics blocks (expression, copy number, mutation) and the
drug's blocks (descriptors, fingerprint), each a float tensor of shape (batch, block_dim). Both return a
:class:`DRPOutput` whose ``logit`` is the log-odds of *sensitive* and whose reconstructions feed the autoencoder
losses; :func:`drp_loss` is L = L_CAE + L_DAE + L_CLS (MSE, MSE, binary cross-entropy), as in both papers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from ..tasks.drug_cell_pairs import Features, PairBatch, PairFold, pair_batch
from ..training import FitConfig, FitReport, fit
from .estimator import Estimator, load_bundle, restore_weights, save_bundle


class Autoencoder(nn.Module):
    """DeepDRA's autoencoder: in -> 256 -> latent (ReLU on both), latent -> 256 -> in."""

    def __init__(self, in_dim: int, latent_dim: int = 50, hidden_dim: int = 256):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, latent_dim),
                                     nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, in_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(latent (batch, latent_dim), reconstruction (batch, in_dim))."""
        latent = self.encoder(x)
        return latent, self.decoder(latent)


@dataclass
class DRPOutput:
    """logit: (batch,) log-odds of sensitive; reconstructions of the cell and drug blocks; attention maps."""

    logit: torch.Tensor
    cell_reconstruction: list[torch.Tensor]
    drug_reconstruction: list[torch.Tensor]
    cell_to_drug_attention: torch.Tensor | None = None  # (batch, cell tokens, drug tokens)
    drug_to_cell_attention: torch.Tensor | None = None  # (batch, drug tokens, cell tokens)


def _classifier(in_dim: int, hidden_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))


class DeepDRA(nn.Module):
    """DeepDRA (Mohammadzadeh-Vardin et al. 2024) as its authors' code defines it.

    One autoencoder for the concatenated cell blocks and one for the concatenated drug blocks (50-d latents), the
    two latents concatenated into an MLP (100 -> 128 -> 1). The sigmoid of DeepDRA's MLP is folded into the loss
    (``binary_cross_entropy_with_logits``), which is the same function, computed stably.
    """

    def __init__(self, cell_dims: list[int], drug_dims: list[int], latent_dim: int = 50, hidden_dim: int = 256,
                 classifier_dim: int = 128):
        super().__init__()
        self.cell_dims, self.drug_dims = list(cell_dims), list(drug_dims)
        self.cell_autoencoder = Autoencoder(sum(cell_dims), latent_dim, hidden_dim)
        self.drug_autoencoder = Autoencoder(sum(drug_dims), latent_dim, hidden_dim)
        self.classifier = _classifier(2 * latent_dim, classifier_dim)

    def forward(self, cell_blocks: list[torch.Tensor], drug_blocks: list[torch.Tensor]) -> DRPOutput:
        """Cell and drug blocks, each (batch, block_dim) -> :class:`DRPOutput`: logit (batch,), reconstructions."""
        cell_latent, cell_recon = self.cell_autoencoder(torch.cat(cell_blocks, dim=1))
        drug_latent, drug_recon = self.drug_autoencoder(torch.cat(drug_blocks, dim=1))
        logit = self.classifier(torch.cat([cell_latent, drug_latent], dim=1)).squeeze(1)
        return DRPOutput(logit, list(torch.split(cell_recon, self.cell_dims, dim=1)),
                         list(torch.split(drug_recon, self.drug_dims, dim=1)))


class CrossAttention(nn.Module):
    """One direction of the paper's cross-attention, followed by a Transformer encoder's add & norm and FFN.

    out = LayerNorm(X + softmax(Q K^T / sqrt(d_k)) V) with Q = X W_Q, K = Y W_K, V = Y W_V (equations (1)/(2)),
    then LayerNorm(out + FFN(out)).
    """

    def __init__(self, dim: int, key_dim: int | None = None, ffn_dim: int = 128, dropout: float = 0.1):
        super().__init__()
        self.key_dim = key_dim or dim
        self.query = nn.Linear(dim, self.key_dim, bias=False)
        self.key = nn.Linear(dim, self.key_dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.norm_attention = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout),
                                          nn.Linear(ffn_dim, dim))
        self.norm_output = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries (batch, Tq, dim) attend to keys (batch, Tk, dim).

        Returns:
            (updated queries (batch, Tq, dim), attention weights (batch, Tq, Tk); each row sums to 1).
        """
        scores = self.query(queries) @ self.key(keys).transpose(1, 2) / math.sqrt(self.key_dim)
        weights = scores.softmax(dim=-1)
        attended = self.norm_attention(queries + self.dropout(weights @ self.value(keys)))
        return self.norm_output(attended + self.dropout(self.feed_forward(attended))), weights


class CrossAttentionDRP(nn.Module):
    """Bidirectional cross-attention drug-response model (Cho and Kim), equations (1)-(3).

    Tokens: attention between a single cell vector and a single drug vector is degenerate (a softmax over one key
    is 1, so the "attention" is a fixed linear map of the other side). With ``tokens="blocks"`` (default) every
    feature block gets its own autoencoder and becomes one token: three cell tokens (expression, copy number,
    mutation) and two drug tokens (descriptors, fingerprint), so each cell token chooses which drug block to read
    and vice versa. ``tokens="single"`` keeps one autoencoder per side (one token each), the degenerate case, for
    the ablation.

    The classifier sees [C, D, C', D'] flattened: the latent tokens and their cross-attended updates.
    """

    def __init__(self, cell_dims: list[int], drug_dims: list[int], latent_dim: int = 50, hidden_dim: int = 256,
                 classifier_dim: int = 128, ffn_dim: int = 128, tokens: str = "blocks", dropout: float = 0.1):
        super().__init__()
        if tokens not in ("blocks", "single"):
            raise ValueError(f"tokens must be 'blocks' or 'single', got {tokens!r}")
        self.tokens = tokens
        self.cell_dims, self.drug_dims = list(cell_dims), list(drug_dims)
        cell_groups = self.cell_dims if tokens == "blocks" else [sum(self.cell_dims)]
        drug_groups = self.drug_dims if tokens == "blocks" else [sum(self.drug_dims)]
        self.cell_autoencoders = nn.ModuleList(Autoencoder(d, latent_dim, hidden_dim) for d in cell_groups)
        self.drug_autoencoders = nn.ModuleList(Autoencoder(d, latent_dim, hidden_dim) for d in drug_groups)
        self.cell_to_drug = CrossAttention(latent_dim, ffn_dim=ffn_dim, dropout=dropout)
        self.drug_to_cell = CrossAttention(latent_dim, ffn_dim=ffn_dim, dropout=dropout)
        n_tokens = len(cell_groups) + len(drug_groups)
        self.classifier = _classifier(2 * n_tokens * latent_dim, classifier_dim)

    def _encode(self, autoencoders: nn.ModuleList, blocks: list[torch.Tensor], dims: list[int]):
        groups = blocks if len(autoencoders) == len(blocks) else [torch.cat(blocks, dim=1)]
        latents, reconstructions = zip(*(ae(x) for ae, x in zip(autoencoders, groups)))
        reconstructions = list(reconstructions)
        if len(groups) != len(blocks):
            reconstructions = list(torch.split(reconstructions[0], dims, dim=1))
        return torch.stack(latents, dim=1), reconstructions

    def forward(self, cell_blocks: list[torch.Tensor], drug_blocks: list[torch.Tensor]) -> DRPOutput:
        """Cell and drug blocks, each (batch, block_dim) -> :class:`DRPOutput`: logit (batch,), attention maps."""
        cell_tokens, cell_recon = self._encode(self.cell_autoencoders, cell_blocks, self.cell_dims)
        drug_tokens, drug_recon = self._encode(self.drug_autoencoders, drug_blocks, self.drug_dims)
        cell_updated, cell_attention = self.cell_to_drug(cell_tokens, drug_tokens)  # C' (eq. 1)
        drug_updated, drug_attention = self.drug_to_cell(drug_tokens, cell_tokens)  # D' (eq. 2)
        features = torch.cat([cell_tokens.flatten(1), drug_tokens.flatten(1), cell_updated.flatten(1),
                              drug_updated.flatten(1)], dim=1)
        return DRPOutput(self.classifier(features).squeeze(1), cell_recon, drug_recon, cell_attention, drug_attention)


def drp_loss(output: DRPOutput, cell_blocks: list[torch.Tensor], drug_blocks: list[torch.Tensor],
             labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """L = L_CAE + L_DAE + L_CLS (equation (3)).

    L_CAE and L_DAE are the MSE of the whole cell (drug) input, i.e. the block MSEs weighted by block width, as
    DeepDRA computes it on the concatenated input; L_CLS is the binary cross-entropy of the sensitive label.
    """
    def mse(reconstructions, blocks):
        return F.mse_loss(torch.cat(reconstructions, dim=1), torch.cat(blocks, dim=1))

    cell, drug = mse(output.cell_reconstruction, cell_blocks), mse(output.drug_reconstruction, drug_blocks)
    classification = F.binary_cross_entropy_with_logits(output.logit, labels.float())
    return {"loss": cell + drug + classification, "cell_ae": cell, "drug_ae": drug, "bce": classification}


# --------------------------------------------------------------------------------------------------- estimator

class FeatureBlocks:
    """Feature blocks as tensors on a device, gathered per batch by cell and drug index."""

    def __init__(self, features: Features, device: str | torch.device):
        self.cells = [torch.from_numpy(b).to(device) for b in features.cell_blocks]
        self.drugs = [torch.from_numpy(b).to(device) for b in features.drug_blocks]

    def __call__(self, batch: PairBatch) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(cell blocks, drug blocks) of the batch's pairs."""
        return [b[batch.cell] for b in self.cells], [b[batch.drug] for b in self.drugs]


class PairLoss:
    """The fit loop's ``loss(model, batch)`` of a DRP model: gathers the pairs' features and applies
    :func:`drp_loss` (autoencoder MSEs + BCE)."""

    def __init__(self, blocks: FeatureBlocks):
        self.blocks = blocks

    def __call__(self, model: nn.Module, batch: PairBatch) -> dict[str, torch.Tensor]:
        """Loss parts of ``model`` on ``batch``: ``loss`` (the sum), ``cell_ae``, ``drug_ae``, ``bce``."""
        cell_x, drug_x = self.blocks(batch)
        return drp_loss(model(cell_x, drug_x), cell_x, drug_x, batch.label)


@torch.no_grad()
def predict_deep(model: nn.Module, features: Features, pairs: pd.DataFrame, device: str = "cpu",
                 batch_size: int = 4096) -> tuple[np.ndarray, list[DRPOutput]]:
    """Probabilities of sensitive (len(pairs),) and the raw outputs per batch (for attention maps)."""
    model.eval()
    blocks, whole = FeatureBlocks(features, device), pair_batch(pairs)
    scores, outputs = [], []
    for start in range(0, len(pairs), batch_size):
        part = PairBatch(*(t[start:start + batch_size].to(device) for t in whole))
        output = model(*blocks(part))
        scores.append(torch.sigmoid(output.logit).cpu().numpy())
        outputs.append(output)
    return np.concatenate(scores), outputs


ARCHITECTURES: dict[str, Callable[[list[int], list[int]], nn.Module]] = {
    "deepdra": lambda cells, drugs: DeepDRA(cells, drugs),
    "cross_attention": lambda cells, drugs: CrossAttentionDRP(cells, drugs, tokens="single"),
    "cross_attention_blocks": lambda cells, drugs: CrossAttentionDRP(cells, drugs, tokens="blocks"),
}


@dataclass
class DRPEstimator(Estimator):
    """DeepDRA or a cross-attention model as an estimator of the drug-response task
    (:class:`perturbx.tasks.drug_cell_pairs.PairFold`).

    Attributes:
        architecture: a key of :data:`ARCHITECTURES`.
        fit_config: optimisation (its ``seed`` and ``description`` are set by :meth:`fit`); its ``validation``
            says whether the validation pairs select the epoch or are only logged (DeepDRA's code).
        network: the trained model; genes, ranges: the fold's feature selection and min-max statistics.
    """

    kind: ClassVar[str] = "drug_response"
    architecture: str = "cross_attention"
    fit_config: FitConfig = field(default_factory=FitConfig)
    network: nn.Module | None = None
    dims: tuple[list[int], list[int]] = ((), ())
    genes: dict[str, list[str]] = field(default_factory=dict)
    ranges: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown drug-response architecture {self.architecture!r}; use one of "
                             f"{', '.join(ARCHITECTURES)}")

    def fit(self, fold: PairFold, seed: int, description: str | None = None,
            epoch_metrics: Callable[[nn.Module], dict[str, float]] | None = None) -> FitReport:
        """Train on ``fold.train`` (``fold.val`` as ``fit_config.validation`` says); ``epoch_metrics`` as in
        :func:`perturbx.training.fit` (a diagnostic, never used to choose anything)."""
        config = replace(self.fit_config, seed=seed, description=description or self.architecture)
        torch.manual_seed(config.seed)  # identical initial weights for a given seed
        features = fold.features
        self.dims, self.genes, self.ranges = (features.cell_dims, features.drug_dims), features.genes, features.ranges
        self.network = ARCHITECTURES[self.architecture](*self.dims)
        loss = PairLoss(FeatureBlocks(features, config.device))
        return fit(self.network, loss, pair_batch(fold.train), pair_batch(fold.val), config, epoch_metrics)

    def predict(self, fold: PairFold, rows: pd.DataFrame, batch_size: int = 4096) -> np.ndarray:
        """(len(rows),) probabilities that the pairs ``rows`` (cell_index, drug_index) are sensitive, from the
        fold's feature blocks."""
        network = self.fitted_network()
        return predict_deep(network, fold.features, rows, next(network.parameters()).device, batch_size)[0]

    def save(self, folder: Path | str) -> Path:
        """The bundle: architecture, optimisation, block widths, selected genes, weights and min-max ranges."""
        config = {"architecture": self.architecture, "fit": asdict(self.fit_config), "dims": list(self.dims),
                  "genes": self.genes, "blocks": list(self.ranges)}
        arrays = {f"{block}_{end}": values for block, pair in self.ranges.items()
                  for end, values in zip(("min", "max"), pair)}
        return save_bundle(folder, self.kind, config, self.fitted_network().state_dict(), arrays)

    @classmethod
    def load(cls, folder: Path | str, task: Any = None, device: str = "cpu") -> DRPEstimator:
        """The model saved in ``folder`` on ``device``; its features are the task's (``task`` is not needed to
        rebuild the network: the bundle holds the block widths)."""
        bundle = load_bundle(folder, cls.kind)
        config = bundle.config
        ranges = {block: (bundle.arrays[f"{block}_min"], bundle.arrays[f"{block}_max"]) for block in config["blocks"]}
        estimator = cls(config["architecture"], FitConfig(**config["fit"]), dims=tuple(config["dims"]),
                        genes=config["genes"], ranges=ranges)
        estimator.network = restore_weights(ARCHITECTURES[estimator.architecture](*estimator.dims), bundle, device)
        return estimator
