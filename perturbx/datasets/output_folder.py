"""Output folders that are written whole or not at all, locked while a run writes them.

:func:`check_output_folder` refuses a path before any work; :func:`output_lock` holds ``.<name>.lock`` beside the
folder (a second run fails at once) and removes what killed runs left; :func:`swap_in` renames a complete staging
folder into place; :func:`verify_folder` and :func:`previous_result` decide whether a result may be reused (its
summary.json records the sha256 of every file).
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .fetcher import sha256_of

# The files of a curated folder (see perturbx.datasets.curated.CuratedL1000.save); nothing else may be replaced.
CURATED_FILES = ("expression.npy", "basal.npy", "metadata.csv", "genes.csv", "dropped.csv", "summary.json")


class OutputFolderError(DataError):
    """An output folder that cannot be used: a file, in a folder that cannot be written, or holding other files."""


class OutputLockedError(OutputFolderError):
    """Another run holds the lock of the output folder (``.<name>.lock`` beside it)."""


def check_output_folder(folder: Path | str, label: str = "--out") -> Path:
    """The absolute path of a folder that curation may write (missing parent folders are created).

    Args:
        folder: the output folder.
        label: how messages name it (``--out`` on the command line).

    Raises:
        OutputFolderError: the path is a file or lies inside one, its parent cannot be created, or it is a folder
            holding files other than :data:`CURATED_FILES` (which replacing it would delete).
    """
    folder = Path(os.path.abspath(folder))
    if not folder.name:
        raise OutputFolderError(f"{label} {folder}: a file system root. Fix: give a folder below it.")
    for ancestor in folder.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputFolderError(f"{label} {folder}: {ancestor} is a file, not a folder. "
                                        "Fix: choose a path in a folder.")
            break
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{label} {folder}: exists and is a file, not a folder. "
                                "Fix: give a new folder, or one written by perturbx lincs curate.")
    try:
        others = sorted(p.name for p in folder.iterdir() if p.name not in CURATED_FILES) if folder.is_dir() else []
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputFolderError(f"{label} {folder}: cannot be used ({error.strerror}: {error.filename}). "
                                "Fix: choose a folder you can write to.") from error
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise OutputFolderError(f"{label} {folder}: holds files that curation did not write ({shown}), which "
                                "replacing the folder would delete. Fix: give a new folder, or move them out.")
    return folder


@contextmanager
def output_lock(folder: Path, wait: bool = False, label: str = "--out") -> Iterator[None]:
    """Hold the lock of an output folder: ``flock`` on ``.<name>.lock`` beside it (the file stays in place).

    While it is held, what killed runs left beside the folder (``.<name>.tmp-<pid>``, ``.<name>.old-<pid>``)
    is removed: no other run can be using it.

    Args:
        folder: the output folder, absolute (as :func:`check_output_folder` returns it).
        wait: wait for another holder to finish; by default fail at once.
        label: how messages name the folder.

    Raises:
        OutputLockedError: another process holds the lock (and ``wait`` is false).
        OutputFolderError: the lock file cannot be created (the parent folder cannot be written).
    """
    lock_path = folder.parent / f".{folder.name}.lock"
    try:
        handle = open(lock_path, "a+")
    except OSError as error:
        raise OutputFolderError(f"{label} {folder}: cannot write in {folder.parent} ({error.strerror}). "
                                "Fix: choose a folder you can write to.") from error
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            by = f" by process {holder}" if holder.isdigit() else ""
            raise OutputLockedError(f"{label} {folder}: another perturbx run is writing it ({lock_path} is locked"
                                    f"{by}). Fix: wait for that run to finish, or give another {label}.") from None
        try:
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
            _remove_leftovers(folder)
            yield
        finally:
            handle.truncate(0)


def _remove_leftovers(folder: Path) -> None:
    """Remove ``.<name>.tmp-<pid>`` and ``.<name>.old-<pid>`` beside ``folder`` (call with its lock held).

    A run killed between renaming the old result aside and renaming the new one in leaves no ``folder`` but a
    complete ``.old-<pid>``: that one is renamed back, not removed.
    """
    pattern = re.compile(rf"\.{re.escape(folder.name)}\.(tmp|old)-\d+")
    if not os.path.lexists(folder):
        aside = sorted(folder.parent.glob(f".{glob.escape(folder.name)}.old-*"), key=lambda p: p.stat().st_mtime)
        if aside:
            aside[-1].rename(folder)
    for entry in folder.parent.iterdir():
        if pattern.fullmatch(entry.name):
            entry.unlink() if entry.is_symlink() or not entry.is_dir() else shutil.rmtree(entry, ignore_errors=True)


def swap_in(staging: Path, folder: Path) -> None:
    """Rename the complete ``staging`` folder to ``folder``; an old ``folder`` is renamed aside, then removed."""
    if not os.path.lexists(folder):
        staging.rename(folder)
        return
    old = folder.parent / f".{folder.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    folder.rename(old)
    try:
        staging.rename(folder)
    except BaseException:
        old.rename(folder)
        raise
    old.unlink() if old.is_symlink() else shutil.rmtree(old, ignore_errors=True)


def verify_folder(folder: Path, summary: Mapping) -> str | None:
    """Why ``folder`` disagrees with its summary.json (rows of the arrays and metadata, sha256 of every file).

    Returns:
        One phrase such as ``"basal.npy: sha256 differs from summary.json"``, or None when the folder agrees.
    """
    files = summary.get("files")
    if not isinstance(files, Mapping) or set(files) != set(CURATED_FILES) - {"summary.json"}:
        return "summary.json records no checksums of the files"
    for name in files:
        if not (folder / name).is_file():
            return f"{name} is missing"
    for name in ("expression.npy", "basal.npy", "metadata.csv"):
        rows = _count_rows(folder / name)
        if rows is None:
            return f"{name} cannot be read"
        if rows != summary.get("n_profiles"):
            return f"{name} has {rows} rows, summary.json says {summary.get('n_profiles')}"
    for name, digest in files.items():
        if sha256_of(folder / name) != digest:
            return f"{name}: sha256 differs from summary.json"
    return None


def _count_rows(path: Path) -> int | None:
    """Rows of a .npy array or a .csv table; None where the file cannot be read."""
    try:
        if path.suffix == ".npy":
            return int(np.load(path, mmap_mode="r").shape[0])
        return len(pd.read_csv(path, usecols=[0]))
    except (OSError, ValueError, EOFError, IndexError, pd.errors.ParserError):
        return None


def previous_result(out: Path, key: str) -> tuple[dict | None, str | None]:
    """(summary, None) when ``out`` holds a complete result of cache key ``key`` that agrees with its summary.

    Otherwise (None, why it is not reused), or (None, None) where there is no result at all.
    """
    if not out.is_dir() or not any(out.iterdir()):
        return None, None
    try:
        previous = json.loads((out / "summary.json").read_text())
    except FileNotFoundError:
        return None, "no summary.json"
    except (OSError, ValueError):
        return None, "summary.json cannot be read"
    if not isinstance(previous, dict) or previous.get("cache_key") != key:
        return None, "inputs, parameters or curation version changed"
    problem = verify_folder(out, previous)
    return (None, problem) if problem else (previous, None)

