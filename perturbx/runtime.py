"""Where and how code runs: seeds (and seeds derived from them), device choice and description, the git commit
of the checkout, the versions of the packages that decide the numbers."""

from __future__ import annotations

import hashlib
import numbers
import os
import platform
import random
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

try:
    import resource
except ImportError:  # Windows has no getrusage
    resource = None

DEVICE_ENV = "PERTURBX_DEVICE"
COMMIT_ENV = "PERTURBX_COMMIT"
_SEED_BOUND = 2**31


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (CPU and all GPUs) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _key_words(key: str | int) -> tuple[int, int]:
    """Two 32-bit words of a stable hash of ``key`` (its type included, so ``1`` and ``"1"`` differ)."""
    if isinstance(key, bool | np.bool_) or not isinstance(key, str | numbers.Integral):
        raise TypeError(f"seed key {key!r}: use a str or an int")
    key = key if isinstance(key, str) else int(key)  # NumPy integers hash like the same Python int
    tagged = f"{type(key).__name__}:{key}".encode()
    digest = int.from_bytes(hashlib.sha256(tagged).digest()[:8], "little")
    return digest & 0xFFFFFFFF, digest >> 32


def derive_seed(base_seed: int, *keys: str | int) -> int:
    """A seed for one part of an experiment, derived from the chapter's seed and the keys naming the part.

    Why: an experiment needs a seed per (chapter seed, experiment, split, model, ...). Arithmetic such as
    ``seed * 100_003 + n`` makes such seeds collide (seed 1 of one experiment equals seed 0 of another, and
    neighbouring seeds give correlated streams). Here the keys are hashed with sha256 (stable across processes and
    machines, unlike Python's salted ``hash``) into the spawn key of a :class:`numpy.random.SeedSequence` whose
    entropy is ``base_seed``, so every distinct (base seed, keys) gives its own well-mixed seed.

    Args:
        base_seed: the chapter's seed, a non-negative int.
        *keys: names and numbers of the part, e.g. ``("cross-validation", fold, "ridge")``; the order matters.

    Returns:
        An int in ``[0, 2**31)``, accepted by every generator (torch, NumPy, scikit-learn); the same on every call.

    Raises:
        ValueError: ``base_seed`` is negative.
        TypeError: a key is neither a str nor an int.
    """
    if int(base_seed) < 0:
        raise ValueError(f"base seed {base_seed}: use a non-negative int")
    words = tuple(word for key in keys for word in _key_words(key))
    sequence = np.random.SeedSequence(int(base_seed), spawn_key=words)
    return int(sequence.generate_state(1, dtype=np.uint32)[0]) % _SEED_BOUND


def select_device(requested: str | None = None) -> str:
    """``"cuda"`` or ``"cpu"``: ``requested``, else ``$PERTURBX_DEVICE``, else CUDA when available.

    Raises:
        ValueError: an unknown device name, or ``"cuda"`` requested on a machine without CUDA.
    """
    choice = requested or os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")
    if choice not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {choice!r}; use 'cpu' or 'cuda' (argument or ${DEVICE_ENV})")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device 'cuda' was requested but torch sees no CUDA device; use 'cpu' or unset ${DEVICE_ENV}")
    return choice


def parallel_jobs(device: str, most: int = 4) -> int:
    """How many jobs (seeds, folds) to train at once on ``device``: one on a GPU (the jobs would queue on it),
    otherwise one per CPU core up to ``most`` (small models use cores better as parallel jobs than as threads)."""
    return 1 if device == "cuda" else max(1, min(most, os.cpu_count() or 1))


def peak_memory_mb() -> float:
    """The peak resident memory of this process or of the largest of its finished child processes (MB), as the
    operating system counts it (``getrusage``; 0 where it is not available)."""
    if resource is None:
        return 0.0
    kilobytes = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return round(kilobytes / 1024, 1)  # Linux reports kB


def describe_device(device: str) -> str:
    """A human-readable name of ``device``: the GPU model, or the CPU model with its core count."""
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
    Outside a git work tree: ``$PERTURBX_COMMIT`` where set (a bundle's ``run.sh`` sets it to the commit the bundle
    was written at, for a copy of the checkout without ``.git``), else ``"unknown (not a git checkout)"``.
    """
    folder = Path(where) if where is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short=10", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ":/", ":(exclude,top)book/*.ipynb",
                    ":(exclude,top)book/results")
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get(COMMIT_ENV) or "unknown (not a git checkout)"
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
