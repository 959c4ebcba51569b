"""Models of a drug's consensus signature from its structure alone (no cell line, dose or time).

- :class:`StructureRegressor`: the graph model's compound encoder (:class:`perturbx.models.gnn.CompoundEncoder`,
  graph attention over the RDKit molecular graph) and an MLP head regressing the 978 landmark z-scores
  (standardised per gene with training statistics by the caller);
- :class:`FingerprintConditioner`: the condition of :class:`perturbx.models.diffusion.ConditionalDiffusion` when
  the only input is the drug's Morgan fingerprint: a learned constant context (there is no cell line) and the
  fingerprint through an MLP as the perturbation, which classifier-free guidance may drop.

Both index a fixed table of drugs (graphs or fingerprints), so a batch carries drug positions, not features
(:class:`StructureBatch`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn

from ..tasks.consensus_signatures import (
    SignatureFold,
    SignatureInputs,
    StructureBatch,
    scaler_arrays,
    scaler_from_arrays,
)
from ..training import FitConfig, FitReport, fit
from .diffusion import ConditionalDiffusion, DiffusionConfig
from .estimator import Estimator, GenerativeEstimator, check_fitted_on, load_bundle, restore_weights, save_bundle
from .gnn import CompoundEncoder
from .molecules import MoleculeTable


@dataclass
class StructureConfig:
    """Sizes of :class:`StructureRegressor`."""

    width: int = 64
    layers: int = 3
    heads: int = 4
    hidden: int = 256
    dropout: float = 0.1


class StructureRegressor(nn.Module):
    """Molecular graph -> GAT compound token -> MLP -> (genes,) signature.

    Args:
        graphs: torch-geometric molecular graphs (:func:`perturbx.chem.molecule_graph`) of the drug table; the
            index of a graph is the drug position used in :meth:`forward`.
        n_genes: output size (978 landmark genes).
    """

    def __init__(self, graphs: list, n_genes: int, config: StructureConfig | None = None):
        super().__init__()
        config = config or StructureConfig()
        self.graphs, self.config, self.n_genes = list(graphs), config, n_genes
        self.molecules = MoleculeTable(self.graphs)  # collated once: a step gathers its molecules by index
        self.compound = CompoundEncoder(config.width, config.layers, config.heads)
        self.head = nn.Sequential(nn.Linear(config.width, config.hidden), nn.GELU(), nn.Dropout(config.dropout),
                                  nn.Linear(config.hidden, n_genes))

    def molecule_batch(self, compound: torch.Tensor, distinct: bool = True):
        """The torch-geometric ``Batch`` of the drugs ``compound`` (long (n,)) and each row's molecule in it.

        Args:
            distinct: one molecule per distinct drug (training); ``False``: one molecule per row, so that atom
                scales address the atoms of each row separately (attributions).

        Returns:
            (batch, inverse (n,) long).
        """
        if distinct:
            unique, inverse = torch.unique(compound, return_inverse=True)
        else:
            unique, inverse = compound, torch.arange(len(compound), device=compound.device)
        return self.molecules.to(compound.device).batch(unique), inverse

    def forward(self, compound: torch.Tensor, atom_scale: torch.Tensor | None = None, molecules=None
                ) -> torch.Tensor:
        """Predict standardised signatures.

        Args:
            compound: long (n,) drug positions.
            atom_scale: optional (n_atoms,) multipliers of the atom input embeddings of ``molecules`` (1: as is,
                0: masked); needs ``molecules``.
            molecules: a precomputed ``(batch, inverse)`` from :meth:`molecule_batch`.

        Returns:
            float (n, genes).
        """
        if atom_scale is not None and molecules is None:
            raise ValueError("atom_scale addresses the atoms of given molecules: pass molecules="
                             "model.molecule_batch(compound, distinct=False) too")
        batch, inverse = molecules if molecules is not None else self.molecule_batch(compound)
        return self.head(self.compound(batch, atom_scale))[inverse]


def structure_loss(model: StructureRegressor, batch: StructureBatch) -> dict[str, torch.Tensor]:
    """:func:`perturbx.training.fit` loss: mean squared error of the standardised signature, over genes and drugs."""
    return {"loss": nn.functional.mse_loss(model(batch.compound), batch.target)}


class FingerprintConditioner(nn.Module):
    """Condition of a structure-only diffusion model: (context, perturbation), each (B, width).

    The context is one learned vector for every drug (the consensus signatures have no cell line); the
    perturbation is the drug's fingerprint (a fixed table, so unseen drugs have one too) through an MLP. Input:
    compound (B,) long drug positions.
    """

    def __init__(self, fingerprints: np.ndarray, width: int = 128, dropout: float = 0.1):
        super().__init__()
        self.register_buffer("fingerprints", torch.as_tensor(np.asarray(fingerprints), dtype=torch.float32))
        self.context = nn.Parameter(torch.zeros(width))
        self.compound = nn.Sequential(nn.Linear(self.fingerprints.shape[1], width), nn.SiLU(), nn.Dropout(dropout),
                                      nn.Linear(width, width))

    def forward(self, compound: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed drugs: compound (B,) long -> (context, perturbation), each float (B, width)."""
        perturbation = self.compound(self.fingerprints[compound])
        return self.context.expand_as(perturbation), perturbation


