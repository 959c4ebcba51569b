import numpy as np
import pandas as pd
import pytest

from perturbx.datasets.cmap import (
    MAX_MISSING_LANDMARKS,
    N_LANDMARKS,
    GeneMatchError,
    MatrixFileError,
    MetadataError,
    harmonise,
    landmark_genes,
    read_gctx,
    read_matrix,
    read_table,
)
from perturbx.datasets.units import UnitError, dose_to_um, time_to_h

from .cmap_files import write_gct, write_gctx


@pytest.fixture
def gene_space(mirror_env):
    """978 landmark + 22 other genes in shuffled order, as (entrez ids, symbols, probe ids)."""
    genes = landmark_genes()
    entrez = np.concatenate([genes["gene_id"].to_numpy(), 80_000_000 + np.arange(22)])
    symbols = np.concatenate([genes["gene_symbol"].to_numpy(), [f"OTHER{i}" for i in range(22)]])
    order = np.random.default_rng(0).permutation(len(entrez))
    return entrez[order], symbols[order], np.array([f"{i}_at" for i in range(len(entrez))])


def expected_values(entrez: np.ndarray, n_cols: int) -> np.ndarray:
    """A matrix whose value tells the gene and the column: gene_id / 1e5 + column."""
    return (entrez[:, None] / 1e5 + np.arange(n_cols)[None, :]).astype(np.float32)


def landmark_truth(n_cols: int) -> np.ndarray:
    return expected_values(landmark_genes()["gene_id"].to_numpy(), n_cols).T


COLS = pd.DataFrame({
    "pert_id": ["DMSO", "BRD-K00000001", "BRD-K00000001"], "pert_iname": ["DMSO", "x", "x"],
    "pert_type": ["ctl_vehicle", "trt_cp", "trt_cp"], "cell_id": ["A375"] * 3,
    "pert_dose": [-666, 10, 500], "pert_dose_unit": ["-666", "uM", "nM"],
    "pert_time": [24, 24, 6], "pert_time_unit": ["h", "h", "h"],
}, index=pd.Index(["P1:A01", "P1:A02", "P1:A03"], name="cid"))


def test_gct_with_probe_ids_is_reordered_to_landmarks(gene_space, tmp_path):
    entrez, symbols, probes = gene_space
    rows = pd.DataFrame({"pr_gene_id": entrez, "pr_gene_symbol": symbols}, index=pd.Index(probes, name="rid"))
    path = write_gct(tmp_path / "a.gct", expected_values(entrez, 3), rows, COLS)
    matrix = read_matrix(path)
    assert matrix.values.shape == (3, 978)
    np.testing.assert_allclose(matrix.values, landmark_truth(3), atol=1e-5)
    tidy, problems = harmonise(matrix.columns, "a.gct")
    assert tidy["dose_um"].tolist()[1:] == [10.0, 0.5] and np.isnan(tidy["dose_um"].iloc[0])
    assert tidy["plate"].tolist() == ["P1"] * 3 and problems.empty


def test_latin1_gct_is_read(gene_space, tmp_path):
    entrez, symbols, probes = gene_space
    rows = pd.DataFrame({"pr_gene_id": entrez}, index=pd.Index(probes, name="rid"))
    cols = COLS.drop(columns=["pert_dose", "pert_dose_unit"]).assign(pert_idose=["-666", "10 µM", "500 nM"])
    path = write_gct(tmp_path / "latin.gct", expected_values(entrez, 3), rows, cols, encoding="latin-1")
    assert b"\xb5" in path.read_bytes()
    tidy, _ = harmonise(read_matrix(path).columns, "latin.gct")
    assert tidy["dose_um"].tolist()[1:] == [10.0, 0.5]


