"""The two generative networks of drug-induced expression as one estimator of the L1000 task.

``network="diffusion"`` is the conditional diffusion model (:class:`~perturbx.models.diffusion.ConditionalDiffusion`
with a :class:`~perturbx.models.diffusion.PerturbationConditioner`); ``network="encoder_decoder"`` is the
PRnet-style :class:`~perturbx.models.encoder_decoder.PerturbationEncoderDecoder`. Both are trained on the change
from basal standardised per gene with the training profiles' statistics (the fold's target scaler) and sample
changes that are scaled back to log2 units.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..runtime import derive_seed
from ..splits import Split
from ..tasks.l1000 import FeatureScalers, GenerativePrepared, Inputs, L1000Fold, TargetScaler, batch
from ..training import FitConfig, FitReport, fit, step_budget, to_device
from . import diffusion, encoder_decoder
from .diffusion import ConditionalDiffusion, DiffusionConfig, PerturbationConditioner
from .encoder_decoder import EncoderDecoderConfig, PerturbationEncoderDecoder
from .estimator import GenerativeEstimator, check_fitted_on, load_bundle, restore_weights, save_bundle

NETWORKS = {"diffusion": diffusion.diffusion_loss, "encoder_decoder": encoder_decoder.encoder_decoder_loss}
"""The trainable generative networks and their losses."""


def new_network(network: str, inputs: Inputs, config: DiffusionConfig | EncoderDecoderConfig) -> torch.nn.Module:
    """An untrained ``network`` over the compounds of ``inputs``; an unknown name is a ``ValueError``."""
    if network == "diffusion":
        conditioner = PerturbationConditioner(inputs.fingerprints, inputs.n_genes, config.width, config.dropout)
        return ConditionalDiffusion(inputs.n_genes, conditioner, config)
    if network == "encoder_decoder":
        return PerturbationEncoderDecoder(inputs.fingerprints, inputs.n_genes, config)
    raise ValueError(f"unknown generative network {network!r}; use one of {', '.join(NETWORKS)}")


def _condition_of(model: torch.nn.Module, b) -> tuple[torch.Tensor, ...]:
    module = diffusion if isinstance(model, ConditionalDiffusion) else encoder_decoder
    return module.condition_of(b)


def generate(model: torch.nn.Module, inputs: Inputs, prepared: GenerativePrepared, rows: np.ndarray, n_samples: int,
             seed: int = 0, max_batch: int = 4096, **sampling) -> Iterator[tuple[slice, np.ndarray]]:
    """Samples of the change from basal for the conditions of ``rows``, in chunks of at most ``max_batch`` profiles.

    Args:
        model: a trained :class:`ConditionalDiffusion` or :class:`PerturbationEncoderDecoder`.
        sampling: keyword arguments of the model's ``sample`` (``method``, ``steps``, ``guidance``,
            ``from_variance``, ...).

    Yields:
        (positions in ``rows``, float32 (chunk, n_samples, genes) log2 changes).
    """
    device = next(model.parameters()).device
    per_chunk = max(1, max_batch // n_samples)
    for number, start in enumerate(range(0, len(rows), per_chunk)):
        part = slice(start, min(start + per_chunk, len(rows)))
        condition = _condition_of(model, to_device(batch(inputs, prepared.features, rows[part]), device))
        generator = torch.Generator(device).manual_seed(derive_seed(seed, "sampling chunk", number))
        scaled = model.sample(*condition, n_samples=n_samples, generator=generator, **sampling)
        yield part, prepared.scaler.inverse(scaled.cpu().numpy())


_CONFIGS = {"diffusion": DiffusionConfig, "encoder_decoder": EncoderDecoderConfig}


@dataclass
class L1000GenerativeEstimator(GenerativeEstimator):
    """A generative network of the L1000 task (:class:`~perturbx.tasks.l1000.L1000Fold` with a target scaler).

    Budgets are counted in optimiser steps too (:func:`perturbx.training.step_budget`): small training sets (the
    SKBR3 plate: ~200 profiles, 2 steps per epoch) would otherwise stop after a few dozen steps.

    Attributes:
        network_name: ``"diffusion"`` or ``"encoder_decoder"`` (:data:`NETWORKS`).
        config: the network's sizes; fit_config: optimisation; min_steps, min_patience_steps: the step floors.
        n_predict: samples averaged by :meth:`predict`.
    """

    kind: ClassVar[str] = "l1000_generative"
    network_name: str = "diffusion"
    config: DiffusionConfig | EncoderDecoderConfig = field(default_factory=DiffusionConfig)
    fit_config: FitConfig = field(default_factory=FitConfig)
    min_steps: int = 0
    min_patience_steps: int = 0
    n_predict: int = 32
    network: torch.nn.Module | None = None
    scalers: FeatureScalers | None = None
    target_scaler: TargetScaler | None = None
    task: dict[str, str] = field(default_factory=dict)

    def fit(self, fold: L1000Fold, seed: int, description: str | None = None) -> FitReport:
        """Train on the standardised changes of ``fold.split.train``, early stopping on ``fold.split.val``."""
        torch.manual_seed(seed)
        self.network = new_network(self.network_name, fold.inputs, self.config)
        config = step_budget(replace(self.fit_config, seed=seed, description=description or self.network_name),
                             len(fold.split.train), self.min_steps, self.min_patience_steps)
        val = fold.batch(fold.split.val) if len(fold.split.val) else None
        train = fold.batch(fold.split.train)
        if self.network_name == "diffusion":
            self.network.set_range(train.target)
        report = fit(self.network, NETWORKS[self.network_name], train, val, config)
        self.scalers, self.target_scaler, self.task = fold.scalers, fold.target_scaler, fold.inputs.fingerprint()
        return report

    def sample(self, fold: L1000Fold, rows: np.ndarray, n: int, seed: int, **options: Any) -> np.ndarray:
        """(len(rows), n, genes) sampled log2 changes; ``options`` go to the network's ``sample`` (e.g.
        ``method``, ``steps``, ``guidance``, ``temperature`` for diffusion, ``from_variance`` for the
        encoder-decoder)."""
        samples = np.zeros((len(rows), n, fold.inputs.n_genes), np.float32)
        for part, chunk in generate(self.fitted_network(), fold.inputs, fold.generative, rows, n, seed, **options):
            samples[part] = chunk
        return samples

    def predict(self, fold: L1000Fold, rows: np.ndarray, seed: int = 0) -> np.ndarray:
        """(len(rows), genes) mean of :attr:`n_predict` sampled log2 changes."""
        return self.sample(fold, rows, self.n_predict, seed).mean(axis=1)

    def save(self, folder: Path | str) -> Path:
        """The bundle: network, sizes, optimisation, task fingerprint, weights, feature and target scalers."""
        config = {"network": self.network_name, "config": asdict(self.config), "fit": asdict(self.fit_config),
                  "min_steps": self.min_steps, "min_patience_steps": self.min_patience_steps,
                  "n_predict": self.n_predict, "task": self.task}
        network = self.fitted_network()
        return save_bundle(folder, self.kind, config, network.state_dict(),
                           self.scalers.arrays() | self.target_scaler.arrays())

    @classmethod
    def load(cls, folder: Path | str, task: Inputs, device: str = "cpu") -> L1000GenerativeEstimator:
        """The generative model saved in ``folder``, for ``task`` (the inputs it was fitted on), on ``device``."""
        bundle = load_bundle(folder, cls.kind)
        saved = bundle.config
        check_fitted_on(folder, saved["task"], task.fingerprint())
        estimator = cls(saved["network"], _CONFIGS[saved["network"]](**saved["config"]), FitConfig(**saved["fit"]),
                        saved["min_steps"], saved["min_patience_steps"], saved["n_predict"],
                        scalers=FeatureScalers.from_arrays(bundle.arrays),
                        target_scaler=TargetScaler.from_arrays(bundle.arrays), task=saved["task"])
        estimator.network = restore_weights(new_network(estimator.network_name, task, estimator.config), bundle,
                                            device)
        return estimator

    def fold(self, task: Inputs, split: Split) -> L1000Fold:
        """``split`` of ``task`` scaled with the statistics this model was fitted with."""
        return task.fold(split, scalers=self.scalers, target_scaler=self.target_scaler)
