"""Writers of tiny CMap files for the tests (GCT v1.3 text and GCTX in both layouts)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from perturbx.datasets.cmap import landmark_genes


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


ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
ETHANOL = "CCO"


def write_clue_inputs(folder: Path, values: np.ndarray | None = None, doses: list[str] | None = None,
                      times: list[str] | None = None) -> dict[str, Path]:
    """A tiny CLUE-layout input set: 4 aspirin and 2 ethanol A375 profiles (level 3, basal from the table).

    Files: ``sim.gctx`` (ids only, rows = landmark Entrez ids), ``siginfo_beta.txt``, ``compoundinfo_beta.txt``.
    ``--min-compound-count 3`` keeps 4 of the 6 profiles, the default all 6.

    Args:
        folder: where to write (created).
        values: (978, 6) landmark values, default uniform in [4, 12).
        doses: the six ``pert_idose`` texts (default ``"10 uM"``).
        times: the six ``pert_itime`` texts (default ``"24 h"``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    sig_ids = [f"SIG{i}" for i in range(6)]
    if values is None:
        values = np.random.default_rng(0).uniform(4, 12, size=(978, 6)).astype(np.float32)
    matrix = write_gctx(folder / "sim.gctx", values, landmark_genes()["gene_id"].to_numpy(), sig_ids)
    compound = ["BRD-K00000001"] * 4 + ["BRD-K00000002"] * 2
    pd.DataFrame({"sig_id": sig_ids, "pert_id": compound, "cmap_name": ["aspirin"] * 4 + ["ethanol"] * 2,
                  "pert_type": "trt_cp", "cell_iname": "A375", "pert_idose": doses or ["10 uM"] * 6,
                  "pert_itime": times or ["24 h"] * 6}).to_csv(folder / "siginfo_beta.txt", sep="\t", index=False)
    pd.DataFrame({"pert_id": ["BRD-K00000001", "BRD-K00000002"], "cmap_name": ["aspirin", "ethanol"],
                  "canonical_smiles": [ASPIRIN, ETHANOL]}).to_csv(folder / "compoundinfo_beta.txt", sep="\t",
                                                                   index=False)
    return {"matrix": matrix, "meta": folder / "siginfo_beta.txt", "compounds": folder / "compoundinfo_beta.txt"}
