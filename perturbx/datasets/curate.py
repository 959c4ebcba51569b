"""``perturbx lincs curate``: curate one matrix file, by its format, into the curated folder format.

- ``.gct`` / ``.gctx``: CMap matrices at levels 3-5, with optional metadata, compound and gene tables
  (:func:`perturbx.datasets.lincs.curate`); a ``--meta`` table in the well-annotation layout of the CMap
  deconvolution study (pert_well, det_plate, handle) describes a plate whose matrix holds only wells
  (:func:`perturbx.datasets.lincs.curate_well_annotated`);
- ``.rda``: a PharmacoGx PharmacoSet of level-3 L1000 instances with same-plate vehicle wells, e.g. CMapBox
  ``psetSub.rda`` (:func:`perturbx.datasets.pharmacoset.read_pharmacoset`; ``--compounds`` optionally gives the
  LINCS compound table for structures the PharmacoSet lacks);
- ``.tsv`` / ``.tsv.gz`` / ``.txt``: consensus signatures, one row per drug and one column per landmark gene, e.g.
  ``consensi-drugbank.tsv.gz``, with ``--compounds`` the structure table (``drugbank.tsv``: ids and InChI)
  (:func:`perturbx.datasets.consensus.curate_consensus`).

Every format is written in the same curated folder format, whole or not at all, with the same cache check
(:func:`curate_files`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from . import consensus, lincs, pharmacoset
from .cmap import MetadataError, harmonise, index_by_profile_id, read_matrix, read_table
from .curated import CuratedL1000
from .errors import DataError
from .fetcher import fetch, sha256_of
from .lincs import CURATION_VERSION, cache_key
from .output_folder import check_output_folder, output_lock, previous_result
from .reference_tables import index_compound_table
from .well_annotations import is_well_annotation_table

CMAP_SUFFIXES = (".gct", ".gctx")
CONSENSUS_SUFFIXES = (".tsv", ".tsv.gz", ".txt", ".txt.gz")


class NothingKeptError(DataError):
    """A curation that dropped every profile; nothing is written."""


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
                 qc: bool = False, level: int | None = None, progress: bool = False,
                 notice: Callable[[str], None] | None = None) -> tuple[dict, bool]:
    """The ``perturbx lincs curate`` command: curate one matrix file (any format of the module docstring) and
    write the result to ``out``.

    Writes expression.npy (float32, profiles x 978 landmark genes in Entrez order), basal.npy (the same shape),
    metadata.csv, genes.csv, dropped.csv and summary.json, whole or not at all (see :meth:`CuratedL1000.save`).
    ``out`` is checked before any curation work and locked while the run lasts (a second run fails at once). The
    result is reused when ``out`` already holds one made from inputs with the same sha256 and the same parameters
    and it agrees with its summary (rows and sha256 of every file); otherwise it is curated again.

    Args:
        notice: called with one line when ``out`` holds a result that is not reused, saying why.

    Returns:
        (summary, reused): the summary dict and whether a cached result was reused.

    Raises:
        FileNotFoundError: an input file is missing.
        OutputFolderError: ``out`` cannot be used (:func:`check_output_folder`, :func:`output_lock`).
        OutputLockedError: another run is writing ``out``.
        MetadataError: an unknown format, options the format cannot use, or an input that cannot be read (one
            line naming the file and the fix).
        NothingKeptError: every profile was dropped; nothing is written.
    """
    reader = reader_for(Path(matrix), {"meta": meta, "compounds": compounds, "genes": genes, "level": level,
                                       "qc": qc, "min_compound_count": min_compound_count})
    inputs = {"matrix": matrix, "meta": meta, "compounds": compounds, "genes": genes}
    inputs = {k: Path(v) for k, v in inputs.items() if v is not None}
    for role, path in inputs.items():
        if not path.is_file():
            raise FileNotFoundError(f"--{role} {path}: no such file. Fix: check the path.")
    out = check_output_folder(out)
    with output_lock(out):
        defaults = ["transigen_basal_profiles", "landmark_geneinfo"] + ([] if compounds else ["lincs_compound_info"])
        key = cache_key({"inputs": {k: sha256_of(p) for k, p in inputs.items()},
                          "registry_inputs": {n: sha256_of(fetch(n)) for n in defaults},
                          "min_compound_count": min_compound_count, "qc": qc, "level": level,
                          "version": CURATION_VERSION})
        previous, why = previous_result(out, key)
        if previous is not None:
            return previous, True
        if why and notice:
            notice(f"{out}: not up to date ({why}); curating again")
        curated = reader(inputs) if reader else _curate_inputs(inputs, min_compound_count, qc, level, progress)
        if not len(curated):
            raise NothingKeptError(_nothing_kept(curated, inputs["matrix"]))
        extra = {"cache_key": key, "inputs": {k: str(p) for k, p in inputs.items()},
                 "parameters": {"min_compound_count": min_compound_count, "qc": qc, "level": level}}
        return curated.save(out, extra), False


def _curate_inputs(inputs: Mapping[str, Path], min_compound_count: int, qc: bool, level: int | None,
                   progress: bool) -> CuratedL1000:
    """Read the tables (first, so that a bad one fails before the matrix is read) and the matrix; curate.

    A ``--meta`` table of the well-annotation layout (pert_well, det_plate, handle) is joined to the matrix's wells
    (:func:`~perturbx.datasets.lincs.curate_well_annotated`); any other is a per-profile table keyed by profile id.
    """
    table = _meta_table(inputs["meta"]) if "meta" in inputs else None
    gene_table = _gene_table(inputs["genes"]) if "genes" in inputs else None
    compound_index = index_compound_table(read_table(inputs["compounds"]), str(inputs["compounds"])) \
        if "compounds" in inputs else None
    matrix_data = read_matrix(inputs["matrix"], genes=gene_table, progress=progress)
    options = {"compounds": compound_index, "min_compound_count": min_compound_count, "qc": qc, "level": level,
               "source": inputs["matrix"].name}
    if table is not None and is_well_annotation_table(table):
        return lincs.curate_well_annotated(matrix_data, table, str(inputs["meta"]), **options)
    return lincs.curate(matrix_data, table, **options)


def _meta_table(path: Path) -> pd.DataFrame:
    """A per-profile metadata table, its id column and required columns checked (messages name ``path``)."""
    table = read_table(path)
    if table.empty:
        raise MetadataError(f"{path}: the metadata table has no rows. Fix: give the table with one row per profile "
                            "(siginfo_beta.txt, GEO sig_info/inst_info).")
    if not is_well_annotation_table(table):  # a well-annotation table's cell line comes from its plate name
        harmonise(index_by_profile_id(table.head(1), str(path)), str(path))  # the columns, checked on one row
    return table


_NOTHING_KEPT_FIX = {
    "no metadata": "give the --meta table whose ids match the matrix's column ids",
    "non-finite values": "the matrix holds NaN or infinite values; fetch or export it again",
    "unreadable dose/time": "give doses and times in known units (e.g. 10 uM, 24 h)",
    "missing dose or time": "give the metadata table with the profiles' doses and times",
    "invalid dose/time": "doses and times must be finite and > 0; correct them in the metadata table",
    "failed QC": "leave out --qc to keep profiles that failed QC",
    "no SMILES": "give --compounds with the compounds' SMILES (e.g. compoundinfo_beta.txt)",
    "invalid SMILES": "correct the SMILES in the compound table",
    "no basal expression": "use cell lines of the basal table, or level-3 plates with DMSO wells",
    "rare compound": "lower --min-compound-count",
}


def _nothing_kept(curated: CuratedL1000, matrix: Path) -> str:
    """The one-line message of a curation that kept nothing: the drop reasons counted, and the likeliest fix."""
    counts = curated.summary()["dropped"]
    fixable = {reason: n for reason, n in counts.items() if reason in _NOTHING_KEPT_FIX}
    fix = _NOTHING_KEPT_FIX[max(fixable, key=fixable.get)] if fixable else \
        "give a matrix with compound treatments (pert_type trt_cp)"
    shown = ", ".join(f"{reason}: {n}" for reason, n in counts.items()) or "the file holds no profiles"
    return f"{matrix}: every profile was dropped ({shown}); nothing written. Fix: {fix}."


def reader_for(matrix: Path, options: Mapping) -> Callable[[Mapping[str, Path]], CuratedL1000] | None:
    """The reader of ``matrix``'s format (None: a CMap matrix, curated by :func:`_curate_inputs`)."""
    name = matrix.name.lower()
    if name.endswith(CMAP_SUFFIXES):
        return None
    given = [f"--{k}" for k in ("meta", "genes", "level") if options.get(k) is not None]
    given += ["--qc"] * bool(options.get("qc")) + ["--min-compound-count"] * (options.get("min_compound_count", 1) != 1)
    if name.endswith(".rda"):
        _refuse(matrix, given, "a PharmacoSet carries its own sample and gene tables")
        return _pharmacoset
    if name.endswith(CONSENSUS_SUFFIXES):
        _refuse(matrix, given, "a consensus table's columns are the genes and its rows the drugs")
        if options.get("compounds") is None:
            raise MetadataError(f"{matrix}: consensus signatures need their structures. Fix: add --compounds "
                                "with the structure table (e.g. drugbank.tsv: drugbank_id and inchi columns).")
        return _consensus
    raise MetadataError(f"{matrix}: unknown matrix format. Fix: give a .gct/.gctx CMap matrix, a .rda PharmacoSet "
                        "or a .tsv(.gz) consensus signature table.")


def _refuse(matrix: Path, given: list[str], why: str) -> None:
    if given:
        raise MetadataError(f"{matrix}: {' and '.join(given)} cannot be used with this format ({why}). Fix: leave "
                            f"{' and '.join(given)} out.")


def _pharmacoset(inputs: Mapping[str, Path]) -> CuratedL1000:
    compounds = None
    if "compounds" in inputs:
        compounds = index_compound_table(read_table(inputs["compounds"]), str(inputs["compounds"]))
    return pharmacoset.read_pharmacoset(inputs["matrix"], source=inputs["matrix"].name, compounds=compounds)[0]


def _consensus(inputs: Mapping[str, Path]) -> CuratedL1000:
    return consensus.read_consensus(inputs["matrix"], inputs["compounds"], source=inputs["matrix"].name)[0]
