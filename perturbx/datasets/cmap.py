"""Reading CMap / LINCS L1000 matrices and harmonising their metadata.

Formats and layouts handled:

- **GCT v1.3** text, read with cmapPy (a Latin-1 file is transcoded to UTF-8 first, since cmapPy reads UTF-8 only).
- **GCTX** (HDF5: ``0/DATA/0/matrix`` stored as [n_columns x n_rows], ``0/META/COL/*``, ``0/META/ROW/*``), read with
  h5py. cmapPy 4.0.1 is not used for GCTX because it decodes metadata as ASCII and fails on the Latin-1 ``µ`` of
  real files (e.g. cmapR's ``modzs_n272x978.gctx``), and because it reads a row subset with one fancy-indexed
  HDF5 read over the whole matrix; here the matrix is read in blocks of columns and only the landmark rows are kept,
  so a 12,328 x 100,000 matrix is never held in memory whole.
- Both layouts of the public releases: metadata inside the file (cmapR/CLUE style) or a file holding only ids with
  metadata in separate tables (GEO GSE92742/GSE70138 ``inst_info``/``sig_info``/``gene_info``, CLUE LINCS 2020
  ``siginfo_beta``/``compoundinfo_beta``/``cellinfo_beta``/``geneinfo_beta``).

Every matrix comes out as :class:`L1000Matrix`: profiles in rows, the 978 landmark genes in columns ordered by
Entrez id, whatever the file's row ids were (probe ids, Entrez ids or symbols).
"""

from __future__ import annotations

import gzip
import io
import logging
import tempfile
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from cmapPy.pandasGEXpress import parse_gct, setup_GCToo_logger
from tqdm.std import tqdm  # text bars: stored notebook outputs stay readable (see book.publishing.tidy_streams)

from .errors import MetadataError
from .fetcher import fetch
from .units import MISSING, UnitError, dose_to_um, time_to_h

N_LANDMARKS = 978
MAX_MISSING_LANDMARKS = 19  # about 2%: a file lacking more is not an L1000 landmark matrix
_BLOCK_BYTES = 64 << 20  # read GCTX matrices in blocks of about this many bytes


class GeneMatchError(MetadataError):
    """The rows of a matrix cannot be matched to the 978 landmark genes."""


class MatrixFileError(MetadataError):
    """A GCT/GCTX file that cannot be read as one: truncated or damaged, or its header disagrees with its body."""


class DuplicateProfileIdError(MatrixFileError):
    """A matrix whose column (profile) ids are not unique: a profile would vanish from the drop report."""


_DAMAGED_FIX = "Fix: the file is truncated or damaged; fetch or copy it again and compare its size and sha256 " \
    "with the source."


# --------------------------------------------------------------------------------------------------- landmarks

@cache
def landmark_genes() -> pd.DataFrame:
    """The 978 L1000 landmark genes, ordered by Entrez id (ascending, as integers).

    Returns:
        DataFrame with columns ``gene_id`` (int), ``gene_symbol`` (LINCS 2020 symbol), ``ensembl_id``;
        row ``i`` is column ``i`` of every expression array in the package.
    """
    table = pd.read_csv(fetch("landmark_geneinfo"))
    table = table[table["feature_space"] == "landmark"][["gene_id", "gene_symbol", "ensembl_id"]]
    table = table.astype({"gene_id": int}).sort_values("gene_id").reset_index(drop=True)
    if len(table) != N_LANDMARKS:
        raise MetadataError(f"landmark_geneinfo: expected {N_LANDMARKS} landmark genes, found {len(table)}")
    return table


def _as_entrez(values: pd.Series | np.ndarray) -> pd.Series:
    """Entrez ids as Int64 (NA where a value is not an integer id, e.g. a probe id or a symbol)."""
    series = pd.Series(np.asarray(values, dtype=object)).astype(str).str.strip()
    series = series.where(series.str.fullmatch(r"\d+(\.0+)?"))
    return pd.to_numeric(series, errors="coerce").astype("Int64")


