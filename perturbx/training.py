"""One fit loop for every torch model of the book: seeds, device, batches, early stopping, progress bar.

A model's data travel as a *batch*: a ``NamedTuple`` of tensors that share their first dimension (e.g.
:class:`perturbx.tasks.l1000.L1000Batch` or :class:`perturbx.tasks.drug_cell_pairs.PairBatch`). :func:`fit`
shuffles the rows of the whole training batch, cuts it into mini-batches of the same type and calls the one loss
signature of the book, ``loss(model, batch) -> {"loss": scalar tensor, **other parts}``.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm.std import tqdm

from .runtime import seed_everything

Batch = Any  # a NamedTuple of tensors (or a plain sequence of tensors) with one first dimension
LossFunction = Callable[[torch.nn.Module, Batch], dict[str, torch.Tensor]]


@dataclass
class FitConfig:
    """Optimisation settings (defaults: DeepDRA's: Adam 5e-4, batch 64, 25 epochs, clip 1, plateau 0.8/5)."""

    epochs: int = 25
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    plateau_factor: float = 0.8
    plateau_patience: int = 5
    early_stopping_patience: int | None = 5  # epochs without a better validation loss; None: never stop early
    # an epoch counts as better only when it lowers the monitored loss by more than this (loss units): a loss that
    # creeps down by 1e-5 per epoch on a decayed learning rate has converged
    min_delta: float = 1e-6
    # the loss part that the plateau, early stopping and the kept weights follow (its validation value when there
    # is a validation set); e.g. "mse" for a Gaussian-NLL model whose NLL over-fits its variance before its mean
    monitor: str = "loss"
    # "select": the validation loss drives the plateau, early stopping and the kept weights (best epoch);
    # "log": DeepDRA's code: validation is only logged, the plateau follows the training loss, every epoch runs and
    # the last epoch's weights are kept
    validation: str = "select"
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    description: str = "training"

    def __post_init__(self) -> None:
        if self.validation not in ("select", "log"):
            raise ValueError(f"FitConfig.validation must be 'select' or 'log', got {self.validation!r}")


@dataclass
class FitReport:
    """What :func:`fit` did: per-epoch losses, the epoch whose weights were kept, time and throughput."""

    history: pd.DataFrame
    best_epoch: int
    seconds: float
    samples_per_second: float

    @property
    def epochs_run(self) -> int:
        """Epochs trained; a best epoch equal to it means training stopped while still improving."""
        return len(self.history)


def batch_like(template: Batch, tensors: Sequence[torch.Tensor]) -> Batch:
    """``tensors`` in the type of ``template``: the same NamedTuple, or a list for a plain sequence."""
    return template._make(tensors) if hasattr(template, "_make") else list(tensors)


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    """Every tensor of ``batch`` on ``device``, in the same batch type."""
    return batch_like(batch, [t.to(device, non_blocking=True) for t in batch])


def _mean_parts(parts: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Mean of each loss part over batches, copied to the host once per epoch (not once per batch)."""
    return {key: float(torch.stack([p[key] for p in parts]).double().mean()) for key in parts[0]}


class _BestWeights:
    """Tracks the monitored loss: the best epoch, its weights (only when they will be restored) and patience."""

    def __init__(self, keep_weights: bool, min_delta: float):
        self.keep_weights, self.min_delta = keep_weights, min_delta
        self.loss, self.epoch, self.state, self.stale = np.inf, 0, None, 0

    def update(self, model: torch.nn.Module, loss: float, epoch: int) -> None:
        if loss < self.loss - self.min_delta:
            self.loss, self.epoch, self.stale = loss, epoch, 0
            self.state = copy.deepcopy(model.state_dict()) if self.keep_weights else None
        else:
            self.stale += 1


def _train_epoch(model: torch.nn.Module, loss_fn: LossFunction, loader: DataLoader, template: Batch,
                 optimizer: torch.optim.Optimizer, config: FitConfig, device: torch.device) -> dict[str, float]:
    """One pass over the training mini-batches; mean of each loss part."""
    model.train()
    parts = []
    for tensors in loader:
        batch = to_device(batch_like(template, tensors), device)
        optimizer.zero_grad(set_to_none=True)
        losses = loss_fn(model, batch)
        losses["loss"].backward()
        if config.grad_clip is not None:  # one multi-tensor kernel, also on CPU (the default loops per tensor there)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip, foreach=True)
        optimizer.step()
        parts.append({k: v.detach() for k, v in losses.items()})
    return _mean_parts(parts)


EpochMetrics = Callable[[torch.nn.Module], dict[str, float]]


def fit(model: torch.nn.Module, loss_fn: LossFunction, train: Batch, val: Batch | None = None,
        config: FitConfig | None = None, epoch_metrics: EpochMetrics | None = None) -> FitReport:
    """Train ``model`` with Adam on shuffled mini-batches of ``train``.

    Args:
        model: any ``torch.nn.Module``; it is moved to ``config.device`` and left in eval mode.
        loss_fn: ``loss_fn(model, batch) -> {"loss": scalar tensor, **other parts}``; ``batch`` has the type of
            ``train`` (a NamedTuple of tensors), restricted to the batch rows, already on the device.
        train: a batch of the whole training set: tensors with the same first dimension.
        val: the validation set in the same form; when given, the learning-rate plateau and early stopping follow
            the validation value of the loss part ``config.monitor`` (default: the loss itself) and the weights of
            the best validation epoch are restored at the end (``config.validation = "select"``); with
            ``config.validation = "log"`` it is only logged, as in DeepDRA's code (the plateau follows the training
            loss, all epochs run and the last epoch's weights are kept).
        config: :class:`FitConfig` (default: ``FitConfig()``).
        epoch_metrics: optional ``epoch_metrics(model) -> {name: value}`` called after every epoch (model in eval
            mode) and logged in the history; a diagnostic (e.g. test AUC per epoch), never used to choose anything.

    Returns:
        :class:`FitReport` (``history``: one row per epoch with ``lr``, ``train_<part>``, ``val_<part>`` and the
        names of ``epoch_metrics``).
    """
    config = config or FitConfig()
    selects = val is not None and config.validation == "select"
    seed_everything(config.seed)
    device = torch.device(config.device)
    model.to(device)
    loader = DataLoader(TensorDataset(*train), batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
    # the fused kernel updates every parameter in one pass; on CPU the default per-tensor path was a quarter of a step
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                 fused=device.type in ("cpu", "cuda"))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=config.plateau_factor,
                                                           patience=config.plateau_patience)
    rows, best, started = [], _BestWeights(keep_weights=selects, min_delta=config.min_delta), time.perf_counter()
    epochs = tqdm(range(1, config.epochs + 1), desc=config.description, disable=not config.progress,
                  file=sys.stderr, mininterval=1.0, leave=False)
    for epoch in epochs:
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        row |= {f"train_{k}": v for k, v in _train_epoch(model, loss_fn, loader, train, optimizer, config,
                                                         device).items()}
        row |= _after_epoch(model, loss_fn, val, config, epoch_metrics)
        monitored = _monitored(row, config.monitor, selects)
        scheduler.step(monitored)
        rows.append(row)
        best.update(model, monitored, epoch)
        epochs.set_postfix(loss=f"{row['train_loss']:.4f}", val=f"{row.get('val_loss', float('nan')):.4f}",
                           refresh=False)
        if selects and config.early_stopping_patience is not None and \
                best.stale >= config.early_stopping_patience:
            break
    epochs.close()
    if best.state is not None:
        model.load_state_dict(best.state)
    model.eval()
    seconds = time.perf_counter() - started
    return FitReport(pd.DataFrame(rows), best.epoch if selects else len(rows), seconds,
                     len(train[0]) * len(rows) / seconds)


def _after_epoch(model: torch.nn.Module, loss_fn: LossFunction, val: Batch | None, config: FitConfig,
                 epoch_metrics: EpochMetrics | None) -> dict[str, float]:
    """The validation loss parts (``val_<part>``) and the diagnostics of ``epoch_metrics`` after one epoch."""
    row = {f"val_{k}": v for k, v in evaluate_loss(model, loss_fn, val, config).items()} if val is not None else {}
    if epoch_metrics is not None:
        model.eval()
        row |= epoch_metrics(model)
    return row


def step_budget(config: FitConfig, n_train: int, min_steps: int = 0, min_patience_steps: int = 0) -> FitConfig:
    """``config`` with its budgets counted in optimiser steps for a training set of ``n_train`` rows.

    A large batch suits a large training set (fewer, cheaper steps per epoch) but leaves a small one (a real plate
    of a few hundred profiles: 1-2 steps per epoch) a few dozen steps in all. The epochs are raised so that training
    takes at least ``min_steps`` steps, the early-stopping patience so that it waits at least
    ``min_patience_steps`` steps (when early stopping is on), and the plateau patience to a third of that.

    Returns:
        a copy of ``config`` (unchanged values where the step floors are already met).
    """
    steps_per_epoch = max(1, -(-n_train // config.batch_size))
    epochs = max(config.epochs, -(-min_steps // steps_per_epoch))
    patience = config.early_stopping_patience
    if patience is not None:
        patience = max(patience, -(-min_patience_steps // steps_per_epoch))
    return replace(config, epochs=epochs, early_stopping_patience=patience,
                   plateau_patience=max(config.plateau_patience, (patience or 0) // 3))


def _monitored(row: dict[str, float], part: str, validation: bool) -> float:
    """The value of loss part ``part`` in one epoch's history row (validation if there is one, else training)."""
    key = f"{'val' if validation else 'train'}_{part}"
    if key not in row:
        parts = sorted(k.split("_", 1)[1] for k in row if k.startswith("train_"))
        raise KeyError(f"FitConfig.monitor = {part!r} is not a part of the loss; its parts are {parts}")
    return row[key]


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, loss_fn: LossFunction, data: Batch, config: FitConfig) -> dict[str, float]:
    """Mean of each loss part over ``data`` in batches (weighted by batch size), model in eval mode."""
    model.eval()
    device = torch.device(config.device)
    totals: dict[str, torch.Tensor] = {}
    n, size = len(data[0]), max(config.batch_size, 1024)
    for start in range(0, n, size):
        batch = to_device(batch_like(data, [t[start:start + size] for t in data]), device)
        for key, value in loss_fn(model, batch).items():
            totals[key] = totals.get(key, 0.0) + value.double() * len(batch[0])
    return {key: float(value) / n for key, value in totals.items()}  # one host copy per part
