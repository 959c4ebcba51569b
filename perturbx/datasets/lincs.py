"""L1000 curation: compound treatments paired with basal expression, every dropped profile reported.

The result of every curation is a :class:`CuratedL1000`: treated profiles and their paired basal profiles over the
978 landmark genes (in :func:`~perturbx.datasets.cmap.landmark_genes` order), one tidy metadata row per profile,
the dropped profiles with their reasons, and a summary.

Value kinds by data level: level 3 profiles are log2 expression; level 4 are robust z-scores against the plate;
level 5 are MODZ signatures (replicate-collapsed z-scores). Basal profiles are always log2 expression: the mean of
the same plate's DMSO wells for level 3 data that has them, otherwise the cell line's row of the basal table
(TranSiGen's LINCS 2020 control profiles of 164 cell lines).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
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
    harmonise,
    index_by_profile_id,
    landmark_genes,
    read_matrix,
    read_table,
)
from .fetcher import cache_dir, fetch, read_pickle, sha256_of

CURATION_VERSION = 1  # bump when curation logic changes, to invalidate cached results
VALUE_KIND = {3: "log2 expression", 4: "robust z-score", 5: "MODZ z-score"}
CONTROL_TYPES = ("ctl_vehicle",)
METADATA_COLUMNS = ["profile_id", "source", "level", "compound_id", "compound_name", "canonical_smiles",
                    "compound_group", "smiles_source", "cell_id", "dose_um", "time_h", "plate", "basal_source"]


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

    @property
    def change(self) -> np.ndarray:
        """Treated minus basal, float32 (n, 978); meaningful for level-3 (log2 expression) profiles."""
        return self.expression - self.basal

    def summary(self) -> dict:
        """Counts: n_profiles, n_compounds, n_cells, n_genes, sorted doses_um and times_h, dropped by reason."""
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
        }

    def save(self, folder: Path | str, extra_summary: Mapping | None = None) -> None:
        """Write expression.npy, basal.npy, metadata.csv, genes.csv, dropped.csv and summary.json to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "expression.npy", self.expression)
        np.save(folder / "basal.npy", self.basal)
        self.metadata.to_csv(folder / "metadata.csv", index=False)
        self.genes.to_csv(folder / "genes.csv", index=False)
        self.dropped.to_csv(folder / "dropped.csv", index=False)
        (folder / "summary.json").write_text(json.dumps(self.summary() | dict(extra_summary or {}), indent=2))

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


# --------------------------------------------------------------------------------------------------- inputs

@cache
def compound_table() -> pd.DataFrame:
    """LINCS compound metadata (registry ``lincs_compound_info``) indexed by 13-character BRD id."""
    table = read_table(fetch("lincs_compound_info"))
    return _compound_index(table, "lincs_compound_info")


def _compound_index(table: pd.DataFrame, source: str) -> pd.DataFrame:
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

class _Drops:
    """Collects (profile_id, source, reason) for every record removed."""

    def __init__(self, source: str):
        self.source = source
        self.rows: list[tuple[str, str, str]] = []

    def add(self, ids, reason: str | Sequence[str]) -> None:
        ids = list(ids)
        reasons = [reason] * len(ids) if isinstance(reason, str) else list(reason)
        self.rows += [(str(i), self.source, r) for i, r in zip(ids, reasons)]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["profile_id", "source", "reason"])


def curate(matrix: L1000Matrix, meta: pd.DataFrame | None = None, *, compounds: pd.DataFrame | None = None,
           basal: pd.DataFrame | None = None, min_compound_count: int = 1, qc: bool = False,
           level: int | None = None, source: str | None = None) -> CuratedL1000:
    """Curate one matrix: keep compound treatments, pair each with basal expression, report every drop.

    Stages, each recording what it drops: metadata join, treatment selection, dose/time/QC filters, compound
    resolution, basal pairing, rare-compound filter.

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
    """
    source = source or Path(matrix.source).name
    level = level or infer_level(matrix)
    compounds = compounds if compounds is not None else compound_table()
    basal = basal if basal is not None else basal_profiles()
    drops = _Drops(source)
    columns, values = _join_metadata(matrix, meta, drops)
    tidy, unit_problems = harmonise(columns, source)
    tidy["row"] = np.arange(len(tidy))
    controls, treatments = _select_treatments(tidy, level, drops)
    treatments = _filter_doses_and_qc(treatments, unit_problems, qc, drops)
    treatments = _resolve_compounds(treatments, compounds, drops)
    treatments, basal_array = _pair_basal(treatments, controls, values, basal, level, drops)
    treatments, basal_array = _drop_rare(treatments, basal_array, min_compound_count, drops)
    return _assemble(treatments, values, basal_array, source, level, drops)


def _join_metadata(matrix: L1000Matrix, meta: pd.DataFrame | None, drops: _Drops) -> tuple[pd.DataFrame, np.ndarray]:
    """The profiles' metadata and values (n, 978): the file's own, or those with a row in ``meta``."""
    if meta is None:
        return matrix.columns, matrix.values
    meta = index_by_profile_id(meta, "metadata table")
    known = matrix.columns.index.isin(meta.index)
    drops.add(matrix.columns.index[~known], "no metadata: profile id not in the metadata table")
    return meta.loc[matrix.columns.index[known]], matrix.values[known]


