"""Writers of tiny CMap files for the tests (GCT v1.3 text and GCTX in both layouts)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd


def write_gct(path: Path, values: np.ndarray, row_meta: pd.DataFrame, col_meta: pd.DataFrame,
              encoding: str = "utf-8") -> Path:
    """GCT v1.3: values (n_rows x n_cols); metadata frames indexed by row / column ids."""
    lines = ["#1.3", f"{values.shape[0]}\t{values.shape[1]}\t{row_meta.shape[1]}\t{col_meta.shape[1]}"]
    header = ["id", *row_meta.columns, *col_meta.index]
    lines.append("\t".join(header))
    for field in col_meta.columns:
        lines.append("\t".join([field, *["na"] * row_meta.shape[1], *map(str, col_meta[field])]))
    for i, rid in enumerate(row_meta.index):
        lines.append("\t".join([str(rid), *map(str, row_meta.iloc[i]), *(f"{v:.6f}" for v in values[i])]))
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def write_gctx(path: Path, values: np.ndarray, row_ids, col_ids, row_meta: dict | None = None,
               col_meta: dict | None = None) -> Path:
    """GCTX: values (n_rows x n_cols) stored transposed as CMap does; metadata dicts of name -> array.

    String metadata given as ``bytes`` is written byte for byte (e.g. Latin-1 'µ').
    """
    def as_array(items):
        items = list(items)
        if items and isinstance(items[0], bytes):
            return np.array(items, dtype="S")
        if items and isinstance(items[0], str):
            return np.array([s.encode() for s in items], dtype="S")
        return np.asarray(items)

    with h5py.File(path, "w") as handle:
        handle.attrs["version"] = "GCTX1.0"
        handle.create_dataset("0/DATA/0/matrix", data=np.asarray(values, dtype=np.float32).T)
        handle.create_dataset("0/META/ROW/id", data=as_array(map(str, row_ids)))
        handle.create_dataset("0/META/COL/id", data=as_array(map(str, col_ids)))
        for name, column in (row_meta or {}).items():
            handle.create_dataset(f"0/META/ROW/{name}", data=as_array(column))
        for name, column in (col_meta or {}).items():
            handle.create_dataset(f"0/META/COL/{name}", data=as_array(column))
    return path
