"""Level-3 L1000 PharmacoSets (PharmacoGx ``.rda`` files) curated into the package's format, replicates labelled.

A PharmacoGx ``PharmacoSet`` keeps L1000 instances in ``molecularProfiles$rna``, an ExpressionSet: ``exprs``
(genes x instances, log2 expression), instance metadata in ``phenoData@data`` (CMap inst_info columns: pert_id,
pert_type, cell_id, pert_dose/pert_dose_unit, pert_time/pert_time_unit, det_plate, drugid, ...), gene metadata in
``featureData@data`` (``pr_gene_id`` = Entrez id) and the compounds in the ``drug`` table (pert_iname,
canonical_smiles). The CMapBox ``psetSub.rda`` (registry ``cmapbox_pset_skbr3``) holds 580 SKBR3 instances: 10
kinase inhibitors at 4 doses x 2 times with 3-5 replicate wells per condition, one replicate per replicate plate,
each plate with its own DMSO wells.

:func:`read_pharmacoset` reads such a file; :func:`curate_pharmacoset` is the pure curation over the parsed pieces
(tests give it tiny hand-made inputs). The result is a :class:`~perturbx.datasets.curated.CuratedL1000` like
:func:`~perturbx.datasets.lincs.curate` makes (level 3, basal = same-plate DMSO mean), plus a ``replicate_group``
column: one label per condition (compound, cell line, dose, time), shared by its replicate wells.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rdata

from .cmap import N_LANDMARKS, check_unique_profile_ids, harmonise, landmark_genes
from .curated import REPLICATE_COLUMNS, CuratedL1000, DropReport
from .errors import DataError
from .fetcher import fetch
from .reference_tables import compound_table
from .stages import (
    assemble,
    canonicalise,
    check_accounting,
    check_doses,
    non_finite_counts,
    plate_control_means,
    smiles_by_name,
)

REGISTRY_NAME = "cmapbox_pset_skbr3"
LEVEL = 3
BASAL_VEHICLE = "DMSO"
PHARMACOSET_COLUMNS = REPLICATE_COLUMNS
R_CONSTRUCTOR_WARNING = "Missing constructor for R class"  # rdata's UserWarning for every S4 class it keeps plain
R_DATA_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"RDX2\n", b"RDX3\n", b"RDA2\n", b"RDA3\n")  # compressed or not
GENE_ID_COLUMNS = ("pr_gene_id", "gene_id", "EntrezGene.ID", "ENTREZID")


class PharmacoSetError(DataError, ValueError):
    """An input that is not a usable L1000 PharmacoSet; the one-line message names the file and the fix."""


@dataclass
class PharmacoSetParts:
    """The pieces of a PharmacoSet that curation uses.

    Attributes:
        expression: float (n_instances, n_genes) log2 expression (the ExpressionSet's ``exprs``, transposed).
        gene_ids: (n_genes,) Entrez ids (text or integers) of the expression columns.
        samples: one row per instance (index: instance id, e.g. ``LJP002_SKBR3_6H_X1_F2B5_DUO52HI53LO:G03``),
            the ``phenoData`` columns.
        drugs: the drug table, indexed by drug id (the instances' ``drugid``); ``pert_iname`` and
            ``canonical_smiles`` are used when present.
        source: the file they came from.
    """

    expression: np.ndarray
    gene_ids: np.ndarray
    samples: pd.DataFrame
    drugs: pd.DataFrame
    source: str


# --------------------------------------------------------------------------------------------------- reading

def read_pharmacoset(path: Path | str | None = None, *, source: str | None = None,
                     compounds: pd.DataFrame | None = None) -> tuple[CuratedL1000, pd.DataFrame]:
    """Read a PharmacoSet ``.rda`` and curate its level-3 instances (see :func:`curate_pharmacoset`).

    Args:
        path: the ``.rda`` file; ``None`` fetches registry ``cmapbox_pset_skbr3`` (CMapBox ``psetSub.rda``).
        source: name of the input in the metadata and drop table (default: the registry name, else the file name).
        compounds: LINCS compound table for structures the drug table lacks (default
            :func:`~perturbx.datasets.reference_tables.compound_table`, read only when needed).

    Returns:
        ``(curated, dropped)``: the :class:`CuratedL1000` (metadata columns :data:`PHARMACOSET_COLUMNS`) and its
        drop table (profile_id, source, reason), one row per instance not kept.

    Raises:
        PharmacoSetError: the file is not R data, holds no PharmacoSet, or its genes miss landmark genes.
    """
    parts = parse_pharmacoset(path if path is not None else fetch(REGISTRY_NAME))
    source = source or (REGISTRY_NAME if path is None else Path(path).name)
    return curate_pharmacoset(parts.expression, parts.gene_ids, parts.samples, parts.drugs, source=source,
                              compounds=compounds)


def parse_pharmacoset(path: Path | str) -> PharmacoSetParts:
    """The pieces of the PharmacoSet in an ``.rda`` file (read with ``rdata``, no R needed).

    Raises:
        FileNotFoundError: no such file.
        PharmacoSetError: the file cannot be read as R data or holds no usable PharmacoSet.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file. Fix: check the path.")
    with path.open("rb") as handle:
        head = handle.read(6)
    if not head.startswith(R_DATA_MAGIC):
        raise PharmacoSetError(f"{path}: not an R data file (it starts with {head!r}, not gzip/bzip2/xz or RDX). "
                               "Fix: give an .rda file saved by R, e.g. CMapBox data/psetSub.rda.")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=R_CONSTRUCTOR_WARNING, category=UserWarning)
            objects = rdata.read_rda(path)
    except Exception as error:  # rdata fails with several exception types on a file that is not R data
        raise PharmacoSetError(f"{path}: cannot be read as R data ({type(error).__name__}: {error}). "
                               "Fix: give an .rda file saved by R, e.g. CMapBox data/psetSub.rda.") from error
    return pharmacoset_parts(objects, str(path))


def pharmacoset_parts(objects: Mapping[str, object], source: str) -> PharmacoSetParts:
    """Find the PharmacoSet among the objects of a converted ``.rda`` and take out the pieces curation uses.

    Args:
        objects: name -> object, as ``rdata.read_rda`` returns them (S4 objects as plain namespaces).
        source: the file, for messages.

    Raises:
        PharmacoSetError: no PharmacoSet, no ``rna`` ExpressionSet, or pieces whose sizes or ids disagree.
    """
    pset = _find_pharmacoset(objects, source)
    eset = _rna_expression_set(pset, source)
    exprs = eset.assayData["exprs"]
    samples = _plain_table(eset.phenoData.data)
    features = _plain_table(eset.featureData.data)
    values = np.asarray(exprs, dtype=np.float64)
    if values.shape != (len(features), len(samples)):
        raise PharmacoSetError(f"{source}: exprs is {values.shape} but featureData has {len(features)} genes and "
                               f"phenoData {len(samples)} instances. Fix: give an intact PharmacoSet.")
    coords = getattr(exprs, "coords", {})
    for axis, table, what in ((0, features, "featureData"), (1, samples, "phenoData")):
        names = getattr(exprs, "dims", ())[axis:axis + 1]
        if names and names[0] in coords and not np.array_equal(np.asarray(coords[names[0]], dtype=str),
                                                               table.index.to_numpy(dtype=str)):
            raise PharmacoSetError(f"{source}: the exprs {'row' if axis == 0 else 'column'} names are not the "
                                   f"{what} row names. Fix: give an intact PharmacoSet.")
    return PharmacoSetParts(values.T, _gene_ids(features, source), samples, _drug_table(pset), source)


def _r_class(value: object) -> str:
    """The R class of a converted object, for messages."""
    if isinstance(value, pd.DataFrame):
        return "data.frame"
    classes = getattr(value, "class", None)
    return "/".join(np.asarray(classes, dtype=str).ravel()) if classes is not None else type(value).__name__


def _find_pharmacoset(objects: Mapping[str, object], source: str) -> object:
    for value in objects.values():
        if "PharmacoSet" in _r_class(value).split("/"):
            return value
    found = ", ".join(f"{name} ({_r_class(value)})" for name, value in objects.items()) or "no objects"
    raise PharmacoSetError(f"{source}: not a PharmacoSet file: it holds {found}. "
                           "Fix: give an .rda holding a PharmacoGx PharmacoSet, e.g. CMapBox data/psetSub.rda.")


def _rna_expression_set(pset: object, source: str) -> object:
    """``molecularProfiles$rna`` as an ExpressionSet with exprs, phenoData and featureData."""
    profiles = getattr(pset, "molecularProfiles", None)
    if not isinstance(profiles, Mapping) or "rna" not in profiles:
        names = ", ".join(map(str, profiles)) if isinstance(profiles, Mapping) else "none"
        raise PharmacoSetError(f"{source}: the PharmacoSet has no 'rna' molecular profile (found: {names}). "
                               "Fix: give a PharmacoSet with L1000 expression in molecularProfiles$rna.")
    eset = profiles["rna"]
    assay = getattr(eset, "assayData", None)
    tables = [getattr(getattr(eset, slot, None), "data", None) for slot in ("phenoData", "featureData")]
    if assay is None or "exprs" not in assay or not all(isinstance(t, pd.DataFrame) for t in tables):
        raise PharmacoSetError(f"{source}: molecularProfiles$rna ({_r_class(eset)}) is not an ExpressionSet with "
                               "exprs, phenoData and featureData (PharmacoGx >= 2 stores SummarizedExperiments, "
                               "not read here). Fix: give a PharmacoGx 1.x PharmacoSet such as CMapBox psetSub.rda.")
    return eset


def _drug_table(pset: object) -> pd.DataFrame:
    """The PharmacoSet's drug table (slot ``drug``; ``treatment`` in later PharmacoGx), empty when it has none."""
    for slot in ("drug", "treatment"):
        table = getattr(pset, slot, None)
        if isinstance(table, pd.DataFrame):
            return _plain_table(table)
    return pd.DataFrame()


def _plain_table(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with str row and column names and object columns holding NaN for R's NA."""
    frame = frame.astype(object)
    frame = frame.where(frame.notna(), np.nan)
    frame.index = frame.index.astype(str)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _gene_ids(features: pd.DataFrame, source: str) -> np.ndarray:
    """Entrez ids from a featureData column (pr_gene_id, ...), else the trailing digits of the row names."""
    column = next((c for c in GENE_ID_COLUMNS if c in features.columns), None)
    if column is not None:
        return features[column].to_numpy()
    ids = [re.search(r"(\d+)$", name) for name in features.index]
    if not all(ids):
        raise PharmacoSetError(f"{source}: featureData has no Entrez id column ({', '.join(GENE_ID_COLUMNS)}) and "
                               "its row names are not Entrez ids. Fix: give a PharmacoSet with pr_gene_id.")
    return np.array([match.group(1) for match in ids], dtype=object)


# --------------------------------------------------------------------------------------------------- curation

def curate_pharmacoset(expression: np.ndarray, gene_ids, samples: pd.DataFrame, drugs: pd.DataFrame, *,
                       source: str = "pharmacoset",
                       compounds: pd.DataFrame | None = None) -> tuple[CuratedL1000, pd.DataFrame]:
    """Curate level-3 instances: compound treatments with their same-plate DMSO basal, replicates labelled.

    Stages, each reporting what it drops: landmark genes (all 978 must be present), wells (controls, other
    perturbation types, NaN/infinite values), dose and time (readable, finite, > 0), structures (the drug table's
    SMILES by ``drugid``, else the LINCS compound table by BRD id, else by name when the name has one structure;
    ``smiles_source`` says which), basal (the mean of the same plate's DMSO wells of the cell line; the cell line's
    DMSO mean over all plates for an instance without plate information; ``basal_source`` says which and how
    many wells). Every instance ends up kept or dropped, once.

    Args:
        expression: float (n_instances, n_genes) log2 expression.
        gene_ids: (n_genes,) Entrez ids of the columns.
        samples: n_instances rows (index: unique instance ids) with pert_id, pert_type, cell_id, pert_dose +
            pert_dose_unit (or pert_idose), pert_time + pert_time_unit (or pert_itime), det_plate (or rna_plate);
            optional ``drugid`` (row of ``drugs``; default pert_id).
        drugs: drug table indexed by drug id; optional columns ``pert_iname``, ``canonical_smiles``.
        source: name of the input in the metadata and the drop table.
        compounds: LINCS compound table indexed by 13-character BRD id with ``smiles`` and ``pert_iname`` (default
            :func:`~perturbx.datasets.reference_tables.compound_table`, read only for compounds the drug table lacks).

    Returns:
        ``(curated, dropped)``: float32 expression and basal (n_kept, 978) in landmark order, metadata columns
        :data:`PHARMACOSET_COLUMNS` (dose_um in µM, time_h in h, level 3), and the drop table.

    Raises:
        PharmacoSetError: sizes disagree, landmark genes are missing, or the values are not log2 expression.
        MetadataError: a required sample column is absent (from :func:`~perturbx.datasets.cmap.harmonise`).
    """
    values = _landmark_values(expression, gene_ids, len(samples), source)
    check_unique_profile_ids(samples.index, source)
    samples = _plain_table(samples)
    tidy, unit_problems = harmonise(samples, source)
    tidy["row"] = np.arange(len(tidy))
    tidy["drug_key"] = samples["drugid"].fillna(samples["pert_id"]) if "drugid" in samples else samples["pert_id"]
    drops = DropReport(source)
    controls, treatments = _split_wells(tidy, values, drops)
    treatments = check_doses(treatments, unit_problems, drops)
    treatments = _resolve_structures(treatments, _plain_table(drugs), compounds, drops)
    treatments, basal, used = _pair_plate_basal(treatments, controls, values, drops)
    _report_controls(controls, used, drops)
    curated = assemble(treatments, values, basal, source, LEVEL, drops, PHARMACOSET_COLUMNS)
    check_accounting(samples.index, curated, source)
    return curated, curated.dropped


def _landmark_values(expression: np.ndarray, gene_ids, n_samples: int, source: str) -> np.ndarray:
    """float32 (n_samples, 978) in landmark order; errors name the first missing landmark ids."""
    expression = np.asarray(expression, dtype=np.float64)
    gene_ids = np.asarray(gene_ids, dtype=object).ravel()
    if expression.shape != (n_samples, len(gene_ids)):
        raise PharmacoSetError(f"{source}: expression is {expression.shape}, expected (instances, genes) = "
                               f"({n_samples}, {len(gene_ids)}). Fix: give one row per instance, one column per gene.")
    text = pd.Series(gene_ids).astype(str).str.strip().str.replace(r"\.0+$", "", regex=True)
    entrez = pd.to_numeric(text.where(text.str.fullmatch(r"\d+")), errors="coerce")
    wanted = landmark_genes()["gene_id"].to_numpy()
    hits = entrez[entrez.isin(wanted)]
    duplicated = hits[hits.duplicated()].astype(int).unique()
    missing = [str(g) for g in wanted if g not in set(hits.astype(int))]
    if missing or len(duplicated):
        problem = (f"{len(missing)} of the {N_LANDMARKS} landmark genes are missing from its genes (first missing "
                   f"Entrez ids: {', '.join(missing[:5])})" if missing else
                   f"landmark genes {', '.join(map(str, duplicated[:5]))} appear in several rows")
        raise PharmacoSetError(f"{source}: {problem}. Fix: give a PharmacoSet whose featureData holds each of the "
                               f"{N_LANDMARKS} L1000 landmark genes once (pr_gene_id = Entrez id).")
    position = pd.Series(hits.index.to_numpy(), index=hits.astype(int).to_numpy())
    values = expression[:, position.loc[wanted].to_numpy()].astype(np.float32)
    finite = values[np.isfinite(values)]
    if finite.size and np.percentile(finite, 1) < 0:
        raise PharmacoSetError(f"{source}: values are not level-3 log2 expression (1st percentile "
                               f"{np.percentile(finite, 1):.2f} < 0; z-scores?). Fix: give level-3 instances.")
    return values


def _split_wells(tidy: pd.DataFrame, values: np.ndarray, drops: DropReport) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(DMSO control wells with finite values, compound treatments with finite values); the rest is dropped."""
    non_finite = non_finite_counts(values)
    is_control = tidy["pert_type"] == "ctl_vehicle"
    others = tidy.index[~is_control & (tidy["pert_type"] != "trt_cp")]
    drops.add(others, [f"not a compound treatment: pert_type {t}" for t in tidy.loc[others, "pert_type"]])
    vehicle = tidy["pert_id"].astype(str)
    other_vehicle = is_control & (vehicle.str.upper() != BASAL_VEHICLE)
    drops.add(tidy.index[other_vehicle], [f"control well ({v}, not used): the basal is the {BASAL_VEHICLE} mean"
                                          for v in vehicle[other_vehicle]])
    controls = tidy[is_control & ~other_vehicle]
    bad = non_finite[controls["row"].to_numpy()]
    drops.add(controls.index[bad > 0], [f"non-finite control well: {n} genes, left out of the basal mean"
                                        for n in bad[bad > 0]])
    treatments = tidy[tidy["pert_type"] == "trt_cp"]
    bad_treated = non_finite[treatments["row"].to_numpy()]
    drops.add(treatments.index[bad_treated > 0],
              [f"non-finite values: {n} genes" for n in bad_treated[bad_treated > 0]])
    return controls[bad == 0], treatments[bad_treated == 0]


def _resolve_structures(treatments: pd.DataFrame, drugs: pd.DataFrame, compounds: pd.DataFrame | None,
                        drops: DropReport) -> pd.DataFrame:
    """Add compound_id, compound_name, canonical_smiles, compound_group, smiles_source; drop what has none."""
    treatments = treatments.assign(compound_id=treatments["pert_id"].astype(str).str[:13])
    keys = treatments.groupby("compound_id")["drug_key"].first()
    table = _structures(keys, drugs[~drugs.index.duplicated()], compounds)
    missing = treatments["compound_id"].map(table["smiles"]).isna().to_numpy()
    drops.add(treatments.index[missing], [f"no SMILES: compound {c} ({table.at[c, 'compound_name']}) is in neither "
                                          "the drug table nor the LINCS compound table"
                                          for c in treatments["compound_id"][missing]])
    treatments = treatments[~missing]
    ids = treatments["compound_id"]
    treatments = canonicalise(treatments.assign(smiles=ids.map(table["smiles"])), drops)
    ids = treatments["compound_id"]
    return treatments.assign(compound_name=ids.map(table["compound_name"]),
                             smiles_source=ids.map(table["smiles_source"]))


def _structures(keys: pd.Series, drugs: pd.DataFrame, compounds: pd.DataFrame | None) -> pd.DataFrame:
    """compound_id -> compound_name, smiles (NaN when none is found), smiles_source."""
    rows = {}
    for compound, drug_key in keys.items():
        drug = drugs.loc[drug_key] if drug_key in drugs.index else pd.Series(dtype=object)
        name, smiles = drug.get("pert_iname", np.nan), drug.get("canonical_smiles", np.nan)
        rows[compound] = [name, smiles, "pharmacoset drug table" if pd.notna(smiles) else np.nan]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["compound_name", "smiles", "smiles_source"])
    lacking = table.index[table["smiles"].isna()]
    if len(lacking):
        compounds = compounds if compounds is not None else compound_table()
        for compound in lacking:
            found = _lincs_structure(compound, table.at[compound, "compound_name"], compounds)
            if found is not None:
                table.loc[compound, ["compound_name", "smiles", "smiles_source"]] = found
    table["compound_name"] = table["compound_name"].fillna(pd.Series(table.index, index=table.index))
    return table


def _lincs_structure(compound: str, name, compounds: pd.DataFrame) -> list | None:
    """[name, smiles, smiles_source] from the LINCS compound table: by BRD id, else by a name with one structure."""
    if compound in compounds.index:
        row = compounds.loc[compound]
        return [name if pd.notna(name) else row.get("pert_iname", np.nan), row["smiles"],
                "lincs compound table (pert_id)"]
    if pd.isna(name):
        return None
    smiles = smiles_by_name(pd.Series([name]), compounds).get(str(name).lower())
    return None if smiles is None else [name, smiles, "lincs compound table (name)"]


def _pair_plate_basal(treatments: pd.DataFrame, controls: pd.DataFrame, values: np.ndarray,
                      drops: DropReport) -> tuple[pd.DataFrame, np.ndarray, set]:
    """Basal = mean of the same plate's DMSO wells of the cell line (all its DMSO wells when the plate is unknown).

    Returns:
        (kept treatments with ``basal_source``, float32 (n_kept, 978) basal log2 expression, the (plate, cell)
        keys used; plate None = the cell line's wells on all plates).
    """
    means = plate_control_means(controls, values)
    means |= plate_control_means(controls.assign(plate="*all plates*"), values)  # for instances without a plate
    keys = [(plate if pd.notna(plate) else "*all plates*", cell) for plate, cell in zip(treatments["plate"],
                                                                                         treatments["cell_id"])]
    found = np.array([key in means for key in keys], dtype=bool)
    drops.add(treatments.index[~found], [f"no basal expression: plate {p} has no {BASAL_VEHICLE} wells of cell "
                                         f"line {c}" for (p, c), ok in zip(keys, found) if not ok])
    keys = [key for key, ok in zip(keys, found) if ok]
    basal = np.empty((len(keys), N_LANDMARKS), dtype=np.float32)
    sources = []
    for position, key in enumerate(keys):
        basal[position], n_wells = means[key]
        where = "same-plate" if key[0] != "*all plates*" else "all-plate (no plate information)"
        sources.append(f"{where} {BASAL_VEHICLE} mean ({n_wells} wells)")
    return treatments[found].assign(basal_source=sources), basal, {(None if p == "*all plates*" else p, c)
                                                                   for p, c in keys}


def _report_controls(controls: pd.DataFrame, used: set, drops: DropReport) -> None:
    """Every DMSO well is dropped as a treatment: used in a basal mean, or on a plate with no kept treatment."""
    cells_all_plates = {cell for plate, cell in used if plate is None}
    in_basal = [(plate, cell) in used or cell in cells_all_plates
                for plate, cell in zip(controls["plate"], controls["cell_id"])]
    drops.add(controls.index, ["control well: used as basal, not a treatment" if ok else
                               f"control well ({BASAL_VEHICLE}, not used): no kept treatment on plate {plate}"
                               for ok, plate in zip(in_basal, controls["plate"])])


# --------------------------------------------------------------------------------------------------- controls

def dmso_wells(expression: np.ndarray, gene_ids, samples: pd.DataFrame, *,
               source: str = "pharmacoset") -> tuple[np.ndarray, pd.DataFrame]:
    """The DMSO vehicle wells with finite values, for the well-to-well noise of the plates.

    Args:
        expression, gene_ids, samples: as for :func:`curate_pharmacoset`.
        source: the input's name, for messages.

    Returns:
        ``(values, metadata)``: float32 (n_wells, 978) log2 expression in landmark order, and one row per well
        with profile_id, cell_id and plate.
    """
    values = _landmark_values(expression, gene_ids, len(samples), source)
    tidy, _ = harmonise(_plain_table(samples), source)
    keep = ((tidy["pert_type"] == "ctl_vehicle") & (tidy["pert_id"].astype(str).str.upper() == BASAL_VEHICLE)
            & np.isfinite(values).all(axis=1)).to_numpy()
    metadata = tidy.loc[keep, ["cell_id", "plate"]].reset_index()
    return values[keep], metadata
