"""One fit loop for every torch model of the book: seeds, device, batches, early stopping, progress bar."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm.std import tqdm

from .runtime import seed_everything

LossFunction = Callable[[torch.nn.Module, Sequence[torch.Tensor]], dict[str, torch.Tensor]]


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
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    description: str = "training"


@dataclass
class FitResult:
    """What :func:`fit` did: per-epoch losses, the epoch whose weights were kept, time and throughput."""

    history: pd.DataFrame
    best_epoch: int
    seconds: float
    samples_per_second: float


def _mean_parts(parts: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([p[key] for p in parts])) for key in parts[0]}


def fit(model: torch.nn.Module, loss_fn: LossFunction, train: Sequence[torch.Tensor],
        val: Sequence[torch.Tensor] | None = None, config: FitConfig = FitConfig()) -> FitResult:
    """Train ``model`` with Adam on mini-batches of the tensors in ``train``.

    Args:
        model: any ``torch.nn.Module``; it is moved to ``config.device`` and left in eval mode.
        loss_fn: ``loss_fn(model, batch) -> {"loss": scalar tensor, **other parts}``; ``batch`` is a list of the
            tensors of ``train`` (or ``val``) restricted to the batch rows, already on the device.
        train: tensors with the same first dimension (e.g. cell index, drug index, label).
        val: validation tensors; when given, the learning-rate plateau and early stopping follow the validation
            loss and the weights of the best validation epoch are restored at the end.
        config: :class:`FitConfig`.

    Returns:
        :class:`FitResult`.
    """
    seed_everything(config.seed)
    device = torch.device(config.device)
    model.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(TensorDataset(*train), batch_size=config.batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=config.plateau_factor,
                                                           patience=config.plateau_patience)
    rows, best_loss, best_epoch, best_state, stale = [], np.inf, 0, None, 0
    started = time.perf_counter()
    epochs = tqdm(range(1, config.epochs + 1), desc=config.description, disable=not config.progress,
                  file=sys.stderr, mininterval=1.0, leave=False)
    for epoch in epochs:
        model.train()
        parts = []
        for batch in loader:
            batch = [t.to(device, non_blocking=True) for t in batch]
            optimizer.zero_grad(set_to_none=True)
            losses = loss_fn(model, batch)
            losses["loss"].backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            parts.append({k: float(v.detach()) for k, v in losses.items()})
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]} | {f"train_{k}": v for k, v in
                                                                       _mean_parts(parts).items()}
        monitored = row["train_loss"]
        if val is not None:
            row |= {f"val_{k}": v for k, v in evaluate_loss(model, loss_fn, val, config).items()}
            monitored = row["val_loss"]
        scheduler.step(monitored)
        rows.append(row)
        if monitored < best_loss - 1e-6:
            best_loss, best_epoch, stale = monitored, epoch, 0
            best_state = copy.deepcopy(model.state_dict()) if val is not None else None
        else:
            stale += 1
        epochs.set_postfix(loss=f"{row['train_loss']:.4f}", val=f"{row.get('val_loss', float('nan')):.4f}",
                           refresh=False)
        if val is not None and config.early_stopping_patience is not None and stale >= config.early_stopping_patience:
            break
    epochs.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    seconds = time.perf_counter() - started
    n_seen = len(train[0]) * len(rows)
    return FitResult(pd.DataFrame(rows), best_epoch if val is not None else len(rows), seconds, n_seen / seconds)


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, loss_fn: LossFunction, data: Sequence[torch.Tensor],
                  config: FitConfig) -> dict[str, float]:
    """Mean of each loss part over ``data`` in batches (weighted by batch size), model in eval mode."""
    model.eval()
    device = torch.device(config.device)
    totals: dict[str, float] = {}
    n = len(data[0])
    for start in range(0, n, max(config.batch_size, 1024)):
        batch = [t[start:start + max(config.batch_size, 1024)].to(device) for t in data]
        for key, value in loss_fn(model, batch).items():
            totals[key] = totals.get(key, 0.0) + float(value) * len(batch[0])
    return {key: value / n for key, value in totals.items()}