def _select_treatments(tidy: pd.DataFrame, level: int, drops: _Drops) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(controls, compound treatments); everything else, and the controls themselves, go to the drop table."""
    controls = tidy[tidy["pert_type"].isin(CONTROL_TYPES)]
    treatments = tidy[tidy["pert_type"] == "trt_cp"]
    others = tidy.index[~tidy["pert_type"].isin((*CONTROL_TYPES, "trt_cp"))]
    drops.add(others, [f"not a compound treatment: pert_type {t}" for t in tidy.loc[others, "pert_type"]])
    drops.add(controls.index, "control well: used as basal, not a treatment" if level == 3 else
              "control: not a compound treatment")
    return controls, treatments


def _filter_doses_and_qc(treatments: pd.DataFrame, unit_problems: pd.DataFrame, qc: bool,
                         drops: _Drops) -> pd.DataFrame:
    """Drop treatments with an unreadable or missing dose/time, and (when ``qc``) those that failed QC."""
    problems = unit_problems.set_index("profile_id")["reason"]
    bad_units = treatments.index.isin(problems.index)
    drops.add(treatments.index[bad_units], [f"unreadable dose/time: {r}" for r in
                                            problems.loc[treatments.index[bad_units]].groupby(level=0).first()])
    treatments = treatments[~bad_units]
    no_dose = treatments["dose_um"].isna() | treatments["time_h"].isna()
    drops.add(treatments.index[no_dose], "missing dose or time")
    treatments = treatments[~no_dose]
    if qc:
        failed = treatments["qc_pass"] == 0
        drops.add(treatments.index[failed], "failed QC: qc_pass/is_gold is 0")
        treatments = treatments[~failed]
    return treatments


def _resolve_compounds(tidy: pd.DataFrame, compounds: pd.DataFrame, drops: _Drops) -> pd.DataFrame:
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


def _canonicalise(tidy: pd.DataFrame, drops: _Drops) -> pd.DataFrame:
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
                level: int, drops: _Drops) -> tuple[pd.DataFrame, np.ndarray]:
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
               drops: _Drops) -> tuple[pd.DataFrame, np.ndarray]:
    """Drop compounds (structure groups) with fewer than ``min_compound_count`` profiles."""
    counts = treatments["compound_group"].map(treatments["compound_group"].value_counts())
    rare = counts < min_compound_count
    drops.add(treatments.index[rare], [f"rare compound: seen {c} times (< {min_compound_count})" for c in counts[rare]])
    return treatments[~rare], basal_array[~rare.to_numpy()]


def _assemble(treatments: pd.DataFrame, values: np.ndarray, basal_array: np.ndarray, source: str, level: int,
              drops: _Drops) -> CuratedL1000:
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
    folder = cache_dir() / "curated" / f"real_l1000-{key}"
    if (folder / "summary.json").exists():
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
                 qc: bool = False, level: int | None = None, progress: bool = False) -> tuple[dict, bool]:
    """The ``perturbx lincs curate`` command: curate one matrix file and write the result to ``out``.

    Writes expression.npy (float32, profiles x 978 landmark genes in Entrez order), basal.npy (the same shape),
    metadata.csv, genes.csv, dropped.csv and summary.json. The result is reused when ``out`` already holds one
    made from inputs with the same sha256 and the same parameters.

    Returns:
        (summary, reused): the summary dict and whether a cached result was reused.
    """
    out = Path(out)
    inputs = {"matrix": matrix, "meta": meta, "compounds": compounds, "genes": genes}
    inputs = {k: Path(v) for k, v in inputs.items() if v is not None}
    for role, path in inputs.items():
        if not path.is_file():
            raise FileNotFoundError(f"--{role} {path}: no such file. Fix: check the path.")
    defaults = ["transigen_basal_profiles", "landmark_geneinfo"] + ([] if compounds else ["lincs_compound_info"])
    key = _cache_key({"inputs": {k: sha256_of(p) for k, p in inputs.items()},
                      "registry_inputs": {n: sha256_of(fetch(n)) for n in defaults},
                      "min_compound_count": min_compound_count, "qc": qc, "level": level,
                      "version": CURATION_VERSION})
    previous = _previous_result(out, key)
    if previous is not None:
        return previous, True
    gene_table = _gene_table(inputs["genes"]) if "genes" in inputs else None
    compound_index = _compound_index(read_table(inputs["compounds"]), str(inputs["compounds"])) \
        if "compounds" in inputs else None
    matrix_data = read_matrix(inputs["matrix"], genes=gene_table, progress=progress)
    meta_table = read_table(inputs["meta"]) if "meta" in inputs else None
    curated = curate(matrix_data, meta_table, compounds=compound_index, min_compound_count=min_compound_count,
                     qc=qc, level=level, source=inputs["matrix"].name)
    extra = {"cache_key": key, "inputs": {k: str(p) for k, p in inputs.items()},
             "parameters": {"min_compound_count": min_compound_count, "qc": qc, "level": level}}
    curated.save(out, extra)
    return json.loads((out / "summary.json").read_text()), False


def _previous_result(out: Path, key: str) -> dict | None:
    """The summary in ``out`` when ``out`` holds a complete result made with cache key ``key``, else None."""
    summary_path = out / "summary.json"
    if not summary_path.exists():
        return None
    previous = json.loads(summary_path.read_text())
    files = ("expression.npy", "basal.npy", "metadata.csv", "dropped.csv")
    return previous if previous.get("cache_key") == key and all((out / f).exists() for f in files) else None