def test_gctx_with_embedded_latin1_metadata(gene_space, tmp_path):
    entrez, symbols, probes = gene_space
    path = write_gctx(tmp_path / "e.gctx", expected_values(entrez, 3), probes, COLS.index,
                      row_meta={"pr_gene_id": [str(e).encode() for e in entrez]},
                      col_meta={"pert_id": list(COLS["pert_id"]), "pert_type": list(COLS["pert_type"]),
                                "cell_id": list(COLS["cell_id"]),
                                "pert_idose": [b"-666", b"10 \xb5M", b"3 \xb5M"], "pert_itime": ["24 h"] * 3})
    matrix = read_matrix(path)
    np.testing.assert_allclose(matrix.values, landmark_truth(3), atol=1e-5)
    tidy, _ = harmonise(matrix.columns, "e.gctx")
    assert tidy["dose_um"].tolist()[1:] == [10.0, 3.0] and tidy["time_h"].tolist() == [24.0] * 3


@pytest.mark.parametrize("row_kind", ["entrez", "symbol"])
def test_ids_only_gctx_matched_by_row_ids(gene_space, tmp_path, row_kind):
    entrez, symbols, _ = gene_space
    ids = entrez if row_kind == "entrez" else symbols
    path = write_gctx(tmp_path / "ids.gctx", expected_values(entrez, 5), ids, [f"S{i}" for i in range(5)])
    np.testing.assert_allclose(read_matrix(path).values, landmark_truth(5), atol=1e-5)


def test_ids_only_gctx_with_a_gene_table(gene_space, tmp_path):
    entrez, _, probes = gene_space
    path = write_gctx(tmp_path / "p.gctx", expected_values(entrez, 2), probes, ["S0", "S1"])
    with pytest.raises(GeneMatchError, match="Fix: give a gene table"):
        read_matrix(path)
    genes = pd.DataFrame({"gene_id": entrez}, index=pd.Index(probes))
    np.testing.assert_allclose(read_matrix(path, genes=genes).values, landmark_truth(2), atol=1e-5)


@pytest.mark.parametrize("reader", ["gctx", "gct"])
def test_a_few_missing_landmarks_are_nan_columns_flagged_as_not_measured(gene_space, tmp_path, reader):
    entrez, _, _ = gene_space
    absent = landmark_genes()["gene_id"].iloc[[5, 700]].to_numpy()
    keep = ~np.isin(entrez, absent)
    values, path = expected_values(entrez[keep], 2), tmp_path / f"m.{reader}"
    if reader == "gctx":
        write_gctx(path, values, entrez[keep], ["S0", "S1"])
    else:
        write_gct(path, values, pd.DataFrame(index=pd.Index(entrez[keep].astype(str))),
                  pd.DataFrame(index=pd.Index(["S0", "S1"])))
    matrix = read_matrix(path)
    assert np.flatnonzero(~matrix.measured).tolist() == [5, 700]
    assert np.isnan(matrix.values[:, [5, 700]]).all()  # never filled in
    np.testing.assert_allclose(matrix.values[:, matrix.measured], landmark_truth(2)[:, matrix.measured], atol=1e-5)


def test_more_missing_landmarks_than_allowed_are_an_error(gene_space, tmp_path):
    entrez, _, _ = gene_space
    absent = landmark_genes()["gene_id"].iloc[: MAX_MISSING_LANDMARKS + 1].to_numpy()
    keep = ~np.isin(entrez, absent)
    path = write_gctx(tmp_path / "m.gctx", expected_values(entrez[keep], 2), entrez[keep], ["S0", "S1"])
    found = N_LANDMARKS - MAX_MISSING_LANDMARKS - 1
    with pytest.raises(GeneMatchError, match=rf"found {found}, missing e\.g\. {absent[0]}"):
        read_matrix(path)


def test_column_subset_in_any_order(gene_space, tmp_path):
    entrez, _, _ = gene_space
    path = write_gctx(tmp_path / "s.gctx", expected_values(entrez, 6), entrez, [f"S{i}" for i in range(6)])
    matrix = read_gctx(path, columns=np.array([4, 1, 5]))
    np.testing.assert_allclose(matrix.values, landmark_truth(6)[[4, 1, 5]], atol=1e-5)
    assert list(matrix.columns.index) == ["S4", "S1", "S5"]


