"""L1000 curation: compound treatments paired with basal expression, every dropped profile reported.

The result of every curation is a :class:`CuratedL1000`: treated profiles and their paired basal profiles over the
978 landmark genes (in :func:`~perturbx.datasets.cmap.landmark_genes` order), one tidy metadata row per profile,
the dropped profiles with their reasons, and a summary.

Value kinds by data level: level 3 profiles are log2 expression; level 4 are robust z-scores against the plate;
level 5 are MODZ signatures (replicate-collapsed z-scores). Basal profiles are always log2 expression: the mean of
the same plate's DMSO wells for level 3 data that has them, otherwise the cell line's row of the basal table
(TranSiGen's LINCS 2020 control profiles of 164 cell lines).

A curated folder (:meth:`CuratedL1000.save`) is written whole or not at all (a temporary folder beside it, renamed
into place when complete), and its summary.json records the sha256 of every file; :func:`curate_files` (the
``perturbx lincs curate`` command) checks ``--out`` before any work, holds a lock on it (``.<name>.lock`` beside
it; a second run fails at once) and reuses a result only when it agrees with its summary.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from .. import chem
from .cmap import (
    N_LANDMARKS,
    L1000Matrix,
    MetadataError,
    check_unique_profile_ids,
    harmonise,
    index_by_profile_id,
    landmark_genes,
    read_matrix,
    read_table,
)
from .errors import DataError
from .fetcher import cache_dir, fetch, read_pickle, sha256_of

CURATION_VERSION = 2  # bump when curation logic changes, to invalidate cached results
VALUE_KIND = {3: "log2 expression", 4: "robust z-score", 5: "MODZ z-score"}
CONTROL_TYPES = ("ctl_vehicle",)
METADATA_COLUMNS = ["profile_id", "source", "level", "compound_id", "compound_name", "canonical_smiles",
                    "compound_group", "smiles_source", "cell_id", "dose_um", "time_h", "plate", "basal_source"]
CURATED_FILES = ("expression.npy", "basal.npy", "metadata.csv", "genes.csv", "dropped.csv", "summary.json")


class OutputFolderError(DataError):
    """An output folder that cannot be used: a file, in a folder that cannot be written, or holding other files."""


class OutputLockedError(OutputFolderError):
    """Another run holds the lock of the output folder (``.<name>.lock`` beside it)."""


class NothingKeptError(DataError):
    """A curation that dropped every profile; nothing is written."""


# --------------------------------------------------------------------------------------------------- result

@dataclass
class CuratedL1000:
    """Curated profiles.

    Attributes:
        expression: float32 (n, 978) treated profiles (units: see ``metadata.level`` and :data:`VALUE_KIND`).
        basal: float32 (n, 978) paired basal log2 expression.
        metadata: one row per profile, columns :data:`METADATA_COLUMNS`.
        dropped: one row per dropped record: profile_id, source, reason.
        genes: the 978 landmark genes (gene_id, gene_symbol) in column order.
    """

    expression: np.ndarray
    basal: np.ndarray
    metadata: pd.DataFrame
    dropped: pd.DataFrame
    genes: pd.DataFrame

    def __post_init__(self) -> None:
        n = len(self.metadata)
        if self.expression.shape != (n, N_LANDMARKS) or self.basal.shape != (n, N_LANDMARKS):
            raise ValueError(f"expression {self.expression.shape} and basal {self.basal.shape} must both be "
                             f"({n}, {N_LANDMARKS})")

    def __len__(self) -> int:
        return len(self.metadata)

    def subset(self, mask: np.ndarray | pd.Series) -> CuratedL1000:
        """The profiles where ``mask`` is true (or at the given integer positions); ``dropped`` is kept whole."""
        index = np.asarray(mask)
        index = np.flatnonzero(index) if index.dtype == bool else index
        return CuratedL1000(self.expression[index], self.basal[index],
                            self.metadata.iloc[index].reset_index(drop=True), self.dropped, self.genes)

    def require_level(self, level: int, kind: str, why: str, fix: str) -> None:
        """Raise ``ValueError`` unless every profile is of ``level``; the message counts the others, names one, and
        gives ``kind`` (what the profiles must be), ``why`` and ``fix``."""
        meta = self.metadata
        other = meta.index[meta["level"] != level]
        if len(other):
            raise ValueError(f"{len(other)} profiles are not {kind} (e.g. {meta.at[other[0], 'profile_id']}, level "
                             f"{meta.at[other[0], 'level']}); {why}. Fix: {fix}.")

    @property
    def change(self) -> np.ndarray:
        """Treated minus basal, float32 (n, 978); meaningful for level-3 (log2 expression) profiles."""
        return self.expression - self.basal

    def summary(self) -> dict:
        """Counts: n_profiles, n_compounds, n_cells, n_genes, sorted doses_um and times_h, dropped by reason, and
        the profiles dropped / control wells left out of basal means for NaN or infinite values."""
        meta = self.metadata
        reasons = self.dropped["reason"].str.split(":").str[0] if len(self.dropped) else pd.Series(dtype=str)
        return {
            "n_profiles": int(len(meta)),
            "n_compounds": int(meta["compound_group"].nunique()),
            "n_cells": int(meta["cell_id"].nunique()),
            "n_genes": int(self.expression.shape[1]),
            "doses_um": sorted(float(d) for d in meta["dose_um"].dropna().unique()),
            "times_h": sorted(float(t) for t in meta["time_h"].dropna().unique()),
            "dropped": {str(k): int(v) for k, v in reasons.value_counts().sort_index().items()},
            "non_finite_profiles_dropped": int((reasons == "non-finite values").sum()),
            "non_finite_controls_excluded": int((reasons == "non-finite control well").sum()),
            **self._design_summary(),
        }

    def _design_summary(self) -> dict:
        """Conditions and replicates (where profiles carry a ``replicate_group``), and how many profiles have no
        cell line, dose, time or basal profile (consensus signatures have none: recorded as missing)."""
        meta, summary = self.metadata, {}
        if "replicate_group" in meta.columns:
            sizes = meta.groupby("replicate_group").size()
            summary |= {"n_conditions": int(len(sizes)),
                        "replicates_per_condition": {str(k): int(v) for k, v in sizes.value_counts().sort_index()
                                                     .items()}}
        missing = {"cell_id": int(meta["cell_id"].isna().sum()), "dose_um": int(meta["dose_um"].isna().sum()),
                   "time_h": int(meta["time_h"].isna().sum()),
                   "basal": int((~np.isfinite(self.basal)).all(axis=1).sum())}
        return summary | {"profiles_without": {k: v for k, v in missing.items() if v}}

    def save(self, folder: Path | str, extra_summary: Mapping | None = None) -> dict:
        """Write the curated folder whole or not at all (see :data:`CURATED_FILES`).

        The files are written into ``.<name>.tmp-<pid>`` beside ``folder`` and the complete folder is renamed into
        place; an existing ``folder`` is renamed aside first and removed after, never overwritten file by file.
        summary.json, written last, records the sha256 of every other file (``files``), which
        :func:`verify_folder` checks before a folder is reused. Not locked: callers that may run concurrently hold
        :func:`output_lock`.

        Returns:
            The summary written: :meth:`summary`, ``extra_summary`` and ``files``.

        Raises:
            OutputFolderError: ``folder`` is a file, holds other files, or its parent cannot be written.
        """
        folder = check_output_folder(folder, "output folder")
        staging = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            try:
                staging.mkdir()
            except OSError as error:
                raise OutputFolderError(f"output folder {folder}: cannot write in {folder.parent} "
                                        f"({error.strerror}). Fix: choose a folder you can write to.") from error
            summary = self._write(staging, extra_summary)
            _swap_in(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return summary

    def _write(self, folder: Path, extra_summary: Mapping | None) -> dict:
        """Write every file into ``folder``, summary.json (with the others' sha256) last; return the summary."""
        np.save(folder / "expression.npy", self.expression)
        np.save(folder / "basal.npy", self.basal)
        self.metadata.to_csv(folder / "metadata.csv", index=False)
        self.genes.to_csv(folder / "genes.csv", index=False)
        self.dropped.to_csv(folder / "dropped.csv", index=False)
        files = {name: sha256_of(folder / name) for name in CURATED_FILES if name != "summary.json"}
        summary = self.summary() | dict(extra_summary or {}) | {"files": files}
        (folder / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    @classmethod
    def load(cls, folder: Path | str) -> CuratedL1000:
        """Read a folder written by :meth:`save`."""
        folder = Path(folder)
        metadata = pd.read_csv(folder / "metadata.csv", dtype={"profile_id": str, "compound_id": str,
                                                                "cell_id": str, "plate": str})
        return cls(np.load(folder / "expression.npy"), np.load(folder / "basal.npy"), metadata,
                   pd.read_csv(folder / "dropped.csv", dtype=str), pd.read_csv(folder / "genes.csv"))

    @classmethod
    def concat(cls, parts: Sequence[CuratedL1000]) -> CuratedL1000:
        """Stack curated sets (same gene order), keeping every part's dropped records."""
        return cls(np.concatenate([p.expression for p in parts]), np.concatenate([p.basal for p in parts]),
                   pd.concat([p.metadata for p in parts], ignore_index=True),
                   pd.concat([p.dropped for p in parts], ignore_index=True), parts[0].genes)


# --------------------------------------------------------------------------------------------------- output folder

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


def _swap_in(staging: Path, folder: Path) -> None:
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


def _previous_result(out: Path, key: str) -> tuple[dict | None, str | None]:
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


# --------------------------------------------------------------------------------------------------- inputs

@cache
def compound_table() -> pd.DataFrame:
    """LINCS compound metadata (registry ``lincs_compound_info``) indexed by 13-character BRD id."""
    table = read_table(fetch("lincs_compound_info"))
    return index_compound_table(table, "lincs_compound_info")


def index_compound_table(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """A LINCS compound table (pertinfo / compoundinfo_beta columns) as pert_id-indexed rows with pert_iname,
    smiles and inchi_key; ``source`` names the table in errors."""
    name_column = next((c for c in ("pert_iname", "cmap_name", "compound_name") if c in table.columns), None)
    if "pert_id" not in table.columns or "canonical_smiles" not in table.columns:
        raise MetadataError(f"{source}: a compound table needs columns pert_id and canonical_smiles "
                            "(as pertinfo / compoundinfo_beta have). Fix: give the compound table of the release.")
    out = pd.DataFrame({
        "pert_id": table["pert_id"].astype(str).str[:13],
        "pert_iname": table[name_column] if name_column else np.nan,
        "smiles": table["canonical_smiles"],
        "inchi_key": table["inchi_key"] if "inchi_key" in table.columns else np.nan,
    })
    out = out[out["smiles"].notna() & (out["smiles"].astype(str).str.strip() != "")]
    return out.drop_duplicates("pert_id").set_index("pert_id")


@cache
def basal_profiles() -> pd.DataFrame:
    """Basal log2 expression of 164 LINCS 2020 cell lines (registry ``transigen_basal_profiles``).

    Returns:
        DataFrame (cells x 978), columns = landmark Entrez ids in :func:`landmark_genes` order.
    """
    raw = read_pickle("transigen_basal_profiles")
    file_order = _transigen_gene_order()
    cells = sorted(k for k in raw if k != "averaged")  # 'averaged' is the mean over cells, not a cell line
    values = np.stack([np.asarray(raw[c], dtype=np.float32).reshape(-1) for c in cells])
    return pd.DataFrame(values[:, file_order], index=pd.Index(cells, name="cell_id"),
                        columns=landmark_genes()["gene_id"].to_numpy())


def _transigen_gene_order() -> np.ndarray:
    """Positions that reorder TranSiGen arrays (genes sorted by Entrez id as text) into landmark order."""
    file_genes = pd.read_csv(fetch("landmark_geneinfo"))["gene_id"].astype(int).to_numpy()
    position = pd.Series(np.arange(len(file_genes)), index=file_genes)
    return position.loc[landmark_genes()["gene_id"].to_numpy()].to_numpy()


def infer_level(matrix: L1000Matrix) -> int:
    """3 (log2 expression), 4 (plate z-scores) or 5 (signatures), from provenance codes, values and ids."""
    codes = matrix.columns.get("provenance_code")
    if codes is not None and codes.notna().any():
        return 4 if codes.astype(str).str.contains("ZS").any() else 3
    if np.nanpercentile(matrix.values, 1) >= 0:  # log2 expression is non-negative; z-scores are centred on 0
        return 3
    signature_ids = pd.Series(matrix.columns.index).str.count(":") >= 2
    return 5 if signature_ids.mean() > 0.5 else 4


# --------------------------------------------------------------------------------------------------- curation

class DropReport:
    """Collects (profile_id, source, reason) for every record a reader removes; every reader of the curated format
    (:mod:`lincs`, :mod:`pharmacoset`, :mod:`consensus`) reports its drops through one."""

    def __init__(self, source: str):
        self.source = source
        self.rows: list[tuple[str, str, str]] = []

    def add(self, ids, reason: str | Sequence[str]) -> None:
        """Record ``ids`` as dropped for ``reason`` (one for all, or one per id)."""
        ids = list(ids)
        reasons = [reason] * len(ids) if isinstance(reason, str) else list(reason)
        self.rows += [(str(i), self.source, r) for i, r in zip(ids, reasons)]

    def table(self) -> pd.DataFrame:
        """The drops so far: one row per record, columns profile_id, source, reason."""
        return pd.DataFrame(self.rows, columns=["profile_id", "source", "reason"])


def curate(matrix: L1000Matrix, meta: pd.DataFrame | None = None, *, compounds: pd.DataFrame | None = None,
           basal: pd.DataFrame | None = None, min_compound_count: int = 1, qc: bool = False,
           level: int | None = None, source: str | None = None) -> CuratedL1000:
    """Curate one matrix: keep compound treatments, pair each with basal expression, report every drop.

    Stages, each recording what it drops: metadata join, treatment selection (profiles with NaN or infinite
    values dropped; such control wells left out of the basal mean), dose/time/QC filters (a dose or time must be
    finite and > 0), compound resolution, basal pairing, rare-compound filter.

    Args:
        matrix: profiles read by :func:`~perturbx.datasets.cmap.read_matrix`, values (n_profiles, 978).
        meta: separate per-profile metadata table (sig_info / inst_info / siginfo_beta) for GCTX files that hold
            only ids; ``None`` uses the metadata inside the file.
        compounds: compound table indexed by 13-character BRD id with a ``smiles`` column (default
            :func:`compound_table`).
        basal: cells x 978 basal log2 expression (default :func:`basal_profiles`).
        min_compound_count: drop compounds with fewer profiles than this (after the other filters).
        qc: drop profiles whose ``qc_pass``/``is_gold`` is 0.
        level: CMap data level (3, 4 or 5); inferred when ``None`` (see :func:`infer_level`).
        source: name of the input in the metadata and the drop table (default: the file name).

    Returns:
        :class:`CuratedL1000`; kept profiles stay in input order.

    Raises:
        DuplicateProfileIdError: the matrix's profile ids are not unique.
    """
    source = source or Path(matrix.source).name
    check_unique_profile_ids(matrix.columns.index, source)
    level = level or infer_level(matrix)
    compounds = compounds if compounds is not None else compound_table()
    basal = basal if basal is not None else basal_profiles()
    drops = DropReport(source)
    columns, values = _join_metadata(matrix, meta, drops)
    tidy, unit_problems = harmonise(columns, source)
    tidy["row"] = np.arange(len(tidy))
    controls, treatments = _select_treatments(tidy, values, level, drops)
    treatments = _filter_doses_and_qc(treatments, unit_problems, qc, drops)
    treatments = _resolve_compounds(treatments, compounds, drops)
    treatments, basal_array = _pair_basal(treatments, controls, values, basal, level, drops)
    treatments, basal_array = _drop_rare(treatments, basal_array, min_compound_count, drops)
    return _assemble(treatments, values, basal_array, source, level, drops)


def _join_metadata(matrix: L1000Matrix, meta: pd.DataFrame | None,
                   drops: DropReport) -> tuple[pd.DataFrame, np.ndarray]:
    """The profiles' metadata and values (n, 978): the file's own, or those with a row in ``meta``."""
    if meta is None:
        return matrix.columns, matrix.values
    meta = index_by_profile_id(meta, "metadata table")
    known = matrix.columns.index.isin(meta.index)
    drops.add(matrix.columns.index[~known], "no metadata: profile id not in the metadata table")
    return meta.loc[matrix.columns.index[known]], matrix.values[known]


def _select_treatments(tidy: pd.DataFrame, values: np.ndarray, level: int,
                       drops: DropReport) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(usable controls, compound treatments with finite values); the rest goes to the drop table.

    A level-3 control well with NaN or infinite values is left out of the basal mean, a treatment with any is
    dropped; both are reported with the number of genes.
    """
    non_finite = _non_finite_counts(values)
    controls = tidy[tidy["pert_type"].isin(CONTROL_TYPES)]
    treatments = tidy[tidy["pert_type"] == "trt_cp"]
    others = tidy.index[~tidy["pert_type"].isin((*CONTROL_TYPES, "trt_cp"))]
    drops.add(others, [f"not a compound treatment: pert_type {t}" for t in tidy.loc[others, "pert_type"]])
    if level == 3:
        bad = non_finite[controls["row"].to_numpy()]
        drops.add(controls.index, [f"non-finite control well: {n} genes, left out of the basal mean" if n else
                                   "control well: used as basal, not a treatment" for n in bad])
        controls = controls[bad == 0]
    else:
        drops.add(controls.index, "control: not a compound treatment")
    bad = non_finite[treatments["row"].to_numpy()]
    drops.add(treatments.index[bad > 0], [f"non-finite values: {n} genes" for n in bad[bad > 0]])
    return controls, treatments[bad == 0]


def _non_finite_counts(values: np.ndarray) -> np.ndarray:
    """Number of NaN or infinite genes of every profile; rows are screened by their sum (no copy of the matrix)."""
    counts = np.zeros(len(values), dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        suspects = np.flatnonzero(~np.isfinite(values.sum(axis=1, dtype=np.float64)))
    if len(suspects):
        counts[suspects] = np.count_nonzero(~np.isfinite(values[suspects]), axis=1)
    return counts


def _filter_doses_and_qc(treatments: pd.DataFrame, unit_problems: pd.DataFrame, qc: bool,
                         drops: DropReport) -> pd.DataFrame:
    """Drop treatments with an unreadable or missing dose/time, and (when ``qc``) those that failed QC."""
    problems = unit_problems.set_index("profile_id")["reason"]
    bad_units = treatments.index.isin(problems.index)
    first_reason = problems[~problems.index.duplicated()].reindex(treatments.index[bad_units])  # in row order
    drops.add(treatments.index[bad_units], [f"unreadable dose/time: {r}" for r in first_reason])
    treatments = treatments[~bad_units]
    no_dose = treatments["dose_um"].isna() | treatments["time_h"].isna()
    drops.add(treatments.index[no_dose], "missing dose or time")
    treatments = treatments[~no_dose]
    invalid = _invalid_dose_or_time(treatments)
    drops.add(treatments.index[invalid.notna().to_numpy()], invalid.dropna())
    treatments = treatments[invalid.isna().to_numpy()]
    if qc:
        failed = treatments["qc_pass"] == 0
        drops.add(treatments.index[failed], "failed QC: qc_pass/is_gold is 0")
        treatments = treatments[~failed]
    return treatments


def _invalid_dose_or_time(treatments: pd.DataFrame) -> pd.Series:
    """The drop reason of every treatment whose dose or time is not finite and > 0, else None."""
    dose, time = treatments["dose_um"].to_numpy(float), treatments["time_h"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        bad_dose, bad_time = ~(np.isfinite(dose) & (dose > 0)), ~(np.isfinite(time) & (time > 0))
    reasons = np.full(len(treatments), None, dtype=object)
    reasons[bad_time] = [f"invalid dose/time: time {t:g} h (must be finite and > 0)" for t in time[bad_time]]
    reasons[bad_dose] = [f"invalid dose/time: dose {d:g} µM (must be finite and > 0)" for d in dose[bad_dose]]
    return pd.Series(reasons, index=treatments.index, dtype=object)


def _resolve_compounds(tidy: pd.DataFrame, compounds: pd.DataFrame, drops: DropReport) -> pd.DataFrame:
    """Add compound_id, compound_name, canonical_smiles, compound_group, smiles_source; drop what cannot be."""
    brd = tidy["pert_id"].astype(str).str[:13]
    smiles = brd.map(compounds["smiles"])
    source = pd.Series(np.where(smiles.notna(), "pert_id", None), index=tidy.index, dtype=object)
    from_name = tidy["pert_iname"].astype(str).str.lower().map(_smiles_by_name(tidy[smiles.isna()], compounds))
    fill = smiles.isna() & from_name.notna()
    smiles[fill] = from_name[fill]
    source[fill] = "pert_iname"
    missing = smiles.isna()
    drops.add(tidy.index[missing], [f"no SMILES: compound {p} ({n}) is not in the compound table"
                                    for p, n in zip(brd[missing], tidy["pert_iname"][missing])])
    tidy = tidy.assign(compound_id=brd, compound_name=tidy["pert_iname"], smiles=smiles, smiles_source=source)
    return _canonicalise(tidy[~missing], drops)


def _smiles_by_name(unresolved: pd.DataFrame, compounds: pd.DataFrame) -> dict[str, str]:
    """Lower-case name -> structure-key SMILES, for the names of ``unresolved`` that name one structure.

    Several LINCS ids name one compound (salts, stereo forms, batches): a name whose entries all share one
    structure key (salt-stripped, neutralised, stereo-free) fills the gap with that key's SMILES.
    """
    wanted = set(unresolved["pert_iname"].dropna().astype(str).str.lower())
    by_name = compounds.dropna(subset=["pert_iname"])
    by_name = by_name[by_name["pert_iname"].str.lower().isin(wanted)]
    parents = {}
    for name, group in by_name.groupby(by_name["pert_iname"].str.lower()):
        found = set()
        for text in group["smiles"]:
            try:
                found.add(chem.structure_key(text))
            except chem.InvalidSmilesError:
                found.add(None)
        if len(found) == 1 and None not in found:
            parents[name] = found.pop()
    return parents


def _canonicalise(tidy: pd.DataFrame, drops: DropReport) -> pd.DataFrame:
    """Replace column ``smiles`` by canonical_smiles and compound_group; drop compounds whose SMILES is invalid."""
    canonical, group, bad = {}, {}, []
    for compound, text in tidy.groupby("compound_id")["smiles"].first().items():
        try:
            canonical[compound] = chem.canonical_smiles(text, f"compound {compound}")
            group[compound] = chem.structure_key(text, f"compound {compound}")
        except chem.InvalidSmilesError as error:
            bad.append((compound, str(error)))
    for compound, message in bad:
        rows = tidy.index[tidy["compound_id"] == compound]
        drops.add(rows, f"invalid SMILES: {message}")
    tidy = tidy[tidy["compound_id"].isin(canonical)]
    return tidy.assign(canonical_smiles=tidy["compound_id"].map(canonical),
                       compound_group=tidy["compound_id"].map(group)).drop(columns="smiles")


def _pair_basal(treatments: pd.DataFrame, controls: pd.DataFrame, values: np.ndarray, basal: pd.DataFrame,
                level: int, drops: DropReport) -> tuple[pd.DataFrame, np.ndarray]:
    """Basal: same-plate DMSO mean for level-3 expression, else the cell-line table; drop what has neither.

    Returns:
        (treatments with a ``basal_source`` column, float32 (n, 978) basal log2 expression in their order).
    """
    plate_means = _plate_dmso_means(controls, values) if level == 3 and len(controls) else {}
    keys = list(zip(treatments["plate"], treatments["cell_id"]))
    on_plate = np.array([key in plate_means for key in keys], dtype=bool)
    in_table = treatments["cell_id"].isin(basal.index).to_numpy()
    no_basal = ~(on_plate | in_table)
    drops.add(treatments.index[no_basal], [f"no basal expression: cell line {c} has no DMSO wells on its plate and "
                                           "no row in the basal table" for c in treatments["cell_id"][no_basal]])
    on_plate, keys = on_plate[~no_basal], [k for k, d in zip(keys, no_basal) if not d]
    treatments = treatments[~no_basal]
    basal_array = np.empty((len(treatments), N_LANDMARKS), dtype=np.float32)
    basal_source = np.empty(len(treatments), dtype=object)
    from_table = ~on_plate
    basal_array[from_table] = basal.loc[treatments["cell_id"][from_table]].to_numpy(np.float32)
    basal_source[from_table] = "cell-line basal table"
    for position in np.flatnonzero(on_plate):
        mean, n_wells = plate_means[keys[position]]
        basal_array[position] = mean
        basal_source[position] = f"same-plate DMSO mean ({n_wells} wells)"
    return treatments.assign(basal_source=basal_source), basal_array


def _plate_dmso_means(controls: pd.DataFrame, values: np.ndarray) -> dict[tuple, tuple[np.ndarray, int]]:
    """(plate, cell_id) -> (mean of its control wells' values (978,), number of wells)."""
    return {(plate, cell): (values[wells["row"].to_numpy()].mean(axis=0), len(wells))
            for (plate, cell), wells in controls.groupby(["plate", "cell_id"])}


def _drop_rare(treatments: pd.DataFrame, basal_array: np.ndarray, min_compound_count: int,
               drops: DropReport) -> tuple[pd.DataFrame, np.ndarray]:
    """Drop compounds (structure groups) with fewer than ``min_compound_count`` profiles."""
    counts = treatments["compound_group"].map(treatments["compound_group"].value_counts())
    rare = counts < min_compound_count
    drops.add(treatments.index[rare], [f"rare compound: seen {c} times (< {min_compound_count})" for c in counts[rare]])
    return treatments[~rare], basal_array[~rare.to_numpy()]


def _assemble(treatments: pd.DataFrame, values: np.ndarray, basal_array: np.ndarray, source: str, level: int,
              drops: DropReport) -> CuratedL1000:
    """The kept treatments as a :class:`CuratedL1000` (metadata columns :data:`METADATA_COLUMNS`)."""
    metadata = treatments.reset_index().assign(source=source, level=level)[
        [c for c in METADATA_COLUMNS]].reset_index(drop=True)
    kept_rows = treatments["row"].to_numpy()
    if np.array_equal(kept_rows, np.arange(len(values))) and values.dtype == np.float32:
        expression = values  # everything kept in order: no copy of a possibly large matrix
    else:
        expression = values[kept_rows].astype(np.float32, copy=False)
    return CuratedL1000(expression, basal_array, metadata, drops.table(), landmark_genes()[["gene_id", "gene_symbol"]])


# --------------------------------------------------------------------------------------------------- real data

def read_transigen_pairs(compounds: pd.DataFrame | None = None) -> CuratedL1000:
    """The 100 TranSiGen LINCS 2020 pairs: treated (x2) and paired control (x1) log2 expression.

    Dose and time are not stored in the file; they are NaN here. Compound ids are LINCS BRD ids found by InChIKey
    in the compound table, else ``IK:<InChIKey>``.
    """
    compounds = compounds if compounds is not None else compound_table()
    order = _transigen_gene_order()
    with h5py.File(fetch("transigen_pairs_example"), "r") as handle:
        treated = handle["x2"][()][:, order].astype(np.float32)
        control = handle["x1"][()][:, order].astype(np.float32)
        smiles = [s.decode() for s in handle["canonical_smiles"][()]]
        cells = [c.decode() for c in handle["cid"][()]]
        ids = [s.decode() for s in handle["sig"][()]]
    by_key = compounds.dropna(subset=["inchi_key"]).reset_index().drop_duplicates("inchi_key").set_index("inchi_key")
    keys = {s: chem.inchikey(s, "transigen_pairs_example") for s in set(smiles)}
    meta = pd.DataFrame({
        "profile_id": [f"TranSiGen:{i}" for i in ids],
        "source": "transigen_pairs_example", "level": 3,
        "compound_id": [by_key["pert_id"].get(keys[s], f"IK:{keys[s]}") for s in smiles],
        "compound_name": [by_key["pert_iname"].get(keys[s], np.nan) for s in smiles],
        "canonical_smiles": [chem.canonical_smiles(s) for s in smiles],
        "compound_group": [chem.structure_key(s) for s in smiles],
        "smiles_source": "file", "cell_id": cells, "dose_um": np.nan, "time_h": np.nan, "plate": np.nan,
        "basal_source": "paired control (TranSiGen x1)",
    })
    empty = pd.DataFrame(columns=["profile_id", "source", "reason"])
    return CuratedL1000(treated, control, meta, empty, landmark_genes()[["gene_id", "gene_symbol"]])


def _cache_key(parts: Mapping) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_real_l1000(min_compound_count: int = 1, qc: bool = False) -> CuratedL1000:
    """The staged real L1000 data curated into one dataset (cached).

    Parts (column ``source``): the A375 level-3 plate with same-plate DMSO basal; the 272 level-5 signatures with
    basal from the cell-line table; the 100 TranSiGen level-3 pairs with their paired controls (dose and time
    unknown). ``min_compound_count`` and ``qc`` apply to the first two.
    """
    names = ["l1000_level3_a375_plate", "l1000_level5_modz_n272", "transigen_pairs_example",
             "transigen_basal_profiles", "lincs_compound_info", "landmark_geneinfo"]
    key = _cache_key({"inputs": {n: sha256_of(fetch(n)) for n in names}, "min_compound_count": min_compound_count,
                      "qc": qc, "version": CURATION_VERSION})
    folder = check_output_folder(cache_dir() / "curated" / f"real_l1000-{key}", "cache folder")
    with output_lock(folder, wait=True, label="cache folder"):
        if _previous_result(folder, key)[0] is not None:  # a complete copy that agrees with its summary
            return CuratedL1000.load(folder)
        parts = [curate(read_matrix(fetch(name)), min_compound_count=min_compound_count, qc=qc, source=name)
                 for name in ("l1000_level3_a375_plate", "l1000_level5_modz_n272")]
        parts.append(read_transigen_pairs())
        dataset = CuratedL1000.concat(parts)
        dataset.save(folder, {"cache_key": key})
    return dataset


def _gene_table(path: Path) -> pd.DataFrame:
    table = read_table(path)
    for column in ("gene_id", "pr_gene_id", "id", "rid"):
        if column in table.columns:
            table.index = table[column].astype(str)
            return table.drop(columns=[column])
    raise MetadataError(f"{path}: a gene table needs an id column (gene_id, pr_gene_id, id or rid). "
                        "Fix: give geneinfo_beta.txt (CLUE) or gene_info.txt (GEO).")


def curate_files(matrix: Path | str, out: Path | str, meta: Path | str | None = None,
                 compounds: Path | str | None = None, genes: Path | str | None = None, min_compound_count: int = 1,
                 qc: bool = False, level: int | None = None, progress: bool = False,
                 notice: Callable[[str], None] | None = None,
                 reader: Callable[[Mapping[str, Path]], CuratedL1000] | None = None) -> tuple[dict, bool]:
    """The ``perturbx lincs curate`` command: curate one matrix file and write the result to ``out``.

    Writes expression.npy (float32, profiles x 978 landmark genes in Entrez order), basal.npy (the same shape),
    metadata.csv, genes.csv, dropped.csv and summary.json, whole or not at all (see :meth:`CuratedL1000.save`).
    ``out`` is checked before any curation work and locked while the run lasts (a second run fails at once). The
    result is reused when ``out`` already holds one made from inputs with the same sha256 and the same parameters
    and it agrees with its summary (rows and sha256 of every file); otherwise it is curated again.

    Args:
        notice: called with one line when ``out`` holds a result that is not reused, saying why.
        reader: curates inputs of another format: ``reader({"matrix": path, "compounds": path, ...})`` (see
            :mod:`perturbx.datasets.curate`); default: a CMap GCT/GCTX matrix through :func:`curate`.

    Returns:
        (summary, reused): the summary dict and whether a cached result was reused.

    Raises:
        FileNotFoundError: an input file is missing.
        OutputFolderError: ``out`` cannot be used (:func:`check_output_folder`, :func:`output_lock`).
        OutputLockedError: another run is writing ``out``.
        MetadataError: an input cannot be read (one line naming the file and the fix).
        NothingKeptError: every profile was dropped; nothing is written.
    """
    inputs = {"matrix": matrix, "meta": meta, "compounds": compounds, "genes": genes}
    inputs = {k: Path(v) for k, v in inputs.items() if v is not None}
    for role, path in inputs.items():
        if not path.is_file():
            raise FileNotFoundError(f"--{role} {path}: no such file. Fix: check the path.")
    out = check_output_folder(out)
    with output_lock(out):
        defaults = ["transigen_basal_profiles", "landmark_geneinfo"] + ([] if compounds else ["lincs_compound_info"])
        key = _cache_key({"inputs": {k: sha256_of(p) for k, p in inputs.items()},
                          "registry_inputs": {n: sha256_of(fetch(n)) for n in defaults},
                          "min_compound_count": min_compound_count, "qc": qc, "level": level,
                          "version": CURATION_VERSION})
        previous, why = _previous_result(out, key)
        if previous is not None:
            return previous, True
        if why and notice:
            notice(f"{out}: not up to date ({why}); curating again")
        curated = reader(inputs) if reader else _curate_inputs(inputs, min_compound_count, qc, level, progress)
        if not len(curated):
            raise NothingKeptError(_nothing_kept(curated, inputs["matrix"]))
        extra = {"cache_key": key, "inputs": {k: str(p) for k, p in inputs.items()},
                 "parameters": {"min_compound_count": min_compound_count, "qc": qc, "level": level}}
        return curated.save(out, extra), False


def _curate_inputs(inputs: Mapping[str, Path], min_compound_count: int, qc: bool, level: int | None,
                   progress: bool) -> CuratedL1000:
    """Read the tables (first, so that a bad one fails before the matrix is read) and the matrix; curate."""
    meta_table = _meta_table(inputs["meta"]) if "meta" in inputs else None
    gene_table = _gene_table(inputs["genes"]) if "genes" in inputs else None
    compound_index = index_compound_table(read_table(inputs["compounds"]), str(inputs["compounds"])) \
        if "compounds" in inputs else None
    matrix_data = read_matrix(inputs["matrix"], genes=gene_table, progress=progress)
    return curate(matrix_data, meta_table, compounds=compound_index, min_compound_count=min_compound_count,
                  qc=qc, level=level, source=inputs["matrix"].name)


def _meta_table(path: Path) -> pd.DataFrame:
    """A per-profile metadata table, its id column and required columns checked (messages name ``path``)."""
    table = read_table(path)
    if table.empty:
        raise MetadataError(f"{path}: the metadata table has no rows. Fix: give the table with one row per profile "
                            "(siginfo_beta.txt, GEO sig_info/inst_info).")
    harmonise(index_by_profile_id(table.head(1), str(path)), str(path))  # the columns, checked on one row
    return table


_NOTHING_KEPT_FIX = {
    "no metadata": "give the --meta table whose ids match the matrix's column ids",
    "non-finite values": "the matrix holds NaN or infinite values; fetch or export it again",
    "unreadable dose/time": "give doses and times in known units (e.g. 10 uM, 24 h)",
    "missing dose or time": "give the metadata table with the profiles' doses and times",
    "invalid dose/time": "doses and times must be finite and > 0; correct them in the metadata table",
    "failed QC": "leave out --qc to keep profiles that failed QC",
    "no SMILES": "give --compounds with the compounds' SMILES (e.g. compoundinfo_beta.txt)",
    "invalid SMILES": "correct the SMILES in the compound table",
    "no basal expression": "use cell lines of the basal table, or level-3 plates with DMSO wells",
    "rare compound": "lower --min-compound-count",
}


def _nothing_kept(curated: CuratedL1000, matrix: Path) -> str:
    """The one-line message of a curation that kept nothing: the drop reasons counted, and the likeliest fix."""
    counts = curated.summary()["dropped"]
    fixable = {reason: n for reason, n in counts.items() if reason in _NOTHING_KEPT_FIX}
    fix = _NOTHING_KEPT_FIX[max(fixable, key=fixable.get)] if fixable else \
        "give a matrix with compound treatments (pert_type trt_cp)"
    shown = ", ".join(f"{reason}: {n}" for reason, n in counts.items()) or "the file holds no profiles"
    return f"{matrix}: every profile was dropped ({shown}); nothing written. Fix: {fix}."
