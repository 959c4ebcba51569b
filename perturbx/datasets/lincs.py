"""CMap GCT/GCTX curation: compound treatments paired with basal expression, every dropped profile reported.

:func:`curate` composes the shared stages of :mod:`~perturbx.datasets.stages` over one matrix read by
:func:`~perturbx.datasets.cmap.read_matrix`: metadata join, treatment selection, dose/time/QC checks, compound
resolution, basal pairing, rare-compound filter. Basal profiles: the mean of the same plate's DMSO wells for level-3
plates (and for a level-4 replicate plate joined to its well annotations, where it is the DMSO mean of the
z-scores), otherwise the cell line's row of the basal table (TranSiGen's LINCS 2020 control profiles of 164 cell
lines, log2 expression).

The real data, curated and cached: :func:`load_real_l1000` (the book's first L1000 sets), :func:`load_a375_plates`
(the two A375 plates, LJP005 at 24 h and CPC006 at 6 h, one set with a ``plate`` column) and
:func:`load_replicate_plate` (the DPK.CP003 PC3 plate: 32 compounds x 9-11 wells on one plate).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from .. import chem
from .cmap import (
    N_LANDMARKS,
    L1000Matrix,
    check_unique_profile_ids,
    harmonise,
    index_by_profile_id,
    landmark_genes,
    read_matrix,
    read_table,
)
from .curated import METADATA_COLUMNS, REPLICATE_COLUMNS, CuratedL1000, DropReport
from .fetcher import cache_dir, fetch, sha256_of
from .output_folder import check_output_folder, output_lock, previous_result
from .reference_tables import basal_profiles, compound_table, transigen_gene_order
from .stages import (
    assemble,
    canonicalise,
    check_accounting,
    check_doses,
    non_finite_counts,
    plate_control_means,
    smiles_by_name,
)
from .well_annotations import join_well_annotations

CURATION_VERSION = 2  # bump when curation logic changes, to invalidate cached results
CONTROL_TYPES = ("ctl_vehicle",)
A375_PLATES = ("l1000_level3_a375_plate", "l1000_level3_a375_6h_plate")  # LJP005 24 h, CPC006 6 h
REPLICATE_PLATE = ("l1000_replicate_pc3_plate", "l1000_replicate_pc3_annotations")  # DPK.CP003 PC3 24 h
REFERENCE_TABLES = ("lincs_compound_info", "landmark_geneinfo", "transigen_basal_profiles")


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

def curate(matrix: L1000Matrix, meta: pd.DataFrame | None = None, *, compounds: pd.DataFrame | None = None,
           basal: pd.DataFrame | None = None, min_compound_count: int = 1, qc: bool = False,
           level: int | None = None, source: str | None = None, control_basal: bool | None = None,
           replicate_groups: bool = False) -> CuratedL1000:
    """Curate one matrix: keep compound treatments, pair each with basal expression, report every drop.

    Stages (:mod:`~perturbx.datasets.stages`), each recording what it drops: metadata join, treatment selection
    (profiles with NaN or infinite values among the measured genes dropped; such control wells left out of the
    basal mean), dose/time/QC filters (a dose or time must be finite and > 0), compound resolution, basal pairing,
    rare-compound filter. Every input profile ends up kept or dropped, once.

    Args:
        matrix: profiles read by :func:`~perturbx.datasets.cmap.read_matrix`, values (n_profiles, 978).
        meta: separate per-profile metadata table (sig_info / inst_info / siginfo_beta) for GCTX files that hold
            only ids; ``None`` uses the metadata inside the file.
        compounds: compound table indexed by 13-character BRD id with a ``smiles`` column (default
            :func:`~perturbx.datasets.reference_tables.compound_table`).
        basal: cells x 978 basal log2 expression (default
            :func:`~perturbx.datasets.reference_tables.basal_profiles`).
        min_compound_count: drop compounds with fewer profiles than this (after the other filters).
        qc: drop profiles whose ``qc_pass``/``is_gold`` is 0.
        level: CMap data level (3, 4 or 5); inferred when ``None`` (see :func:`infer_level`).
        source: name of the input in the metadata and the drop table (default: the file name).
        control_basal: pair treatments with the mean of their plate's DMSO wells (default: for level 3 only).
        replicate_groups: add a ``replicate_group`` column (one label per compound, cell, dose and time).

    Returns:
        :class:`CuratedL1000`; kept profiles stay in input order.

    Raises:
        DuplicateProfileIdError: the matrix's profile ids are not unique.
    """
    source = source or Path(matrix.source).name
    check_unique_profile_ids(matrix.columns.index, source)
    level = level or infer_level(matrix)
    control_basal = level == 3 if control_basal is None else control_basal
    compounds = compounds if compounds is not None else compound_table()
    basal = basal if basal is not None else basal_profiles()
    drops = DropReport(source)
    columns, values = _join_metadata(matrix, meta, drops)
    tidy, unit_problems = harmonise(columns, source)
    tidy["row"] = np.arange(len(tidy))
    controls, treatments = _select_treatments(tidy, non_finite_counts(values, matrix.measured), control_basal, drops)
    treatments = check_doses(treatments, unit_problems, drops, qc=qc)
    treatments = _resolve_compounds(treatments, compounds, drops)
    treatments, basal_array = _pair_basal(treatments, controls, values, basal, level, control_basal, drops)
    treatments, basal_array = _drop_rare(treatments, basal_array, min_compound_count, drops)
    curated = assemble(treatments, values, basal_array, source, level, drops,
                       REPLICATE_COLUMNS if replicate_groups else METADATA_COLUMNS, matrix.measured)
    check_accounting(pd.Index(matrix.columns.index.astype(str)), curated, source)
    return curated


def _join_metadata(matrix: L1000Matrix, meta: pd.DataFrame | None,
                   drops: DropReport) -> tuple[pd.DataFrame, np.ndarray]:
    """The profiles' metadata and values (n, 978): the file's own, or those with a row in ``meta``."""
    if meta is None:
        return matrix.columns, matrix.values
    meta = index_by_profile_id(meta, "metadata table")
    known = matrix.columns.index.isin(meta.index)
    drops.add(matrix.columns.index[~known], "no metadata: profile id not in the metadata table")
    return meta.loc[matrix.columns.index[known]], matrix.values[known]


def _select_treatments(tidy: pd.DataFrame, non_finite: np.ndarray, control_basal: bool,
                       drops: DropReport) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(usable controls, compound treatments with finite values); the rest goes to the drop table.

    ``non_finite`` counts the NaN or infinite measured genes of every row. Where controls make the basal, a control
    well with any is left out of the basal mean; a treatment with any is dropped; both are reported with the
    number of genes.
    """
    controls = tidy[tidy["pert_type"].isin(CONTROL_TYPES)]
    treatments = tidy[tidy["pert_type"] == "trt_cp"]
    others = tidy.index[~tidy["pert_type"].isin((*CONTROL_TYPES, "trt_cp"))]
    drops.add(others, [f"not a compound treatment: pert_type {t}" for t in tidy.loc[others, "pert_type"]])
    if control_basal:
        bad = non_finite[controls["row"].to_numpy()]
        drops.add(controls.index, [f"non-finite control well: {n} genes, left out of the basal mean" if n else
                                   "control well: used as basal, not a treatment" for n in bad])
        controls = controls[bad == 0]
    else:
        drops.add(controls.index, "control: not a compound treatment")
    bad = non_finite[treatments["row"].to_numpy()]
    drops.add(treatments.index[bad > 0], [f"non-finite values: {n} genes" for n in bad[bad > 0]])
    return controls, treatments[bad == 0]


