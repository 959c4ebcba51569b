"""Consensus L1000 signatures of DrugBank drugs (dhimmel/lincs) with their structures, in the curated format.

``consensi-drugbank.tsv.gz`` (registry ``lincs_consensus_drugbank``) holds one consensus level-5 signature per
DrugBank drug: column ``perturbagen`` (DrugBank id) and 978 columns named by landmark Entrez id, each value the
weighted mean moderated z-score of the drug's LINCS phase I signatures over all cell lines, doses and times.
``drugbank.tsv`` (registry ``drugbank_structures``, DrugBank 4.2) gives each DrugBank id its name, groups and InChI.

:func:`read_consensus` reads both and :func:`curate_consensus` makes a :class:`~perturbx.datasets.curated.CuratedL1000`
of one profile per drug:

- structure: canonical SMILES from the InChI (RDKit), with amide hydrogens on nitrogen (see
  :func:`amide_tautomer`); ``compound_group`` = :func:`perturbx.chem.structure_key`, so salts and stereoisomers
  share a group;
- no cell line, dose, time or plate: those columns are NaN, never made-up values; level 5;
- no basal: consensus z-scores have none. :class:`CuratedL1000` requires a basal array, so ``basal`` is all NaN
  (and so is ``change``), and ``basal_source`` says ``"none (consensus z-scores)"``.

Duplicates: dhimmel/lincs matched DrugBank to LINCS by structure, so several DrugBank ids of one structure group
(the same compound listed twice, its salts, stereoisomers or tautomers) carry the very same signature. Within a
structure group, a drug whose signature equals one already kept is dropped, its reason naming the kept id (the
group's first approved drug is kept, else its first in file order); a member with a different signature (e.g.
liotrix, a thyroxine/liothyronine mixture, beside levothyroxine) is kept in the same group.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rdkit import Chem

from .. import chem
from .cmap import N_LANDMARKS, landmark_genes
from .curated import METADATA_COLUMNS, CuratedL1000, DropReport
from .errors import DataError
from .fetcher import fetch
from .stages import assemble, non_finite_counts

SIGNATURES_REGISTRY_NAME = "lincs_consensus_drugbank"
STRUCTURES_REGISTRY_NAME = "drugbank_structures"
LEVEL = 5
BASAL_SOURCE = "none (consensus z-scores)"
SMILES_SOURCE = "DrugBank InChI"
STRUCTURE_COLUMNS = ("drugbank_id", "inchi")
_IMIDIC_ACID = Chem.MolFromSmarts("[OX2H1]-[#6X3]=[NX2]")


class ConsensusFormatError(DataError, ValueError):
    """A signature or structure table that cannot be read as described; the message names the file and the fix."""


# --------------------------------------------------------------------------------------------------- reading

def read_consensus(signatures_path: Path | str | None = None, structures_path: Path | str | None = None, *,
                   source: str | None = None) -> tuple[CuratedL1000, pd.DataFrame]:
    """Read consensus signatures and DrugBank structures and curate them (see :func:`curate_consensus`).

    Args:
        signatures_path: ``consensi-drugbank.tsv.gz``; ``None`` fetches registry ``lincs_consensus_drugbank``.
        structures_path: ``drugbank.tsv``; ``None`` fetches registry ``drugbank_structures``.
        source: name of the input in the metadata and drop table (default: the registry name, else the file name).

    Returns:
        ``(curated, dropped)``: one profile per kept drug, and the drop table (profile_id, source, reason).

    Raises:
        ConsensusFormatError: signature columns that are not the 978 landmark Entrez ids, or a structure table
            without its id or InChI column.
    """
    source = source or (SIGNATURES_REGISTRY_NAME if signatures_path is None else Path(signatures_path).name)
    signatures = read_signature_table(signatures_path or fetch(SIGNATURES_REGISTRY_NAME))
    structures = read_structure_table(structures_path or fetch(STRUCTURES_REGISTRY_NAME))
    return curate_consensus(signatures, structures, source=source)


def read_signature_table(path: Path | str) -> pd.DataFrame:
    """The consensus signatures: float64 (n_drugs, 978), index = drug id, columns = landmark Entrez ids in order.

    Values that are not numbers become NaN (curation drops those rows).

    Raises:
        ConsensusFormatError: the columns after the first are not exactly the 978 landmark Entrez ids.
    """
    frame = _read_tsv(path, "signature table (e.g. consensi-drugbank.tsv.gz)", index_col=0,
                      na_values=["", "NA", "nan"])
    frame.index = frame.index.astype(str)
    order = _landmark_column_order(frame.columns, str(path))
    values = frame.iloc[:, order].apply(pd.to_numeric, errors="coerce").astype(np.float64)
    values.columns = landmark_genes()["gene_id"].to_numpy()
    return values


def _landmark_column_order(columns: pd.Index, source: str) -> np.ndarray:
    """Positions of the 978 landmark genes among ``columns`` (landmark order); errors name the bad columns."""
    text = pd.Series(columns, dtype=object).astype(str).str.strip()
    entrez = pd.to_numeric(text.where(text.str.fullmatch(r"\d+")), errors="coerce")
    wanted = landmark_genes()["gene_id"].to_numpy()
    bad = text[~entrez.isin(wanted)].tolist()
    duplicated = text[entrez.duplicated() & entrez.notna()].tolist()
    missing = [str(g) for g in wanted if g not in set(entrez.dropna().astype(int))]
    if bad or duplicated or missing:
        problems = [f"{len(bad)} column(s) are not landmark Entrez ids (first: {', '.join(map(repr, bad[:5]))})"
                    if bad else "", f"duplicated: {', '.join(duplicated[:5])}" if duplicated else "",
                    f"{len(missing)} landmark gene(s) missing (first: {', '.join(missing[:5])})" if missing else ""]
        raise ConsensusFormatError(f"{source}: the signature columns after the id column must be the "
                                   f"{N_LANDMARKS} landmark Entrez ids; {'; '.join(p for p in problems if p)}. "
                                   "Fix: give consensi-drugbank.tsv.gz (dhimmel/lincs) or a table of that layout.")
    position = pd.Series(np.arange(len(entrez)), index=entrez.to_numpy())
    return position.loc[wanted].to_numpy()


def _read_tsv(path: Path | str, what: str, **options) -> pd.DataFrame:
    """A tab-separated table of text cells (gzip read by the name's ``.gz``); anything that is not one (truncated or
    damaged gzip, a binary file, an empty file, not text) is one :class:`ConsensusFormatError` line."""
    try:
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, **options)
    except (OSError, EOFError, UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        why = lines[0] if lines else type(error).__name__
        raise ConsensusFormatError(f"{path}: cannot be read as a tab-separated {what} ({why}). Fix: the file is "
                                   "truncated, damaged or of another kind; fetch or export it again.") from None


def read_structure_table(path: Path | str) -> pd.DataFrame:
    """DrugBank structures indexed by ``drugbank_id``: columns name, groups (when present) and inchi (text).

    Raises:
        ConsensusFormatError: no ``drugbank_id`` or ``inchi`` column, or an id that appears twice.
    """
    frame = _read_tsv(path, "structure table (e.g. drugbank.tsv)", na_values=[""])
    absent = [c for c in STRUCTURE_COLUMNS if c not in frame.columns]
    if absent:
        raise ConsensusFormatError(f"{path}: a structure table needs columns {', '.join(STRUCTURE_COLUMNS)}; "
                                   f"{', '.join(absent)} missing (found: {', '.join(map(str, frame.columns[:8]))}). "
                                   "Fix: give drugbank.tsv (dhimmel/drugbank) or a table of that layout.")
    duplicated = frame["drugbank_id"][frame["drugbank_id"].duplicated()]
    if len(duplicated):
        raise ConsensusFormatError(f"{path}: drugbank_id {duplicated.iloc[0]!r} appears more than once. "
                                   "Fix: give a structure table with one row per DrugBank id.")
    frame = frame.set_index("drugbank_id")
    return frame[[c for c in ("name", "groups", "inchi") if c in frame.columns]]


# --------------------------------------------------------------------------------------------------- structures

def mol_from_inchi(inchi: str) -> Chem.Mol | None:
    """RDKit molecule of an InChI in its amide form (see :func:`amide_tautomer`); None when RDKit rejects it."""
    if not isinstance(inchi, str) or not inchi.strip():
        return None
    mol = Chem.MolFromInchi(inchi.strip(), sanitize=True, removeHs=True, logLevel=None, treatWarningAsError=False)
    return amide_tautomer(mol) if mol is not None else None


def amide_tautomer(mol: Chem.Mol) -> Chem.Mol:
    """``mol`` with every imidic acid (HO-C=N, not aromatic) written as its amide (O=C-NH).

    An InChI leaves mobile hydrogens unplaced and RDKit's InChI reader puts an amide's on the oxygen (lidocaine
    comes out as ``CCN(CC)CC(O)=Nc1...``), so the SMILES and structure keys of 226 of the 1,170 consensus drugs
    would not match the amide SMILES of the LINCS compound tables. Moving the hydrogen keeps the InChI and InChIKey;
    on the real file it raises the drugs whose structure key is in the LINCS compound table from 817 to 1,055.
    """
    for _ in range(mol.GetNumAtoms()):
        match = mol.GetSubstructMatch(_IMIDIC_ACID)
        if not match:
            return mol
        oxygen, carbon, nitrogen = match
        editable = Chem.RWMol(mol)
        editable.GetBondBetweenAtoms(oxygen, carbon).SetBondType(Chem.BondType.DOUBLE)
        double = editable.GetBondBetweenAtoms(carbon, nitrogen)
        double.SetBondType(Chem.BondType.SINGLE)
        double.SetStereo(Chem.BondStereo.STEREONONE)
        for index, change in ((oxygen, -1), (nitrogen, 1)):
            atom = editable.GetAtomWithIdx(index)
            atom.SetNumExplicitHs(atom.GetTotalNumHs() + change)
            atom.SetNoImplicit(True)
        candidate = editable.GetMol()
        try:
            Chem.SanitizeMol(candidate)
        except (ValueError, RuntimeError):  # RDKit's sanitisation errors derive from these
            return mol
        mol = candidate
    return mol


# --------------------------------------------------------------------------------------------------- curation

def curate_consensus(signatures: pd.DataFrame, structures: pd.DataFrame, *,
                     source: str = "consensus") -> tuple[CuratedL1000, pd.DataFrame]:
    """One curated profile per drug with a structure; every row dropped has its reason.

    Stages: duplicated drug ids (first row kept), NaN/infinite values, structure (no DrugBank row or no InChI; an
    InChI RDKit rejects), duplicate structures with identical signatures (module docstring). Kept rows stay in
    input order; kept + dropped = the input rows.

    Args:
        signatures: float (n_drugs, 978) consensus z-scores, index = DrugBank id, columns in landmark order (as
            :func:`read_signature_table` returns).
        structures: indexed by DrugBank id with column ``inchi`` (optional ``name``, ``groups``).
        source: name of the input in the metadata and the drop table.

    Returns:
        ``(curated, dropped)``: expression float32 (n_kept, 978) consensus z-scores, basal float32 (n_kept, 978) all
        NaN, metadata columns :data:`~perturbx.datasets.curated.METADATA_COLUMNS` (level 5; cell_id, dose_um, time_h
        and plate NaN), and the drop table.
    """
    drops = DropReport(source)
    ids = pd.Index(signatures.index.astype(str))
    first = ~ids.duplicated()
    drops.add(ids[~first], "duplicate row: the DrugBank id appears earlier in the signature table (first kept)")
    values = signatures.to_numpy(np.float64)[first]
    table = pd.DataFrame({"row": np.arange(first.sum())}, index=ids[first])
    with np.errstate(over="ignore"):  # what float32 cannot hold becomes inf in expression.npy: count it here
        bad = non_finite_counts(values.astype(np.float32))
    drops.add(table.index[bad > 0], [f"non-finite values: {n} genes" for n in bad[bad > 0]])
    table = _add_structures(table[bad == 0], structures, drops)
    table = _drop_duplicate_structures(table, values, structures, drops)
    curated = _assemble(table, values, source, drops)
    if len(curated) + len(curated.dropped) != len(ids):
        raise RuntimeError(f"{source}: curation accounting failed: {len(curated)} kept + {len(curated.dropped)} "
                           f"dropped for {len(ids)} rows")
    return curated, curated.dropped


def _add_structures(table: pd.DataFrame, structures: pd.DataFrame, drops: DropReport) -> pd.DataFrame:
    """Add compound_name, canonical_smiles and compound_group; drop drugs without a usable structure."""
    inchi = table.index.to_series().map(structures["inchi"])
    absent = inchi.isna() | (inchi.astype(str).str.strip() == "")
    in_table = table.index.isin(structures.index)
    drops.add(table.index[absent], ["no structure: no InChI in the structure table" if known else
                                    "no structure: DrugBank id not in the structure table"
                                    for known in in_table[absent.to_numpy()]])
    rows = {}
    for drug, text in inchi[~absent].items():
        mol = mol_from_inchi(text)
        if mol is None:
            drops.add([drug], f"invalid InChI: RDKit cannot read the InChI of {drug} ({text[:60]!r}). "
                              "Fix: correct the structure or leave the drug out.")
            continue
        smiles = Chem.MolToSmiles(mol)
        rows[drug] = (chem.canonical_smiles(smiles, drug), chem.structure_key(smiles, drug))
    table = table[table.index.isin(rows)]
    names = structures["name"] if "name" in structures.columns else pd.Series(dtype=object)
    return table.assign(compound_name=table.index.to_series().map(names),
                        canonical_smiles=[rows[d][0] for d in table.index],
                        compound_group=[rows[d][1] for d in table.index])


def _drop_duplicate_structures(table: pd.DataFrame, values: np.ndarray, structures: pd.DataFrame,
                               drops: DropReport) -> pd.DataFrame:
    """Within a structure group, drop drugs whose signature equals one kept (approved drugs first, then order)."""
    groups = structures["groups"] if "groups" in structures.columns else pd.Series(dtype=object)
    tokens = table.index.to_series().map(groups).fillna("").str.split(r"[;,|]\s*", regex=True)
    approved = tokens.map(lambda words: "approved" in [w.strip() for w in words])  # not "vet_approved"
    priority = table.assign(rank=np.arange(len(table)), approved=approved.to_numpy())
    priority = priority.sort_values(["approved", "rank"], ascending=[False, True])
    dropped = set()
    for _, members in priority.groupby("compound_group", sort=False):
        kept: list[str] = []
        for drug in members.index:
            signature = values[table.at[drug, "row"]]
            same = next((k for k in kept if np.array_equal(values[table.at[k, "row"]], signature)), None)
            if same is None:
                kept.append(drug)
                continue
            identical = table.at[same, "canonical_smiles"] == table.at[drug, "canonical_smiles"]
            relation = "same canonical SMILES as" if identical else \
                "same structure group (salt, stereo or tautomer form) as"
            drops.add([drug], f"duplicate structure: {relation} {same} (kept), identical signature")
            dropped.add(drug)
    return table[~table.index.isin(dropped)]


def _assemble(table: pd.DataFrame, values: np.ndarray, source: str, drops: DropReport) -> CuratedL1000:
    """The kept signatures: no cell line, dose, time or basal profile (a consensus pools over them)."""
    table = table.rename_axis("profile_id").assign(
        compound_id=table.index.to_numpy(), smiles_source=SMILES_SOURCE, cell_id=np.nan, dose_um=np.nan,
        time_h=np.nan, plate=np.nan, basal_source=BASAL_SOURCE)
    basal = np.full((len(table), N_LANDMARKS), np.nan, dtype=np.float32)
    return assemble(table, values, basal, source, LEVEL, drops, METADATA_COLUMNS)
