"""``perturbx lincs curate``: which reader curates a matrix file, chosen by its format.

- ``.gct`` / ``.gctx``: CMap matrices at levels 3-5, with optional metadata, compound and gene tables
  (:func:`perturbx.datasets.lincs.curate`);
- ``.rda``: a PharmacoGx PharmacoSet of level-3 L1000 instances with same-plate vehicle wells, e.g. CMapBox
  ``psetSub.rda`` (:func:`perturbx.datasets.pharmacoset.read_pharmacoset`; ``--compounds`` optionally gives the
  LINCS compound table for structures the PharmacoSet lacks);
- ``.tsv`` / ``.tsv.gz`` / ``.txt``: consensus signatures, one row per drug and one column per landmark gene, e.g.
  ``consensi-drugbank.tsv.gz``, with ``--compounds`` the structure table (``drugbank.tsv``: ids and InChI)
  (:func:`perturbx.datasets.consensus.curate_consensus`).

Every format is written in the same curated folder format, atomically and with the same cache check
(:func:`perturbx.datasets.lincs.curate_files`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from . import consensus, lincs, pharmacoset
from .cmap import MetadataError, read_table
from .lincs import CuratedL1000

CMAP_SUFFIXES = (".gct", ".gctx")
CONSENSUS_SUFFIXES = (".tsv", ".tsv.gz", ".txt", ".txt.gz")


def curate_files(matrix: Path | str, out: Path | str, **options) -> tuple[dict, bool]:
    """Curate ``matrix`` (any format of the module docstring) into ``out``; options as
    :func:`perturbx.datasets.lincs.curate_files` (``meta``, ``compounds``, ``genes``, ...).

    Returns:
        (summary, reused), as :func:`perturbx.datasets.lincs.curate_files`.

    Raises:
        MetadataError: an unknown format, or options the format cannot use, naming the file and the fix.
    """
    reader = reader_for(Path(matrix), options)
    return lincs.curate_files(matrix, out, reader=reader, **options)


def reader_for(matrix: Path, options: Mapping) -> Callable[[Mapping[str, Path]], CuratedL1000] | None:
    """The reader of ``matrix``'s format (None: a CMap matrix, curated by :func:`lincs.curate`)."""
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
        compounds = lincs.index_compound_table(read_table(inputs["compounds"]), str(inputs["compounds"]))
    return pharmacoset.read_pharmacoset(inputs["matrix"], source=inputs["matrix"].name, compounds=compounds)[0]


def _consensus(inputs: Mapping[str, Path]) -> CuratedL1000:
    return consensus.read_consensus(inputs["matrix"], inputs["compounds"], source=inputs["matrix"].name)[0]