def _resolve_compounds(tidy: pd.DataFrame, compounds: pd.DataFrame, drops: DropReport) -> pd.DataFrame:
    """Add compound_id, compound_name, canonical_smiles, compound_group, smiles_source; drop what cannot be."""
    brd = tidy["pert_id"].astype(str).str[:13]
    smiles = brd.map(compounds["smiles"])
    source = pd.Series(np.where(smiles.notna(), "pert_id", None), index=tidy.index, dtype=object)
    names = tidy["pert_iname"].astype(str).str.lower()
    from_name = names.map(smiles_by_name(tidy.loc[smiles.isna(), "pert_iname"], compounds))
    fill = smiles.isna() & from_name.notna()
    smiles[fill] = from_name[fill]
    source[fill] = "pert_iname"
    missing = smiles.isna()
    drops.add(tidy.index[missing], [f"no SMILES: compound {p} ({n}) is not in the compound table"
                                    for p, n in zip(brd[missing], tidy["pert_iname"][missing])])
    tidy = tidy.assign(compound_id=brd, compound_name=tidy["pert_iname"], smiles=smiles, smiles_source=source)
    return canonicalise(tidy[~missing], drops)


def _pair_basal(treatments: pd.DataFrame, controls: pd.DataFrame, values: np.ndarray, basal: pd.DataFrame,
                level: int, control_basal: bool, drops: DropReport) -> tuple[pd.DataFrame, np.ndarray]:
    """Basal: the same plate's DMSO mean where controls make the basal, else the cell-line table; drop what has
    neither.

    Returns:
        (treatments with a ``basal_source`` column, float32 (n, 978) basal in their order).
    """
    plate_means = plate_control_means(controls, values) if control_basal and len(controls) else {}
    kind = "" if level == 3 else " of z-scores"
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
        basal_source[position] = f"same-plate DMSO mean{kind} ({n_wells} wells)"
    return treatments.assign(basal_source=basal_source), basal_array


