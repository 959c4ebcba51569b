"""The interface every learned model of the book shares, and how a fitted one is kept on disk.

An *estimator* owns one network family and the settings it is trained with. It works on a *fold* of a task (the
rows of one split with the scalers fitted on its training rows, e.g. :class:`perturbx.tasks.l1000.L1000Fold`):

- ``fit(fold, seed) -> FitReport``: train on ``fold.split.train``, select the epoch on ``fold.split.val``;
- ``predict(fold, rows) -> array``: the point prediction for the fold's rows at positions ``rows``;
- ``sample(fold, rows, n, seed, **options) -> array`` for the generative ones (:class:`GenerativeEstimator`);
- ``save(folder)`` and ``load(folder, task)``: a *bundle* folder (:func:`save_bundle`).

A bundle holds ``config.json`` (the estimator's settings and what it was fitted on), ``weights.pt`` (the network's
state dict, read back with ``torch.load(weights_only=True)``, so loading runs no code from the file),
``scalers.npz`` (the statistics of the training rows, plain arrays) and ``manifest.json`` (format, kind, package
version, git commit and the sha256 of every other file). Loading checks every sha256 first: a bundle edited after
saving is refused with a one-line error, never used.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .. import __version__
from ..datasets.fetcher import sha256_of
from ..runtime import git_commit
from ..training import FitReport

__all__ = ["BUNDLE_FORMAT", "Bundle", "Estimator", "FitReport", "GenerativeEstimator", "SavedModelError",
           "load_bundle", "save_bundle"]

BUNDLE_FORMAT = 1
CONFIG_FILE, WEIGHTS_FILE, SCALERS_FILE, MANIFEST_FILE = "config.json", "weights.pt", "scalers.npz", "manifest.json"


class SavedModelError(ValueError):
    """A saved model folder that cannot be used: missing, of another kind, edited after saving, or fitted on
    another task. The message names the folder, what is wrong and the fix."""


@dataclass
class Bundle:
    """What :func:`load_bundle` read: the estimator's kind, its config, the network weights, the scaler arrays and
    the manifest (commit, version, sha256 of each file)."""

    kind: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    arrays: dict[str, np.ndarray]
    manifest: dict[str, Any]


def save_bundle(folder: Path | str, kind: str, config: dict[str, Any], state_dict: dict[str, torch.Tensor],
                arrays: dict[str, np.ndarray]) -> Path:
    """Write a bundle to ``folder`` whole or not at all (it is written beside it and renamed into place).

    Args:
        kind: the estimator's kind (e.g. ``"graph_model"``); :func:`load_bundle` refuses another.
        config: JSON-serialisable settings and the task fingerprint the estimator needs to rebuild itself.
        state_dict: the network's ``state_dict()`` (tensors are moved to the CPU).
        arrays: named numpy arrays (the fitted scalers' statistics).

    Returns:
        the folder.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, staging / WEIGHTS_FILE)
        np.savez(staging / SCALERS_FILE, **arrays)
        files = {name: sha256_of(staging / name) for name in (CONFIG_FILE, WEIGHTS_FILE, SCALERS_FILE)}
        manifest = {"format": BUNDLE_FORMAT, "kind": kind, "perturbx": __version__, "commit": git_commit(),
                    "files": files}
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _manifest(folder: Path, kind: str) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise SavedModelError(f"{folder}: no {MANIFEST_FILE}, so this is not a saved perturbx model; "
                              "save one with estimator.save(folder)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SavedModelError(f"{path}: not valid JSON ({error}); save the model again") from None
    if manifest.get("format") != BUNDLE_FORMAT:
        raise SavedModelError(f"{path}: bundle format {manifest.get('format')!r}, this perturbx reads format "
                              f"{BUNDLE_FORMAT}; save the model again with this version")
    if manifest.get("kind") != kind:
        raise SavedModelError(f"{folder}: a saved {manifest.get('kind')!r} model, not a {kind!r} one; load it "
                              f"with the estimator of that kind")
    return manifest


def load_bundle(folder: Path | str, kind: str) -> Bundle:
    """Read and verify a bundle written by :func:`save_bundle`.

    Raises:
        SavedModelError: the folder has no manifest, holds another kind of model, lacks a file, or a file's
            sha256 differs from the manifest (it was changed after saving).
    """
    folder = Path(folder)
    manifest = _manifest(folder, kind)
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise SavedModelError(f"{path}: missing from the saved model; save the model again")
        if sha256_of(path) != expected:
            raise SavedModelError(f"{path}: sha256 differs from {MANIFEST_FILE} (the file changed after the model "
                                  "was saved); save the model again rather than edit its files")
    with np.load(folder / SCALERS_FILE, allow_pickle=False) as arrays:
        scalers = {key: arrays[key] for key in arrays.files}
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    return Bundle(kind, json.loads((folder / CONFIG_FILE).read_text()), state, scalers, manifest)


def restore_weights(network: torch.nn.Module, bundle: Bundle, device: str = "cpu") -> torch.nn.Module:
    """``network`` (freshly built from the bundle's config) with the bundle's weights, on ``device``, in eval mode;
    a ``RuntimeError`` from torch names any tensor whose shape differs."""
    network.load_state_dict(bundle.state_dict)
    return network.to(device).eval()


def check_fitted_on(folder: Path | str, saved: dict[str, Any], task: dict[str, Any]) -> None:
    """Raise :class:`SavedModelError` when the task fingerprint ``saved`` (from the bundle's config) differs from
    ``task`` (the task a caller loads the model for), naming the first part that differs."""
    for key, value in saved.items():
        if task.get(key) != value:
            raise SavedModelError(f"{folder}: fitted on a task whose {key} was {value!r}, this one has "
                                  f"{task.get(key)!r}; load it with the task it was fitted on")


class Estimator(ABC):
    """A learned model: fit on a fold, predict rows of it, save and load itself.

    Subclasses set :attr:`kind` (the bundle's kind) and keep their trained network in :attr:`network`.
    """

    kind: ClassVar[str]
    network: torch.nn.Module | None = None

    @abstractmethod
    def fit(self, fold: Any, seed: int) -> FitReport:
        """Train on ``fold.split.train`` (validation: ``fold.split.val``) with everything stochastic seeded by
        ``seed``; returns the fit record (epochs run, best epoch, seconds, per-epoch history)."""

    @abstractmethod
    def predict(self, fold: Any, rows: np.ndarray) -> np.ndarray:
        """Point predictions for the fold's rows at positions ``rows`` (first dimension ``len(rows)``)."""

    @abstractmethod
    def save(self, folder: Path | str) -> Path:
        """Write the fitted estimator as a bundle (:func:`save_bundle`); returns the folder."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path | str, task: Any) -> Estimator:
        """The estimator saved in ``folder``, rebuilt for ``task`` (the task it was fitted on)."""

    def fitted_network(self) -> torch.nn.Module:
        """The trained network; a ``RuntimeError`` before :meth:`fit` or :meth:`load`."""
        if self.network is None:
            raise RuntimeError(f"this {self.kind} estimator is not fitted: call fit(fold, seed) or load(folder, task)")
        return self.network


class GenerativeEstimator(Estimator):
    """An estimator that also draws samples of the response distribution."""

    @abstractmethod
    def sample(self, fold: Any, rows: np.ndarray, n: int, seed: int, **options: Any) -> np.ndarray:
        """(len(rows), n, ...) draws for the fold's rows at positions ``rows``, seeded by ``seed``."""