def test_agrees_with_cmappy_on_an_ascii_gctx(gene_space, tmp_path):
    from cmapPy.pandasGEXpress.parse import parse

    entrez, symbols, probes = gene_space
    values = np.random.default_rng(1).normal(size=(len(entrez), 4)).astype(np.float32)
    path = write_gctx(tmp_path / "c.gctx", values, probes, [f"S{i}" for i in range(4)],
                      row_meta={"pr_gene_id": [str(e) for e in entrez]}, col_meta={"pert_type": ["trt_cp"] * 4})
    reference = parse(str(path))
    by_entrez = reference.data_df.set_index(reference.row_metadata_df["pr_gene_id"].astype(int).to_numpy())
    expected = by_entrez.loc[landmark_genes()["gene_id"].to_numpy()].T.to_numpy()
    np.testing.assert_array_equal(read_matrix(path).values, expected)


def test_not_a_cmap_file(tmp_path):
    (tmp_path / "x.gct").write_text("hello\n")
    with pytest.raises(MetadataError, match="neither GCTX"):
        read_matrix(tmp_path / "x.gct")


@pytest.mark.parametrize("value, unit, expected", [
    (10, "uM", 10.0), (10, "um", 10.0), (500, "nM", 0.5), (2, "mM", 2000.0), ("10 µM", None, 10.0),
    ("10 \u03bcM", None, 10.0), (b"10 \xb5M", None, 10.0), ("1.11 um", None, 1.11), ("500 nM", None, 0.5),
    ("-666", None, None), (-666, "uM", None), (float("nan"), None, None),
])
def test_dose_units(value, unit, expected):
    result = dose_to_um(value, unit)
    assert (np.isnan(result) if expected is None else result == pytest.approx(expected))


@pytest.mark.parametrize("value, unit, expected", [(24, "h", 24.0), ("6 h", None, 6.0), (30, "min", 0.5),
                                                   ("2 d", None, 48.0), ("96 hrs", None, 96.0)])
def test_time_units(value, unit, expected):
    assert time_to_h(value, unit) == pytest.approx(expected)


@pytest.mark.parametrize("call, message", [
    (lambda: dose_to_um(10, "ug/ml"), "unknown dose unit 'ug/ml'"),
    (lambda: dose_to_um("10 µg/ml"), "unknown dose unit 'µg/ml'"),
    (lambda: dose_to_um("ten uM"), "cannot read dose"),
    (lambda: dose_to_um("10"), "has no unit"),
    (lambda: time_to_h("6 h & 4 h"), "not a single time"),
    (lambda: time_to_h(6, "fortnights"), "unknown time unit"),
])
def test_bad_units_are_reported_not_guessed(call, message):
    with pytest.raises(UnitError, match=message):
        call()


def test_unreadable_units_are_listed_by_harmonise():
    cols = COLS.assign(pert_dose_unit=["-666", "ug/ml", "nM"])
    tidy, problems = harmonise(cols, "t.gctx")
    assert problems["profile_id"].tolist() == ["P1:A02"]
    assert "ug/ml" in problems["reason"].iloc[0] and np.isnan(tidy.loc["P1:A02", "dose_um"])


def test_missing_metadata_column_names_the_file():
    with pytest.raises(MetadataError, match="siginfo.txt: no cell_id column"):
        harmonise(COLS.drop(columns="cell_id"), "siginfo.txt")
    with pytest.raises(MetadataError, match="no dose columns"):
        harmonise(COLS.drop(columns=["pert_dose", "pert_dose_unit"]), "siginfo.txt")


def test_read_table_decodes_latin1_and_missing(tmp_path):
    path = tmp_path / "sig_info.txt"
    path.write_bytes("sig_id\tpert_idose\tpert_dose\nA\t10 µM\t-666\n".encode("latin-1"))
    table = read_table(path)
    assert table.loc[0, "pert_idose"] == "10 µM" and pd.isna(table.loc[0, "pert_dose"])