def fingerprint_diffusion_loss(model: ConditionalDiffusion, batch: StructureBatch) -> dict[str, torch.Tensor]:
    """:func:`perturbx.training.fit` loss of a :class:`FingerprintConditioner` diffusion model: the v-prediction
    MSE of ``batch.target`` (B, genes) given the drugs ``batch.compound``."""
    return model.loss(batch.target, batch.compound)


# --------------------------------------------------------------------------------------------------- estimators

@dataclass
class StructureEstimator(Estimator):
    """The GAT regressor as an estimator of the consensus-signature task
    (:class:`perturbx.tasks.consensus_signatures.SignatureFold`)."""

    kind: ClassVar[str] = "structure_regressor"
    config: StructureConfig = field(default_factory=StructureConfig)
    fit_config: FitConfig = field(default_factory=FitConfig)
    network: StructureRegressor | None = None
    scaler: StandardScaler | None = None
    task: dict[str, str] = field(default_factory=dict)

    def fit(self, fold: SignatureFold, seed: int, description: str = "GAT regressor") -> FitReport:
        """Train on the training drugs' standardised signatures, early stopping on the validation drugs."""
        torch.manual_seed(seed)
        self.network = StructureRegressor(fold.inputs.graphs, fold.inputs.n_genes, self.config)
        val = fold.batch(fold.split.val) if len(fold.split.val) else None
        config = replace(self.fit_config, seed=seed, description=description)
        report = fit(self.network, structure_loss, fold.batch(fold.split.train), val, config)
        self.scaler, self.task = fold.scaler, fold.inputs.fingerprint()
        return report

    @torch.no_grad()
    def predict(self, fold: SignatureFold, rows: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """float64 (len(rows), genes) predicted signatures in z-score units (the fold's scaler undoes the
        standardisation)."""
        network = self.fitted_network().eval()
        device = next(network.parameters()).device
        parts = [network(torch.as_tensor(rows[start:start + batch_size], dtype=torch.long, device=device))
                 .cpu().numpy() for start in range(0, len(rows), batch_size)]
        standardised = np.concatenate(parts) if parts else np.zeros((0, network.n_genes), np.float32)
        return fold.scaler.inverse_transform(standardised.astype(np.float64))

    def save(self, folder: Path | str) -> Path:
        """The bundle: sizes, optimisation, task fingerprint, weights and the signature scaler."""
        config = {"structure": asdict(self.config), "fit": asdict(self.fit_config), "task": self.task}
        return save_bundle(folder, self.kind, config, self.fitted_network().state_dict(), scaler_arrays(self.scaler))

    @classmethod
    def load(cls, folder: Path | str, task: SignatureInputs, device: str = "cpu") -> StructureEstimator:
        """The GAT regressor saved in ``folder``, for ``task`` (the drugs it was fitted on), on ``device``."""
        bundle = load_bundle(folder, cls.kind)
        check_fitted_on(folder, bundle.config["task"], task.fingerprint())
        estimator = cls(StructureConfig(**bundle.config["structure"]), FitConfig(**bundle.config["fit"]),
                        scaler=scaler_from_arrays(bundle.arrays), task=bundle.config["task"])
        estimator.network = restore_weights(StructureRegressor(task.graphs, task.n_genes, estimator.config), bundle,
                                            device)
        return estimator


@dataclass
class SignatureDiffusionEstimator(GenerativeEstimator):
    """The fingerprint-conditioned diffusion model as an estimator of the consensus-signature task; it predicts
    the mean of ``n_samples`` DDIM samples with ``steps`` steps."""

    kind: ClassVar[str] = "signature_diffusion"
    config: DiffusionConfig = field(default_factory=DiffusionConfig)
    fit_config: FitConfig = field(default_factory=FitConfig)
    n_samples: int = 32
    steps: int = 50
    network: ConditionalDiffusion | None = None
    scaler: StandardScaler | None = None
    task: dict[str, str] = field(default_factory=dict)

    def _network(self, inputs: SignatureInputs) -> ConditionalDiffusion:
        conditioner = FingerprintConditioner(inputs.fingerprints, self.config.width, self.config.dropout)
        return ConditionalDiffusion(inputs.n_genes, conditioner, self.config)

    def fit(self, fold: SignatureFold, seed: int, description: str = "diffusion") -> FitReport:
        """Train on the training drugs' standardised signatures, early stopping on the validation drugs."""
        torch.manual_seed(seed)
        self.network = self._network(fold.inputs)
        train = fold.batch(fold.split.train)
        self.network.set_range(train.target)
        val = fold.batch(fold.split.val) if len(fold.split.val) else None
        report = fit(self.network, fingerprint_diffusion_loss, train, val,
                     replace(self.fit_config, seed=seed, description=description))
        self.scaler, self.task = fold.scaler, fold.inputs.fingerprint()
        return report

    @torch.no_grad()
    def sample_standardised(self, rows: np.ndarray, n: int, seed: int, batch_size: int = 256) -> np.ndarray:
        """DDIM samples of the standardised signatures of drugs ``rows``: float32 (len(rows), n, genes)."""
        network = self.fitted_network()
        device = network.null_perturbation.device
        generator = torch.Generator(device).manual_seed(seed)
        parts = [network.sample(torch.as_tensor(rows[start:start + batch_size], dtype=torch.long, device=device),
                                n_samples=n, method="ddim", steps=self.steps, generator=generator).cpu().numpy()
                 for start in range(0, len(rows), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, n, network.n_features), np.float32)

    def sample(self, fold: SignatureFold, rows: np.ndarray, n: int, seed: int, **options: Any) -> np.ndarray:
        """float64 (len(rows), n, genes) sampled signatures in z-score units."""
        samples = self.sample_standardised(rows, n, seed, **options)
        return fold.scaler.inverse_transform(samples.reshape(-1, samples.shape[-1]).astype(np.float64)).reshape(
            samples.shape)

    def predict(self, fold: SignatureFold, rows: np.ndarray, seed: int = 0) -> np.ndarray:
        """float64 (len(rows), genes): the mean of :attr:`n_samples` samples, in z-score units."""
        samples = self.sample_standardised(rows, self.n_samples, seed)
        return fold.scaler.inverse_transform(samples.mean(axis=1).astype(np.float64))

    def save(self, folder: Path | str) -> Path:
        """The bundle: sizes, optimisation, sampling, task fingerprint, weights and the signature scaler."""
        config = {"diffusion": asdict(self.config), "fit": asdict(self.fit_config), "n_samples": self.n_samples,
                  "steps": self.steps, "task": self.task}
        return save_bundle(folder, self.kind, config, self.fitted_network().state_dict(), scaler_arrays(self.scaler))

    @classmethod
    def load(cls, folder: Path | str, task: SignatureInputs, device: str = "cpu") -> SignatureDiffusionEstimator:
        """The diffusion model saved in ``folder``, for ``task`` (the drugs it was fitted on), on ``device``."""
        bundle = load_bundle(folder, cls.kind)
        saved = bundle.config
        check_fitted_on(folder, saved["task"], task.fingerprint())
        estimator = cls(DiffusionConfig(**saved["diffusion"]), FitConfig(**saved["fit"]), saved["n_samples"],
                        saved["steps"], scaler=scaler_from_arrays(bundle.arrays), task=saved["task"])
        estimator.network = restore_weights(estimator._network(task), bundle, device)
        return estimator