def landmark_positions(row_ids: pd.Index | np.ndarray, row_meta: pd.DataFrame | None = None,
                       source: str = "matrix") -> np.ndarray:
    """Positions of the 978 landmark genes among a matrix's rows, in landmark (Entrez) order.

    Rows are matched by Entrez id from a ``pr_gene_id``/``gene_id`` metadata column, else from the row ids
    themselves, else by symbol (``pr_gene_symbol``/``gene_symbol`` or the ids). A file may lack up to
    :data:`MAX_MISSING_LANDMARKS` landmark genes (e.g. the deconvolution study's UNI plates measure 976): their
    position is -1, and the readers give them NaN columns flagged as not measured, never filled in.

    Returns:
        int array of shape (978,): ``values[positions]`` puts the rows in landmark order; -1 = not in the file.

    Raises:
        GeneMatchError: more than :data:`MAX_MISSING_LANDMARKS` landmark genes could not be matched, or one
            matched several rows.
    """
    landmarks = landmark_genes()
    row_meta = row_meta if row_meta is not None else pd.DataFrame(index=pd.Index(row_ids))
    attempts = []
    for column in ("pr_gene_id", "gene_id"):
        if column in row_meta.columns:
            attempts.append((f"Entrez ids in row metadata column {column!r}", _as_entrez(row_meta[column]),
                             landmarks["gene_id"]))
    attempts.append(("Entrez ids as row ids", _as_entrez(row_ids), landmarks["gene_id"]))
    for column in ("pr_gene_symbol", "gene_symbol"):
        if column in row_meta.columns:
            attempts.append((f"symbols in row metadata column {column!r}",
                             pd.Series(row_meta[column].astype(str).to_numpy()), landmarks["gene_symbol"]))
    attempts.append(("symbols as row ids", pd.Series(np.asarray(row_ids, dtype=str)), landmarks["gene_symbol"]))

    best = (0, "", None, None)
    for how, keys, wanted in attempts:
        keys = pd.Series(keys.to_numpy(), dtype=object)
        found = keys.isin(set(wanted.tolist()))
        n_found = int(keys[found].nunique())
        if n_found > best[0]:
            best = (n_found, how, keys, wanted)
        if n_found == N_LANDMARKS:
            return _positions(keys, found, wanted, how, source)
    n_found, how, keys, wanted = best
    if n_found >= N_LANDMARKS - MAX_MISSING_LANDMARKS:
        return _positions(keys, keys.isin(set(wanted.tolist())), wanted, how, source)
    missing = [] if keys is None else [str(g) for g in wanted if g not in set(keys.tolist())][:5]
    detail = f"the best match ({how}) found {n_found}, missing e.g. {', '.join(missing)}" if n_found else \
        f"none matched (row ids look like {', '.join(map(str, list(row_ids)[:3]))})"
    raise GeneMatchError(
        f"{source}: cannot match the {N_LANDMARKS} L1000 landmark genes to the matrix rows: {detail}. "
        "Fix: give a gene table (geneinfo_beta.txt or gene_info.txt) that maps the row ids to Entrez ids."
    )


def _positions(keys: pd.Series, found: pd.Series, wanted: pd.Series, how: str, source: str) -> np.ndarray:
    """Row of every wanted gene (-1 where absent); a gene matching several rows is an error."""
    hits = keys[found]
    duplicated = hits[hits.duplicated()].unique()
    if len(duplicated):
        raise GeneMatchError(f"{source}: landmark genes {list(duplicated[:5])} match several rows "
                             f"({how}). Fix: remove duplicated rows or give a gene table with unique ids.")
    position = pd.Series(np.flatnonzero(found.to_numpy()), index=hits.to_numpy())
    return position.reindex(wanted.to_numpy()).fillna(-1).to_numpy(np.int64)