def _one_line_naming(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "Fix: " in message and "\n" not in message, message
    return message


def test_truncated_or_damaged_gctx_is_one_clear_error(gene_space, tmp_path):
    entrez, _, _ = gene_space
    good = write_gctx(tmp_path / "good.gctx", expected_values(entrez, 3), entrez, ["S0", "S1", "S2"])
    truncated = tmp_path / "truncated.gctx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    damaged = tmp_path / "damaged.gctx"
    damaged.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    for path in (truncated, damaged):
        with pytest.raises(MatrixFileError) as error:
            read_matrix(path)
        assert "HDF5 cannot read the file" in _one_line_naming(error, path)


def _gct_lines(gene_space, tmp_path) -> list[str]:
    entrez, symbols, probes = gene_space
    rows = pd.DataFrame({"pr_gene_id": entrez}, index=pd.Index(probes, name="rid"))
    return write_gct(tmp_path / "good.gct", expected_values(entrez, 3), rows, COLS).read_text().splitlines()


@pytest.mark.parametrize("damage, expected", [
    ("dimension not a number", "dimension line '1000\\tthree\\t1\\t8' is not 4 whole numbers"),
    ("more columns declared", "header row has 5 fields, but the dimension line (1000 rows x 4 columns, "
                              "1 row-metadata fields) needs 6"),
    ("header field missing", "header row has 4 fields, but the dimension line (1000 rows x 3 columns, "
                             "1 row-metadata fields) needs 5"),
    ("more rows declared", "the GCT body does not match its dimension line"),
    ("short body row", "the GCT body does not match its dimension line"),
])
def test_gct_whose_dimensions_or_header_do_not_match_its_body(gene_space, tmp_path, capsys, damage, expected):
    lines = _gct_lines(gene_space, tmp_path)
    dims = lines[1].split("\t")
    if damage == "dimension not a number":
        lines[1] = "\t".join([dims[0], "three", *dims[2:]])
    elif damage == "more columns declared":
        lines[1] = "\t".join([dims[0], "4", *dims[2:]])
    elif damage == "header field missing":
        lines[2] = "\t".join(lines[2].split("\t")[:-1])
    elif damage == "more rows declared":
        lines[1] = "\t".join(["1010", *dims[1:]])
    else:
        lines[-1] = "\t".join(lines[-1].split("\t")[:-1])
    path = tmp_path / "damaged.gct"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MatrixFileError) as error:
        read_matrix(path)
    assert expected in _one_line_naming(error, path)
    assert capsys.readouterr().err == ""  # cmapPy's own log lines are not printed beside the error


def test_duplicate_profile_ids_in_gct_and_gctx_are_one_clear_error(gene_space, tmp_path):
    entrez, _, probes = gene_space
    ids = ["P1:A01", "P1:A02", "P1:A02"]
    gctx = write_gctx(tmp_path / "dup.gctx", expected_values(entrez, 3), entrez, ids)
    rows = pd.DataFrame({"pr_gene_id": entrez}, index=pd.Index(probes, name="rid"))
    gct = write_gct(tmp_path / "dup.gct", expected_values(entrez, 3), rows, COLS.set_axis(pd.Index(ids)))
    for path in (gctx, gct):
        with pytest.raises(MatrixFileError) as error:
            read_matrix(path)
        assert "1 profile (column) id(s) appear more than once: 'P1:A02'" in _one_line_naming(error, path)


@pytest.mark.parametrize("content, expected", [
    (b"", "empty file, not a table"),
    (b"\n\n", "empty file, not a table"),
    (b"\x89HDF\r\n\x1a\n\x00\x00\x00binary", "a binary file, not a text table"),
    (b"a\tb\n1\t2\n1\t2\t3\t4\n", "not a tab-separated table"),
])
def test_read_table_rejects_what_is_not_a_table(tmp_path, content, expected):
    path = tmp_path / "siginfo_beta.txt"
    path.write_bytes(content)
    with pytest.raises(MetadataError) as error:
        read_table(path)
    assert expected in _one_line_naming(error, path)
