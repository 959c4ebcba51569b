"""Plates whose matrix holds only wells, described by a well-annotation table (the CMap deconvolution study layout).

The deconvolution study (``cmap/deconv``) publishes each plate as a GCT without metadata (column id = bare well,
``A03``) and one TSV, ``holdout_sample_annotations.txt``, describing the wells of several plates for several
``handle`` s (the ground truth and contestants' submissions): ``pert_plate``, ``pert_well``, ``det_plate``,
``handle``, ``pert_id``, ``pert_iname``, ``pert_type``, ``pert_dose`` + ``pert_dose_unit``, ``pert_time`` +
``pert_time_unit``, ... and no cell line column.

:func:`join_well_annotations` gives such a matrix its metadata:

- the matrix's plate is the ``det_plate`` that prefixes its file name (``DPK.CP003_PC3_24H_X1_B42_DE_UNI.gct`` ->
  ``DPK.CP003_PC3_24H_X1_B42``);
- only the rows of that plate with ``handle == "ground-truth"`` are used, joined by ``pert_well`` to the column ids;
- the cell line is read from the CMap plate name, ``<pert_plate>_<cell>_<time>H_X<replicate>[_B<batch>]``
  (:func:`cell_from_plate`);
- profile ids become ``<det_plate>:<well>``, like CMap instance ids.

Anything that does not join one to one (no ground-truth rows, a well described twice, a well not described) is a
one-line :class:`~perturbx.datasets.cmap.MetadataError` naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .cmap import L1000Matrix, MetadataError

ANNOTATION_COLUMNS = ("pert_well", "det_plate", "handle")
GROUND_TRUTH = "ground-truth"
PLATE_NAME = re.compile(r"^(?P<pert_plate>[^_]+)_(?P<cell>[^_]+)_(?P<time>\d+)H_X\d+(_B\d+)?")


def is_well_annotation_table(table: pd.DataFrame) -> bool:
    """Whether ``table`` is a well-annotation table (columns pert_well, det_plate and handle)."""
    return all(column in table.columns for column in ANNOTATION_COLUMNS)


def cell_from_plate(plate: str, source: str) -> str:
    """The cell line of a CMap plate name: ``DPK.CP003_PC3_24H_X1_B42`` -> ``PC3``.

    Raises:
        MetadataError: the name is not ``<pert_plate>_<cell>_<time>H_X<n>[_B<n>]``.
    """
    match = PLATE_NAME.match(str(plate))
    if match is None:
        raise MetadataError(f"{source}: cannot read the cell line from plate name {plate!r} (expected "
                            "<pert_plate>_<cell>_<time>H_X<n>, e.g. DPK.CP003_PC3_24H_X1_B42). Fix: add a cell_id "
                            "column to the annotation table.")
    return match.group("cell")


def matrix_plate(matrix_path: str | Path, plates: pd.Series, source: str) -> str:
    """The ``det_plate`` of ``plates`` that names the matrix file (its name is the plate, or starts with it + ``_``).

    Raises:
        MetadataError: no plate of the table names the file.
    """
    name = Path(matrix_path).name
    stem = name.split(".gct")[0]
    candidates = [p for p in plates.dropna().astype(str).unique() if stem == p or name.startswith(p + "_")]
    if not candidates:
        shown = ", ".join(sorted(plates.dropna().astype(str).unique())[:3])
        raise MetadataError(f"{source}: no det_plate of the table names the matrix file {name} (the table has "
                            f"{shown}, ...). Fix: give the annotation table of this plate, or name the matrix "
                            "<det_plate>_... as the study does.")
    return max(candidates, key=len)  # the most specific plate name


def join_well_annotations(matrix: L1000Matrix, table: pd.DataFrame, source: str) -> L1000Matrix:
    """The matrix with the ground-truth annotations of its plate as column metadata (index ``<plate>:<well>``).

    Args:
        matrix: a plate read by :func:`~perturbx.datasets.cmap.read_matrix`, column ids = wells (or
            ``<plate>:<well>``).
        table: the well-annotation table (see the module docstring).
        source: the table's file, for messages.

    Returns:
        :class:`L1000Matrix` with the same values and measured genes; ``columns`` hold the annotation row of
        every well plus ``cell_id`` (from the plate name) and ``annotation_id`` (the table's own id).

    Raises:
        MetadataError: the table has no ground-truth rows for the plate, describes a well twice, or lacks wells
            of the matrix.
    """
    plate = matrix_plate(matrix.source, table["det_plate"], source)
    rows = table[(table["det_plate"].astype(str) == plate) & (table["handle"].astype(str) == GROUND_TRUTH)]
    if rows.empty:
        raise MetadataError(f"{source}: no rows with handle {GROUND_TRUTH!r} for plate {plate}. Fix: give the "
                            "annotation table that holds the plate's ground-truth rows.")
    twice = rows["pert_well"][rows["pert_well"].duplicated()].unique()
    if len(twice):
        raise MetadataError(f"{source}: ground-truth wells {', '.join(map(str, twice[:5]))} of plate {plate} are "
                            "described more than once, so the join is ambiguous. Fix: give one row per well.")
    wells = pd.Index(matrix.columns.index.astype(str).str.rsplit(":", n=1).str[-1])
    missing = wells[~wells.isin(rows["pert_well"])]
    if len(missing):
        raise MetadataError(f"{source}: {len(missing)} wells of {Path(matrix.source).name} have no ground-truth "
                            f"row for plate {plate} (e.g. {', '.join(missing[:5])}). Fix: give the annotation "
                            "table of this plate.")
    columns = rows.set_index("pert_well").loc[wells].rename(columns={"id": "annotation_id"})
    columns = columns.assign(det_plate=plate)
    if "cell_id" not in columns.columns or columns["cell_id"].isna().all():  # the study's table has none
        columns["cell_id"] = cell_from_plate(plate, source)
    columns.index = pd.Index([f"{plate}:{well}" for well in wells], name="id")
    return L1000Matrix(values=matrix.values, columns=columns, source=matrix.source, measured=matrix.measured)
