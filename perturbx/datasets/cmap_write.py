"""Writing L1000 profiles as a CLUE LINCS 2020 style release (the layout :mod:`~perturbx.datasets.cmap` reads).

The layout: an ids-only GCTX (matrix [profiles x genes], contiguous float32 as cmapPy writes it; row ids = Entrez
ids, landmark rows interleaved with others) plus the metadata tables ``siginfo_beta.txt``,
``compoundinfo_beta.txt`` and ``geneinfo_beta.txt``. It is how the readers and ``perturbx lincs curate`` are
exercised at the size of a real release (``benchmarks/curate_gctx.py``).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from tqdm.std import tqdm  # text bars: stored notebook outputs stay readable (see book.publishing.tidy_streams)

from .. import chem
from .cmap import N_LANDMARKS, landmark_genes

_BLOCK_PROFILES = 4096  # profiles written per block
_CONDITION_COLUMNS = ["cell_id", "time_h", "compound_id", "dose_um"]


def write_clue_gctx(expression: np.ndarray, metadata: pd.DataFrame, folder: Path | str, n_genes: int = 12_328,
                    progress: bool = True, seed: int = 0, name: str = "sim") -> dict[str, Path]:
    """Write landmark profiles as a CLUE LINCS 2020 style release: an ids-only GCTX plus metadata tables.

    Files: ``level3_{name}_n{n}x{n_genes}.gctx``, ``siginfo_beta.txt``, ``compoundinfo_beta.txt`` (one row per
    compound id, in order of first appearance) and ``geneinfo_beta.txt``. The ``n_genes - 978`` non-landmark rows
    are filler (copies of landmark values under made-up ids 90000001...), there only to give the matrix the size of
    a real release; ``seed`` places them and picks the landmark each copies.

    Args:
        expression: float32 (n, 978) log2 expression in landmark order (e.g. ``CuratedL1000.expression``).
        metadata: n rows (e.g. ``CuratedL1000.metadata``) with columns compound_id, compound_name,
            canonical_smiles, cell_id, dose_um (µM, known), time_h (h, known) and optionally ``replicate``
            (default: 1, 2, ... within each cell line, time, compound and dose).
        folder: where to write (created if missing).
        n_genes: rows of the matrix, at least 978.
        progress: show a progress bar while writing the matrix.
        seed: seed of the gene row order.
        name: part of the matrix file name and of the signature ids (``PX{NAME}_...``).

    Returns:
        name -> path of each file written: ``matrix``, ``siginfo``, ``compoundinfo``, ``geneinfo``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gene_table, source_column = _gene_rows(n_genes, np.random.default_rng(seed))
    sig_ids = _signature_ids(metadata, f"PX{name.upper()}")
    paths = {"matrix": folder / f"level3_{name}_n{len(metadata)}x{n_genes}.gctx",
             "siginfo": folder / "siginfo_beta.txt", "compoundinfo": folder / "compoundinfo_beta.txt",
             "geneinfo": folder / "geneinfo_beta.txt"}
    _write_matrix(paths["matrix"], expression, source_column, sig_ids, gene_table["gene_id"], progress)
    _siginfo(metadata, sig_ids).to_csv(paths["siginfo"], sep="\t", index=False)
    _compoundinfo(metadata).to_csv(paths["compoundinfo"], sep="\t", index=False)
    gene_table.to_csv(paths["geneinfo"], sep="\t", index=False)
    return paths


def _gene_rows(n_genes: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Gene table in file row order (landmarks interleaved with filler), and the landmark column of each row."""
    n_other = n_genes - N_LANDMARKS
    gene_table = pd.concat([
        landmark_genes().assign(feature_space="landmark"),
        pd.DataFrame({"gene_id": 90_000_001 + np.arange(n_other), "gene_symbol": [f"SIMG{i}" for i in range(n_other)],
                      "ensembl_id": np.nan, "feature_space": "inferred"}),
    ], ignore_index=True)
    row_order = rng.permutation(n_genes)  # landmarks interleaved, never the first 978 rows
    gene_table = gene_table.iloc[row_order].reset_index(drop=True)
    source_column = np.where(row_order < N_LANDMARKS, row_order, rng.integers(0, N_LANDMARKS, n_genes))
    return gene_table, source_column


def _signature_ids(metadata: pd.DataFrame, prefix: str) -> list[str]:
    """CLUE-style ids ``{prefix}_{cell}_{time}H:{compound}:{dose}:{replicate}``, one per profile."""
    if "replicate" in metadata.columns:
        replicate = metadata["replicate"]
    else:
        replicate = metadata.groupby(_CONDITION_COLUMNS, sort=False, dropna=False).cumcount() + 1
    return [f"{prefix}_{c}_{int(t)}H:{p}:{d:g}:{r}" for c, t, p, d, r in
            zip(metadata["cell_id"], metadata["time_h"], metadata["compound_id"], metadata["dose_um"], replicate)]


def _write_matrix(path: Path, expression: np.ndarray, source_column: np.ndarray, sig_ids: list[str],
                  gene_ids: pd.Series, progress: bool) -> None:
    """The ids-only GCTX: row j of the file's genes holds landmark column ``source_column[j]``."""
    with h5py.File(path, "w") as handle:
        handle.attrs["version"] = "GCTX1.0"
        matrix = handle.create_dataset("0/DATA/0/matrix", shape=(len(sig_ids), len(gene_ids)), dtype=np.float32)
        for start in tqdm(range(0, len(sig_ids), _BLOCK_PROFILES), disable=not progress, desc="writing GCTX"):
            stop = min(start + _BLOCK_PROFILES, len(sig_ids))
            matrix[start:stop] = expression[start:stop][:, source_column]
        handle.create_dataset("0/META/COL/id", data=np.array(sig_ids, dtype="S"), compression="gzip")
        handle.create_dataset("0/META/ROW/id", data=gene_ids.astype(str).to_numpy().astype("S"), compression="gzip")


def _siginfo(metadata: pd.DataFrame, sig_ids: list[str]) -> pd.DataFrame:
    """``siginfo_beta`` rows: compound treatments with dose in µM and time in h, all passing QC."""
    return pd.DataFrame({
        "sig_id": sig_ids, "pert_id": metadata["compound_id"], "cmap_name": metadata["compound_name"],
        "pert_type": "trt_cp", "cell_iname": metadata["cell_id"], "pert_dose": metadata["dose_um"],
        "pert_dose_unit": "uM", "pert_idose": [f"{d:g} uM" for d in metadata["dose_um"]],
        "pert_time": metadata["time_h"], "pert_time_unit": "h", "pert_itime": [f"{t:g} h" for t in metadata["time_h"]],
        "qc_pass": 1, "nsample": 1,
    })


def _compoundinfo(metadata: pd.DataFrame) -> pd.DataFrame:
    """``compoundinfo_beta`` rows: one per compound id, with its SMILES and InChIKey."""
    compounds = metadata.drop_duplicates("compound_id")
    return pd.DataFrame({"pert_id": compounds["compound_id"].to_numpy(),
                         "cmap_name": compounds["compound_name"].to_numpy(),
                         "canonical_smiles": compounds["canonical_smiles"].to_numpy(),
                         "inchi_key": [chem.inchikey(s) for s in compounds["canonical_smiles"]]})