def _drop_rare(treatments: pd.DataFrame, basal_array: np.ndarray, min_compound_count: int,
               drops: DropReport) -> tuple[pd.DataFrame, np.ndarray]:
    """Drop compounds (structure groups) with fewer than ``min_compound_count`` profiles."""
    counts = treatments["compound_group"].map(treatments["compound_group"].value_counts())
    rare = counts < min_compound_count
    drops.add(treatments.index[rare], [f"rare compound: seen {c} times (< {min_compound_count})" for c in counts[rare]])
    return treatments[~rare], basal_array[~rare.to_numpy()]


def curate_well_annotated(matrix: L1000Matrix, table: pd.DataFrame, table_source: str, **options) -> CuratedL1000:
    """Curate a plate described by a well-annotation table (:mod:`~perturbx.datasets.well_annotations`).

    The plate's DMSO wells make the basal (at level 4 their mean z-score, so ``change`` is the profile against
    the plate's vehicle), and every profile carries a ``replicate_group``. ``options`` as :func:`curate`.
    """
    joined = join_well_annotations(matrix, table, table_source)
    return curate(joined, control_basal=True, replicate_groups=True, **options)


# --------------------------------------------------------------------------------------------------- real data

def read_transigen_pairs(compounds: pd.DataFrame | None = None) -> CuratedL1000:
    """The 100 TranSiGen LINCS 2020 pairs: treated (x2) and paired control (x1) log2 expression.

    Dose and time are not stored in the file; they are NaN here. Compound ids are LINCS BRD ids found by InChIKey
    in the compound table, else ``IK:<InChIKey>``.
    """
    compounds = compounds if compounds is not None else compound_table()
    order = transigen_gene_order()
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


def cache_key(parts: Mapping) -> str:
    """A 16-hex-digit key of a curation's inputs and parameters (their JSON, sha256)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_real_l1000(min_compound_count: int = 1, qc: bool = False) -> CuratedL1000:
    """The staged real L1000 data curated into one dataset (cached).

    Parts (column ``source``): the A375 level-3 plate with same-plate DMSO basal; the 272 level-5 signatures with
    basal from the cell-line table; the 100 TranSiGen level-3 pairs with their paired controls (dose and time
    unknown). ``min_compound_count`` and ``qc`` apply to the first two.
    """
    names = ["l1000_level3_a375_plate", "l1000_level5_modz_n272", "transigen_pairs_example",
             "transigen_basal_profiles", "lincs_compound_info", "landmark_geneinfo"]

    def make() -> CuratedL1000:
        parts = [curate(read_matrix(fetch(name)), min_compound_count=min_compound_count, qc=qc, source=name)
                 for name in ("l1000_level3_a375_plate", "l1000_level5_modz_n272")]
        return CuratedL1000.concat([*parts, read_transigen_pairs()])

    return _cached("real_l1000", names, {"min_compound_count": min_compound_count, "qc": qc}, make)


def _cached(name: str, inputs: list[str], parameters: Mapping, make) -> CuratedL1000:
    """A curated set kept under the cache folder, keyed by its registered inputs' sha256 and ``parameters``."""
    key = cache_key({"inputs": {n: sha256_of(fetch(n)) for n in inputs}, **parameters, "version": CURATION_VERSION})
    folder = check_output_folder(cache_dir() / "curated" / f"{name}-{key}", "cache folder")
    with output_lock(folder, wait=True, label="cache folder"):
        if previous_result(folder, key)[0] is not None:  # a complete copy that agrees with its summary
            return CuratedL1000.load(folder)
        dataset = make()
        dataset.save(folder, {"cache_key": key})
    return dataset


def load_a375_plates(qc: bool = False) -> CuratedL1000:
    """The two real A375 level-3 plates as one set (cached): LJP005 (24 h, 55 compounds x 6 doses) and CPC006
    (6 h, 354 compounds, one well each), each profile with its own plate's DMSO mean as basal.

    Column ``plate`` names the detection plate, ``source`` the registry file; ``dropped`` holds both plates' drops.
    """
    def make() -> CuratedL1000:
        return CuratedL1000.concat([curate(read_matrix(fetch(name)), qc=qc, source=name) for name in A375_PLATES])

    return _cached("a375_plates", [*A375_PLATES, *REFERENCE_TABLES], {"qc": qc}, make)


def load_replicate_plate() -> CuratedL1000:
    """The DPK.CP003 PC3 24 h replicate plate (cached): level-4 z-scores of the compounds with a structure, basal =
    the plate's DMSO mean z-score, ``replicate_group`` per condition, 976 of the 978 genes measured."""
    def make() -> CuratedL1000:
        plate, annotations = (fetch(name) for name in REPLICATE_PLATE)
        return curate_well_annotated(read_matrix(plate), read_table(annotations), str(annotations.name),
                                     source=REPLICATE_PLATE[0])

    return _cached("replicate_plate", [*REPLICATE_PLATE, *REFERENCE_TABLES], {}, make)
