"""The curated L1000 format: :class:`CuratedL1000` and the :class:`DropReport` every reader fills.

Every reader of the package (:mod:`~perturbx.datasets.lincs` for CMap GCT/GCTX, :mod:`~perturbx.datasets.pharmacoset`,
:mod:`~perturbx.datasets.consensus`) returns a :class:`CuratedL1000`: treated profiles and their paired basal
profiles over the 978 landmark genes (in :func:`~perturbx.datasets.cmap.landmark_genes` order), one tidy metadata
row per profile, the dropped records with their reasons, and a summary. :meth:`CuratedL1000.save` writes the folder
whole or not at all (:mod:`~perturbx.datasets.output_folder`).

Value kinds by data level (:data:`VALUE_KIND`): level 3 profiles are log2 expression; level 4 are robust z-scores
against the plate; level 5 are MODZ signatures (replicate-collapsed z-scores). ``basal_source`` says what each
profile's basal is: the same plate's DMSO mean (of log2 expression at level 3, of z-scores on a level-4 replicate
plate), a cell line's row of the basal table (log2 expression), a paired control, or none.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .cmap import N_LANDMARKS
from .errors import DataError
from .fetcher import sha256_of
from .output_folder import CURATED_FILES, OutputFolderError, check_output_folder, swap_in, verify_folder

VALUE_KIND = {3: "log2 expression", 4: "robust z-score", 5: "MODZ z-score"}
METADATA_COLUMNS = ["profile_id", "source", "level", "compound_id", "compound_name", "canonical_smiles",
                    "compound_group", "smiles_source", "cell_id", "dose_um", "time_h", "plate", "basal_source"]
REPLICATE_COLUMNS = [*METADATA_COLUMNS, "replicate_group"]


class CuratedFolderError(DataError, ValueError):
    """A curated folder whose files disagree with its summary.json; the message names the file and the fix."""


@dataclass
class CuratedL1000:
    """Curated profiles.

    Attributes:
        expression: float32 (n, 978) treated profiles (units: see ``metadata.level`` and :data:`VALUE_KIND`).
        basal: float32 (n, 978) paired basal log2 expression.
        metadata: one row per profile, columns :data:`METADATA_COLUMNS`.
        dropped: one row per dropped record: profile_id, source, reason.
        genes: the 978 landmark genes (gene_id, gene_symbol) in column order; a file that lacks some landmark genes
            adds a bool ``measured`` column, and its unmeasured columns are NaN (see :meth:`require_all_genes`).
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
    def measured(self) -> np.ndarray:
        """Bool (978,): which landmark genes the input measured (all true unless ``genes`` has ``measured``)."""
        if "measured" in self.genes.columns:
            return self.genes["measured"].to_numpy(bool)
        return np.ones(len(self.genes), dtype=bool)

    def require_all_genes(self, why: str) -> None:
        """Raise ``ValueError`` when some landmark genes were not measured (their columns are NaN); ``why`` says what
        needs all 978. Nothing is ever filled in silently."""
        missing = self.genes.loc[~self.measured, "gene_symbol"].astype(str).tolist()
        if missing:
            raise ValueError(f"{len(missing)} of the {N_LANDMARKS} landmark genes were not measured "
                             f"({', '.join(missing[:5])}; their columns are NaN); {why}. Fix: use a set that "
                             "measures every landmark gene, or restrict the analysis to the measured genes "
                             "(CuratedL1000.measured).")

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
        return summary | {"profiles_without": {k: v for k, v in missing.items() if v}} | self._gene_summary()

    def _gene_summary(self) -> dict:
        """The landmark genes the input did not measure (only when there are any)."""
        missing = self.genes.loc[~self.measured, "gene_id"]
        return {"genes_not_measured": [int(g) for g in missing]} if len(missing) else {}

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
            swap_in(staging, folder)
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
        """Read a folder written by :meth:`save`, after checking every file against its summary.json (rows and
        sha256, :func:`~perturbx.datasets.output_folder.verify_folder`).

        Raises:
            CuratedFolderError: no readable summary.json, or a file that disagrees with it (edited, reordered,
                truncated or missing after curation).
        """
        folder = Path(folder)
        fix = f"Fix: curate it again (perturbx lincs curate ... --out {folder}); never edit a curated folder by hand."
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError) as error:
            why = "no summary.json" if isinstance(error, FileNotFoundError) else "summary.json cannot be read"
            raise CuratedFolderError(f"{folder}: not a curated folder ({why}). {fix}") from None
        problem = verify_folder(folder, summary) if isinstance(summary, dict) else "summary.json is not a record"
        if problem:
            raise CuratedFolderError(f"{folder}: {problem}, so the folder changed after curation. {fix}")
        metadata = pd.read_csv(folder / "metadata.csv", dtype={"profile_id": str, "compound_id": str,
                                                                "cell_id": str, "plate": str})
        return cls(np.load(folder / "expression.npy"), np.load(folder / "basal.npy"), metadata,
                   pd.read_csv(folder / "dropped.csv", dtype=str), pd.read_csv(folder / "genes.csv"))

    @classmethod
    def concat(cls, parts: Sequence[CuratedL1000]) -> CuratedL1000:
        """Stack curated sets (same gene order), keeping every part's dropped records; a gene counts as measured
        only where every part measured it."""
        genes = parts[0].genes[["gene_id", "gene_symbol"]]
        measured = np.logical_and.reduce([p.measured for p in parts])
        if not measured.all():
            genes = genes.assign(measured=measured)
        return cls(np.concatenate([p.expression for p in parts]), np.concatenate([p.basal for p in parts]),
                   pd.concat([p.metadata for p in parts], ignore_index=True),
                   pd.concat([p.dropped for p in parts], ignore_index=True), genes)



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

