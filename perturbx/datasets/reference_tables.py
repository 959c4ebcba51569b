"""The reference tables curation looks things up in: LINCS compound structures and cell-line basal expression."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from .cmap import MetadataError, landmark_genes, read_table
from .fetcher import fetch, read_pickle


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
    file_order = transigen_gene_order()
    cells = sorted(k for k in raw if k != "averaged")  # 'averaged' is the mean over cells, not a cell line
    values = np.stack([np.asarray(raw[c], dtype=np.float32).reshape(-1) for c in cells])
    return pd.DataFrame(values[:, file_order], index=pd.Index(cells, name="cell_id"),
                        columns=landmark_genes()["gene_id"].to_numpy())


def transigen_gene_order() -> np.ndarray:
    """Positions that reorder TranSiGen arrays (genes sorted by Entrez id as text) into landmark order."""
    file_genes = pd.read_csv(fetch("landmark_geneinfo"))["gene_id"].astype(int).to_numpy()
    position = pd.Series(np.arange(len(file_genes)), index=file_genes)
    return position.loc[landmark_genes()["gene_id"].to_numpy()].to_numpy()

