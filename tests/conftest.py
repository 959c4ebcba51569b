"""Shared fixtures: tiny registries over files the tests make, and the real mirror when it is present."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from perturbx.datasets import DataFile, Registry

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def sha256_bytes(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def data_file(name: str, path: str, payload: bytes, **fields) -> DataFile:
    """A registry entry describing ``payload`` (url defaults to an address nothing listens on)."""
    fields.setdefault("url", "http://127.0.0.1:9/unreachable")
    return DataFile(name=name, path=path, sha256=sha256_bytes(payload), size=len(payload), licence="CC0",
                    citation="test", description=f"test file {name}", **fields)


@pytest.fixture
def tiny_mirror(tmp_path: Path) -> tuple[Registry, Path]:
    """A mirror folder with two small files and the registry that describes them."""
    mirror = tmp_path / "mirror"
    files = {"alpha": ("group/alpha.txt", b"alpha payload\n"), "beta": ("group/sub/beta.csv", b"a,b\n1,2\n")}
    entries = []
    for name, (relative, payload) in files.items():
        (mirror / relative).parent.mkdir(parents=True, exist_ok=True)
        (mirror / relative).write_bytes(payload)
        entries.append(data_file(name, relative, payload))
    return Registry(entries), mirror


@pytest.fixture
def real_mirror() -> Path:
    """The project's shared data folder (as CI provides it); tests that need it skip where it is absent."""
    configured = os.environ.get("PERTURBX_DATA_MIRROR")
    mirror = Path(configured) if configured else SHARED_DATA
    if not (mirror / "lincs").is_dir():
        pytest.skip(f"no data mirror at {mirror}; set PERTURBX_DATA_MIRROR to run this test")
    return mirror


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache folder, never the user's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("PERTURBX_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def mirror_env(real_mirror: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Registry files (landmark genes, basal profiles, compounds...) come from the real mirror."""
    monkeypatch.setenv("PERTURBX_DATA_MIRROR", str(real_mirror))
    return real_mirror


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and lose much to them on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
