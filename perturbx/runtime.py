"""Where and how code runs: seeds, device choice and description, the git commit of the checkout."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
import random
import subprocess
from pathlib import Path

import numpy as np

DEVICE_ENV = "PERTURBX_DEVICE"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (CPU and all GPUs) with ``seed``."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def select_device(requested: str | None = None) -> str:
    """``"cuda"`` or ``"cpu"``: ``requested``, else ``$PERTURBX_DEVICE``, else CUDA when available.

    Raises:
        ValueError: an unknown device name, or ``"cuda"`` requested on a machine without CUDA.
    """
    import torch

    choice = requested or os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")
    if choice not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {choice!r}; use 'cpu' or 'cuda' (argument or ${DEVICE_ENV})")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device 'cuda' was requested but torch sees no CUDA device; use 'cpu' or unset ${DEVICE_ENV}")
    return choice


def describe_device(device: str) -> str:
    """A human-readable name of ``device``: the GPU model, or the CPU model with its core count."""
    import torch

    if device == "cuda":
        return f"GPU {torch.cuda.get_device_name(0)}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU {model} ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


def git_commit(where: Path | str | None = None) -> str:
    """Short commit of the checkout containing ``where`` (default: this package), ``+dirty`` if it has changes.

    Changes to the chapters' ``.ipynb`` files and to ``book/results/`` do not count as dirty: executing the book
    rewrites them.
    Returns ``"unknown (not a git checkout)"`` outside a git work tree.
    """
    folder = Path(where) if where is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short=10", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ":/", ":(exclude,top)book/*.ipynb",
                    ":(exclude,top)book/results")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + ("+dirty" if dirty else "")


# The packages whose versions decide a chapter's numbers; recorded in every chapter's provenance record.
RECORDED_PACKAGES = ("perturbx", "torch", "torch-geometric", "rdkit", "numpy", "pandas", "scipy", "scikit-learn",
                     "cmapPy", "h5py", "gseapy", "matplotlib", "seaborn", "papermill", "jupyter-book")


def package_versions(names: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str]:
    """Installed version of each of ``names`` ("not installed" where absent), and of Python itself."""
    versions = {"python": sys.version.split()[0]}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
