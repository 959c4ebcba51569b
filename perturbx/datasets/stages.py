"""The curation stages every L1000 reader shares, each reporting what it drops to a :class:`DropReport`.

The readers (:func:`perturbx.datasets.lincs.curate` for CMap GCT/GCTX, including replicate plates joined to their
annotation table; :func:`perturbx.datasets.pharmacoset.curate_pharmacoset`) compose these stages, so a record
dropped for the same cause gets the same reason whichever file it came from:

1. :func:`non_finite_counts`: NaN or infinite values among the measured genes.
2. :func:`check_doses`: unreadable, missing, or not finite and > 0 doses and times (and failed QC when asked).
3. :func:`smiles_by_name` and :func:`canonicalise`: structures, canonical SMILES and the structure group.
4. :func:`plate_control_means`: the same plate's DMSO mean, the basal of a plate's treatments.
5. :func:`assemble` and :func:`check_accounting`: the :class:`CuratedL1000`, every input record kept or dropped once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import chem
from .cmap import landmark_genes
from .curated import CuratedL1000, DropReport


def non_finite_counts(values: np.ndarray, measured: np.ndarray | None = None) -> np.ndarray:
    """Number of NaN or infinite values of every profile among the measured genes.

    Args:
        values: float (n_profiles, 978).
        measured: optional bool (978,): the genes the file measured (the others are NaN by construction and are
            not counted).

    Returns:
        int64 (n_profiles,). Rows are screened by their sum, so the matrix is not copied when all are finite.
    """
    counts = np.zeros(len(values), dtype=np.int64)
    columns = slice(None) if measured is None or measured.all() else np.flatnonzero(measured)
    with np.errstate(over="ignore", invalid="ignore"):
        screened = values if isinstance(columns, slice) else values[:, columns]
        suspects = np.flatnonzero(~np.isfinite(screened.sum(axis=1, dtype=np.float64)))
    if len(suspects):
        counts[suspects] = np.count_nonzero(~np.isfinite(screened[suspects]), axis=1)
    return counts


def check_doses(treatments: pd.DataFrame, unit_problems: pd.DataFrame, drops: DropReport,
                qc: bool = False) -> pd.DataFrame:
    """Drop treatments with an unreadable, missing or invalid dose/time, and (when ``qc``) those that failed QC.

    Args:
        treatments: harmonised rows (see :func:`~perturbx.datasets.cmap.harmonise`) with dose_um, time_h, qc_pass.
        unit_problems: (profile_id, reason) of the doses and times that could not be read.
        drops: where the dropped rows are reported.
        qc: also drop rows whose ``qc_pass`` is 0.

    Returns:
        The rows kept, in input order.
    """
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


def smiles_by_name(names: pd.Series, compounds: pd.DataFrame) -> dict[str, str]:
    """Lower-case name -> structure-key SMILES, for the ``names`` that name one structure in ``compounds``.

    Several LINCS ids name one compound (salts, stereo forms, batches): a name whose entries all share one
    structure key (salt-stripped, neutralised, stereo-free) fills the gap with that key's SMILES.

    Args:
        names: compound names (any case; NaN ignored).
        compounds: compound table with ``pert_iname`` and ``smiles`` columns.
    """
    wanted = set(names.dropna().astype(str).str.lower())
    if "pert_iname" not in compounds.columns or not wanted:
        return {}
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


def canonicalise(tidy: pd.DataFrame, drops: DropReport) -> pd.DataFrame:
    """Replace column ``smiles`` by canonical_smiles and compound_group; drop compounds whose SMILES is invalid.

    Args:
        tidy: rows with ``compound_id`` and ``smiles`` (one structure per compound: its first row's is used).
        drops: where the rows of invalid structures are reported.
    """
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


def plate_control_means(controls: pd.DataFrame, values: np.ndarray) -> dict[tuple, tuple[np.ndarray, int]]:
    """(plate, cell_id) -> (mean of its control wells' values, float (978,); number of wells).

    Args:
        controls: the usable vehicle wells, with plate, cell_id and ``row`` (their row in ``values``).
        values: float (n_profiles, 978).
    """
    return {(plate, cell): (values[wells["row"].to_numpy()].mean(axis=0), len(wells))
            for (plate, cell), wells in controls.groupby(["plate", "cell_id"])}


def replicate_labels(metadata: pd.DataFrame) -> pd.Series:
    """One label per condition, ``<compound_id>|<cell_id>|<dose> uM|<time> h``, shared by its replicate wells."""
    return pd.Series([f"{c}|{cell}|{d:g} uM|{t:g} h" for c, cell, d, t in
                      zip(metadata["compound_id"], metadata["cell_id"], metadata["dose_um"], metadata["time_h"])],
                     index=metadata.index, dtype=object)


def gene_table(measured: np.ndarray | None = None) -> pd.DataFrame:
    """The landmark genes (gene_id, gene_symbol) in column order, with a bool ``measured`` column only when some
    were not measured."""
    genes = landmark_genes()[["gene_id", "gene_symbol"]]
    if measured is not None and not np.all(measured):
        genes = genes.assign(measured=np.asarray(measured, dtype=bool))
    return genes


def assemble(treatments: pd.DataFrame, values: np.ndarray, basal: np.ndarray, source: str, level: int,
             drops: DropReport, columns: list[str], measured: np.ndarray | None = None) -> CuratedL1000:
    """The kept treatments as a :class:`CuratedL1000`.

    Args:
        treatments: kept rows, with ``row`` (their row in ``values``) and the metadata ``columns`` (a
            ``replicate_group`` column, when asked for, is made by :func:`replicate_labels`).
        values: float (n_profiles, 978) of every input profile.
        basal: float32 (n_kept, 978), in the order of ``treatments``.
        source, level: recorded in every metadata row.
        drops: the drop report of the run.
        columns: the metadata columns, in order.
        measured: optional bool (978,): the genes the input measured.
    """
    metadata = treatments.reset_index().assign(source=source, level=level)
    if "replicate_group" in columns:
        metadata["replicate_group"] = replicate_labels(metadata)
    metadata = metadata[list(columns)].reset_index(drop=True)
    kept_rows = treatments["row"].to_numpy()
    if np.array_equal(kept_rows, np.arange(len(values))) and values.dtype == np.float32:
        expression = values  # everything kept in order: no copy of a possibly large matrix
    else:
        expression = values[kept_rows].astype(np.float32, copy=False)
    return CuratedL1000(expression, basal, metadata, drops.table(), gene_table(measured))


def check_accounting(ids: pd.Index, curated: CuratedL1000, source: str) -> None:
    """Every input record is kept or dropped, exactly once.

    Raises:
        RuntimeError: a record is counted twice, or not at all (a bug in a reader, not in the data).
    """
    seen = pd.Index(curated.metadata["profile_id"]).append(pd.Index(curated.dropped["profile_id"]))
    if len(seen) != len(ids) or seen.duplicated().any() or not seen.isin(ids).all():
        raise RuntimeError(f"{source}: curation accounting failed: {len(curated)} kept + {len(curated.dropped)} "
                           f"dropped for {len(ids)} input records")