def take_landmarks(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """float32 (n_profiles, 978) from (n_profiles, n_rows) values: the landmark columns in order, NaN where a
    position is -1 (a gene the file does not measure)."""
    out = np.full((len(values), len(positions)), np.nan, dtype=np.float32)
    present = positions >= 0
    out[:, present] = values[:, positions[present]]
    return out


# --------------------------------------------------------------------------------------------------- matrices

@dataclass
class L1000Matrix:
    """Landmark expression of a set of profiles as read from one file.

    Attributes:
        values: float32 array (n_profiles, 978), genes in :func:`landmark_genes` order.
        columns: per-profile metadata as found in the file (index: profile id), -666 replaced by NaN.
        source: the file it came from.
        measured: bool (978,): the landmark genes the file holds (the others' columns are NaN).
    """

    values: np.ndarray
    columns: pd.DataFrame
    source: str
    measured: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.measured is None:
            self.measured = np.ones(N_LANDMARKS, dtype=bool)


def _decode(array: np.ndarray) -> np.ndarray:
    """HDF5 strings to str: UTF-8 where valid, else Latin-1 (CMap files of 2017 store 'µ' as byte 0xB5)."""
    if array.dtype.kind not in "SO":
        return array

    def one(value):
        if isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return value.decode("latin-1")
        return value

    return np.array([one(v) for v in array], dtype=object)


def _missing_to_nan(frame: pd.DataFrame) -> pd.DataFrame:
    """CMap writes -666 for missing values, as numbers or as strings."""
    return frame.mask(frame.isin([MISSING, float(MISSING), str(MISSING), "-666.0"]))


def _read_meta(group: h5py.Group) -> pd.DataFrame:
    columns = {name: _decode(group[name][()]) for name in group.keys()}
    ids = columns.pop("id")
    frame = pd.DataFrame(columns, index=pd.Index(ids.astype(str), name="id"))
    return _missing_to_nan(frame)


def _first_line(error: BaseException) -> str:
    """An exception's message as one line (its first non-empty line, else the exception's type)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


@contextmanager
def _open_gctx(path: Path):
    """``h5py.File(path)``, with HDF5 failures (truncated, damaged, not GCTX) as one-line :class:`MatrixFileError`."""
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise MatrixFileError(f"{path}: HDF5 cannot read the file ({_first_line(error)}). {_DAMAGED_FIX}") from error
    with handle:
        try:
            missing = [name for name in ("0/DATA/0/matrix", "0/META/ROW/id", "0/META/COL/id") if name not in handle]
            if missing:
                raise MatrixFileError(f"{path}: not a GCTX file: no {', '.join(missing)}. "
                                      "Fix: give a CMap .gctx file (or a .gct text file).")
            yield handle
        except OSError as error:  # a damaged block found while reading
            raise MatrixFileError(f"{path}: HDF5 cannot read the file ({_first_line(error)}). "
                                  f"{_DAMAGED_FIX}") from error


def check_unique_profile_ids(ids: pd.Index | Sequence[str], source: str) -> None:
    """Raise :class:`DuplicateProfileIdError` naming the first few ids that appear more than once.

    Raises:
        DuplicateProfileIdError: some id appears more than once.
    """
    ids = pd.Index(ids)
    duplicated = ids[ids.duplicated()].unique()
    if len(duplicated):
        shown = ", ".join(repr(str(i)) for i in duplicated[:5]) + (", ..." if len(duplicated) > 5 else "")
        raise DuplicateProfileIdError(f"{source}: {len(duplicated)} profile (column) id(s) appear more than once: "
                                      f"{shown}. Fix: give a file with one column per profile (unique column ids).")


def read_gctx_ids(path: Path | str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Row and column metadata of a GCTX file (no matrix values).

    Raises:
        MatrixFileError: HDF5 cannot read the file, or it lacks the GCTX datasets.
    """
    with _open_gctx(Path(path)) as handle:
        return _read_meta(handle["0/META/ROW"]), _read_meta(handle["0/META/COL"])


def read_gctx(path: Path | str, genes: pd.DataFrame | None = None, columns: np.ndarray | None = None,
              progress: bool = False) -> L1000Matrix:
    """Read the landmark rows of a GCTX file.

    Args:
        path: the .gctx file.
        genes: optional gene table (e.g. ``geneinfo_beta.txt``) indexed like the file's row ids, for files whose
            row ids alone cannot be matched to landmark genes.
        columns: optional positions of the columns (profiles) to read; default all.
        progress: show a progress bar over blocks.

    Returns:
        :class:`L1000Matrix` with values of shape (n_columns, 978).

    Raises:
        MatrixFileError: the file is truncated or damaged, its matrix disagrees with its ids, or column ids repeat.
        GeneMatchError: the rows cannot be matched to the landmark genes.
    """
    path = Path(path)
    row_meta, col_meta = read_gctx_ids(path)
    check_unique_profile_ids(col_meta.index, str(path))
    if genes is not None:
        row_meta = row_meta.join(genes, how="left", rsuffix="_genes")
    rows = landmark_positions(row_meta.index, row_meta, source=str(path))
    with _open_gctx(path) as handle:
        matrix = handle["0/DATA/0/matrix"]
        n_cols, n_rows = matrix.shape
        if n_rows != len(row_meta) or n_cols != len(col_meta):
            raise MatrixFileError(f"{path}: matrix shape {matrix.shape} does not match {len(col_meta)} column ids "
                                f"x {len(row_meta)} row ids. Fix: the file is damaged; fetch it again.")
        wanted = np.arange(n_cols) if columns is None else np.asarray(columns)
        out = np.empty((len(wanted), N_LANDMARKS), dtype=np.float32)
        block = max(1, _BLOCK_BYTES // (4 * n_rows))
        if matrix.chunks is not None:  # read whole chunks so that no chunk is decompressed twice
            block = max(matrix.chunks[0], block // matrix.chunks[0] * matrix.chunks[0])
        order = np.argsort(wanted, kind="stable")  # h5py reads increasing indices; restore order afterwards
        ordered = wanted[order]
        contiguous = np.array_equal(ordered, np.arange(ordered[0], ordered[0] + len(ordered))) if len(ordered) else True
        buffer = np.empty((block, n_rows), dtype=np.float32)
        for start in tqdm(range(0, len(ordered), block), disable=not progress, desc=f"reading {path.name}"):
            stop = min(start + block, len(ordered))
            if contiguous:
                first = int(ordered[0]) + start
                matrix.read_direct(buffer, np.s_[first:first + stop - start, :], np.s_[0:stop - start, :])
                out[order[start:stop]] = take_landmarks(buffer[: stop - start], rows)
            else:
                out[order[start:stop]] = take_landmarks(matrix[ordered[start:stop], :], rows)
    return L1000Matrix(values=out, columns=col_meta.iloc[wanted], source=str(path), measured=rows >= 0)


def read_gct(path: Path | str, genes: pd.DataFrame | None = None) -> L1000Matrix:
    """Read the landmark rows of a GCT (v1.2 or v1.3) text file with cmapPy.

    Raises:
        MatrixFileError: the dimension line, the header row and the body disagree, or column ids repeat.
        GeneMatchError: the rows cannot be matched to the landmark genes.
    """
    path = Path(path)
    _check_gct_header(path)
    gct = _parse_gct(path)
    row_meta = gct.row_metadata_df
    if genes is not None:
        row_meta = row_meta.join(genes, how="left", rsuffix="_genes")
    rows = landmark_positions(gct.data_df.index, row_meta, source=str(path))
    values = take_landmarks(gct.data_df.to_numpy(dtype=np.float32).T, rows)
    col_meta = _missing_to_nan(gct.col_metadata_df.copy())
    col_meta.index = col_meta.index.astype(str).rename("id")
    col_meta.columns.name = None
    return L1000Matrix(values=values, columns=col_meta, source=str(path), measured=rows >= 0)


def _check_gct_header(path: Path) -> None:
    """Check the dimension line and the header row of a GCT file against each other, and the column ids."""
    with open(path, "rb") as handle:
        version, dims, header = (handle.readline().decode("latin-1").rstrip("\r\n") for _ in range(3))
    fields = ("rows, columns, row-metadata fields, column-metadata fields" if version.strip() == "#1.3" else
              "rows, columns")
    n_fields = 4 if version.strip() == "#1.3" else 2
    numbers = [int(d) for d in dims.strip().split("\t") if d.strip().isdigit()]
    if len(numbers) != n_fields or len(dims.strip().split("\t")) != n_fields:
        raise MatrixFileError(f"{path}: GCT {version.strip().lstrip('#')} dimension line {dims!r} is not {n_fields} "
                              f"whole numbers ({fields}). Fix: the file is damaged or was edited by hand; export "
                              "it again (or correct the second line).")
    n_rows, n_cols = numbers[:2]
    n_row_meta = numbers[2] if n_fields == 4 else 1
    names = header.split("\t")
    if len(names) != 1 + n_row_meta + n_cols:
        raise MatrixFileError(f"{path}: GCT header row has {len(names)} fields, but the dimension line ({n_rows} rows "
                              f"x {n_cols} columns, {n_row_meta} row-metadata fields) needs {1 + n_row_meta + n_cols}. "
                              "Fix: the file is damaged or was edited by hand; export it again so that the "
                              "dimension line matches the table.")
    check_unique_profile_ids(names[1 + n_row_meta:], str(path))


def _parse_gct(path: Path):
    """The GCToo of a GCT file read by cmapPy (Latin-1 transcoded); failures as one :class:`MatrixFileError` line."""
    cmappy_logger = logging.getLogger(setup_GCToo_logger.LOGGER_NAME)
    was_disabled, cmappy_logger.disabled = cmappy_logger.disabled, True  # its errors are re-raised as one line
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # cmapPy + pandas 2.2: to_numeric(errors="ignore")
            try:
                return parse_gct.parse(str(path), convert_neg_666=True)
            except UnicodeDecodeError:
                # cmapPy reads UTF-8 only; 2017-era CMap text stores 'µ' as Latin-1. Transcode in memory.
                text = path.read_bytes().decode("latin-1")
                with _utf8_copy(text, path.suffix) as copy:
                    return parse_gct.parse(str(copy), convert_neg_666=True)
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - cmapPy raises bare Exception and AssertionError
        raise MatrixFileError(f"{path}: the GCT body does not match its dimension line ({_first_line(error)}). "
                              "Fix: the file is truncated or damaged; export or fetch it again.") from error
    finally:
        cmappy_logger.disabled = was_disabled


@contextmanager
def _utf8_copy(text: str, suffix: str):
    """A temporary UTF-8 file holding ``text``, removed on exit."""
    handle = tempfile.NamedTemporaryFile("w", suffix=suffix, encoding="utf-8", delete=False)
    try:
        with handle:
            handle.write(text)
        yield Path(handle.name)
    finally:
        Path(handle.name).unlink(missing_ok=True)


def read_matrix(path: Path | str, genes: pd.DataFrame | None = None, progress: bool = False) -> L1000Matrix:
    """Read a ``.gct`` or ``.gctx`` file's landmark rows (see :func:`read_gct` and :func:`read_gctx`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file. Fix: check the path of the expression matrix.")
    if path.suffix.lower() == ".gctx" and h5py.is_hdf5(path):
        return read_gctx(path, genes=genes, progress=progress)
    with open(path, "rb") as handle:
        first = handle.readline().strip()
    if first in (b"#1.2", b"#1.3"):
        return read_gct(path, genes=genes)
    raise MetadataError(f"{path}: neither GCTX (HDF5) nor GCT text (first line {first[:20]!r}). "
                        "Fix: give a CMap .gct or .gctx file.")


def read_table(path: Path | str) -> pd.DataFrame:
    """Read a CMap metadata table (tab-separated, optionally gzipped), decoding Latin-1 where UTF-8 fails.

    Raises:
        MetadataError: the file is empty, binary, not gzip though named ``.gz``, or not a table.
    """
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise MetadataError(f"{path}: not a readable gzip file ({_first_line(error)}). "
                                "Fix: give the table itself, or fetch the .gz again.") from error
    if b"\x00" in raw[:65536]:
        raise MetadataError(f"{path}: a binary file, not a text table. Fix: give the tab-separated table "
                            "(e.g. siginfo_beta.txt), not a matrix or an archive.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    sep = "," if path.name.removesuffix(".gz").endswith(".csv") else "\t"
    kind = "comma" if sep == "," else "tab"
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=["", "NA", "nan"])
    except pd.errors.EmptyDataError:
        raise MetadataError(f"{path}: empty file, not a table. Fix: give the {kind}-separated table itself "
                            "(e.g. siginfo_beta.txt).") from None
    except pd.errors.ParserError as error:
        raise MetadataError(f"{path}: not a {kind}-separated table ({_first_line(error)}). Fix: give the "
                            f"{kind}-separated table itself (e.g. siginfo_beta.txt).") from error
    return _missing_to_nan(frame)


# --------------------------------------------------------------------------------------------------- metadata

# Harmonised column -> the names the public releases use for it, in order of preference.
ALIASES = {
    "pert_id": ["pert_id"],
    "pert_iname": ["pert_iname", "cmap_name", "pert_name", "pert_desc"],
    "pert_type": ["pert_type"],
    "cell_id": ["cell_id", "cell_iname", "cell_mfc_name"],
    "plate": ["det_plate", "rna_plate", "bead_batch"],
    "qc_pass": ["qc_pass", "is_gold"],
}
PROFILE_ID_COLUMNS = ["sig_id", "inst_id", "distil_id", "id", "cid"]
# Dose and time: (number column, unit column) pairs in order of preference (CMap releases write pert_dose; the CMap
# MATLAB test plates write exp_pert_dose), else one column holding both as text ("10 um", "24 h").
QUANTITY_COLUMNS = {
    "dose_um": ([("pert_dose", "pert_dose_unit"), ("exp_pert_dose", "exp_pert_dose_unit")], "pert_idose"),
    "time_h": ([("pert_time", "pert_time_unit"), ("exp_pert_time", "exp_pert_time_unit")], "pert_itime"),
}


def _first(frame: pd.DataFrame, names: list[str]) -> pd.Series | None:
    for name in names:
        if name in frame.columns:
            return frame[name]
    return None


def harmonise(columns: pd.DataFrame, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tidy per-profile metadata from a file's or table's own columns.

    Args:
        columns: metadata indexed by profile id (as in :attr:`L1000Matrix.columns`, or a sig/inst info table
            already indexed by its id column).
        source: the file the metadata came from, for messages.

    Returns:
        ``(tidy, problems)``: ``tidy`` has columns pert_id, pert_iname, pert_type, cell_id, dose_um, time_h,
        plate, qc_pass (index: profile id); ``problems`` lists (profile_id, reason) for every dose or time that
        could not be read (those rows get NaN and are dropped later by curation, with that reason).

    Raises:
        MetadataError: a required column (pert_id, pert_type, cell, a dose and a time) is absent.
    """
    tidy = pd.DataFrame(index=columns.index.astype(str))
    tidy.index.name = "profile_id"
    for name, options in ALIASES.items():
        found = _first(columns, options)
        if found is None and name in ("pert_id", "pert_type", "cell_id"):
            raise MetadataError(f"{source}: no {name} column (looked for {', '.join(options)}). "
                                "Fix: give the matching metadata table (sig_info / inst_info / siginfo_beta).")
        tidy[name] = found.to_numpy() if found is not None else np.nan
    if tidy["pert_iname"].isna().all():
        tidy["pert_iname"] = tidy["pert_id"]
    if tidy["plate"].isna().all():  # instance ids are "<plate>:<well>"
        ids = pd.Series(tidy.index, index=tidy.index)
        tidy["plate"] = ids.str.rsplit(":", n=1).str[0].where(ids.str.count(":") == 1)
    # the CMap MATLAB test plates write TRT_CP, CTL_VEHICLE
    tidy["pert_type"] = tidy["pert_type"].map(lambda kind: kind.lower() if isinstance(kind, str) else kind)
    problems = []
    for target, convert in (("dose_um", dose_to_um), ("time_h", time_to_h)):
        number_units, one_string = QUANTITY_COLUMNS[target]
        pair = next(((n, u) for n, u in number_units if n in columns.columns and u in columns.columns), None)
        if pair is not None:
            pairs = zip(columns[pair[0]], columns[pair[1]])
        elif one_string in columns.columns:
            pairs = ((value, None) for value in columns[one_string])
        else:
            looked = ", ".join(f"{n} + {u}" for n, u in number_units)
            raise MetadataError(f"{source}: no {target.split('_')[0]} columns (looked for {looked}, or "
                                f"{one_string}). Fix: give the matching metadata table.")
        values = []
        for profile_id, (value, value_unit) in zip(tidy.index, pairs):
            try:
                values.append(convert(value, value_unit))
            except UnitError as error:
                values.append(np.nan)
                problems.append((profile_id, str(error)))
        tidy[target] = np.asarray(values, dtype=float)
    tidy["qc_pass"] = pd.to_numeric(tidy["qc_pass"], errors="coerce")
    problem_table = pd.DataFrame(problems, columns=["profile_id", "reason"])
    return tidy, problem_table


def index_by_profile_id(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """Index a sig/inst info table by its id column (``sig_id``, ``inst_id``, ``distil_id`` or ``id``)."""
    for name in PROFILE_ID_COLUMNS:
        if name in table.columns:
            indexed = table.set_index(name)
            indexed.index = indexed.index.astype(str)
            if indexed.index.duplicated().any():
                dup = indexed.index[indexed.index.duplicated()][0]
                raise MetadataError(f"{source}: profile id {dup!r} appears more than once in column {name!r}. "
                                    "Fix: give a table with one row per profile.")
            return indexed
    raise MetadataError(f"{source}: no profile id column (looked for {', '.join(PROFILE_ID_COLUMNS)}). "
                        "Fix: give sig_info/inst_info/siginfo_beta, whose ids match the matrix's column ids.")
