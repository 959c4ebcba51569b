"""The kernel side of the chapter convention (perturbx.book.chapter) and the chapters that follow it."""

import subprocess
import sys

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch

from perturbx import book
from perturbx.book import resolve_profile, start_chapter
from perturbx.book.publishing import typed_results
from perturbx.book.runner import chapter_paths

from ..conftest import REPO_ROOT

MAX_CELL_LINES = 15


def test_environment_overrides_the_profile(monkeypatch):
    monkeypatch.setenv("PERTURBX_PROFILE", "full")
    assert resolve_profile("quick") == "full"
    monkeypatch.delenv("PERTURBX_PROFILE")
    assert resolve_profile("quick") == "quick"


@pytest.mark.parametrize("env, argument, source", [("huge", "quick", r"\$PERTURBX_PROFILE"),
                                                    (None, "fast", "`profile` parameter")])
def test_unknown_profile_is_rejected(monkeypatch, env, argument, source):
    if env:
        monkeypatch.setenv("PERTURBX_PROFILE", env)
    else:
        monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    with pytest.raises(ValueError, match=source):
        resolve_profile(argument)


def test_chapter_picks_by_profile_and_reports_provenance(monkeypatch, capsys):
    monkeypatch.setenv("PERTURBX_PROFILE", "smoke")
    chapter = start_chapter("Test chapter", profile="full", seed=7, device="cpu")
    assert chapter.pick(smoke=1, quick=10, full=100) == 1
    chapter.finish()
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("Provenance: Test chapter | commit ")
    for part in ("device CPU", "profile smoke", "seed 7", "wall time"):
        assert part in line


def test_start_chapter_seeds_every_generator(monkeypatch):
    start_chapter("a", seed=3, device="cpu")
    first = (np.random.rand(), torch.rand(1).item())
    start_chapter("b", seed=3, device="cpu")
    assert (np.random.rand(), torch.rand(1).item()) == first


def test_a_chapter_shows_table_floats_without_powers_of_ten():
    with pd.option_context("display.float_format", None):
        start_chapter("a", seed=0, device="cpu")
        shown = pd.DataFrame({"r": [0.1234567, 9.576e-4, -0.01068, 182.0, 24325888.0, np.nan]}).to_html()
    for text in ("0.1235", "0.0009576", "-0.01068", ">182<", "24,325,888", "NaN"):
        assert text in shown, text
    assert "e-0" not in shown


def test_importing_the_chapter_api_does_not_import_the_runner():
    """Chapter kernels import perturbx.book: papermill and nbformat must stay out of them."""
    code = ("import sys, perturbx.book\n"
            "from perturbx import book\n"
            "assert callable(book.start_chapter) and book.RESULTS_DIR.name == 'results'\n"
            "print(sorted(m for m in ('papermill', 'nbformat', 'perturbx.book.runner') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("path", chapter_paths(), ids=lambda p: p.stem)
def test_every_chapter_follows_the_convention(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"
            and "injected-parameters" not in cell.metadata.get("tags", [])]  # papermill's, after a run with --profile
    parameters = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1 and parameters[0] is code[0], "the first code cell is the only `parameters` cell"
    assert "profile =" in parameters[0].source and "seed =" in parameters[0].source
    assert "start_chapter(" in code[1].source
    assert code[-1].source.strip().endswith("chapter.finish()")
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")


@pytest.mark.parametrize("path", chapter_paths(), ids=lambda p: p.stem)
def test_no_code_cell_is_longer_than_15_lines(path):
    """A chapter reads as prose around short steps; longer code belongs in the package, where it is tested."""
    notebook = nbformat.read(path, as_version=4)
    long_cells = [f"cell {number}: {len(cell.source.splitlines())} lines"
                  for number, cell in enumerate(notebook.cells, 1)
                  if cell.cell_type == "code" and len(cell.source.splitlines()) > MAX_CELL_LINES]
    assert long_cells == [], f"{path.name}: code cells over {MAX_CELL_LINES} lines: {', '.join(long_cells)}"


# The chapters that test a paper call its study and the book's API, nothing below them; the data chapters (00, 01)
# are about the data layer itself and show it.
MODEL_CHAPTERS = ("02_drp", "03_gnn", "04_diffusion")
CHAPTER_SURFACE = ("perturbx.book", "perturbx.plots", "perturbx.studies")


def perturbx_imports(path) -> set[str]:
    """Every perturbx module a notebook's code cells import (``from perturbx import x`` counts as perturbx.x)."""
    import ast

    found = set()
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("perturbx"):
                found |= ({f"perturbx.{alias.name}" for alias in node.names} if node.module == "perturbx"
                          else {node.module})
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name.startswith("perturbx")}
    return found


@pytest.mark.parametrize("chapter", MODEL_CHAPTERS)
def test_a_model_chapter_imports_only_the_book_the_plots_and_studies(chapter):
    imported = perturbx_imports(REPO_ROOT / "book" / f"{chapter}.ipynb")
    below = sorted(m for m in imported if not m.startswith(CHAPTER_SURFACE))
    assert below == [], f"{chapter} imports {below}: call them through its study (perturbx.studies)"


@pytest.mark.parametrize("path", chapter_paths(), ids=lambda p: p.stem)
def test_no_chapter_types_a_result_into_its_prose(path):
    """Numbers in a chapter's text are quoted from computed values (glue), so text and tables cannot disagree."""
    typed = typed_results(nbformat.read(path, as_version=4))
    assert typed == [], f"{path.name}: numbers typed into prose, glue them from the tables instead: {typed}"


def test_every_chapter_is_in_the_table_of_contents():
    toc = (REPO_ROOT / "_toc.yml").read_text()
    for path in chapter_paths():
        assert f"book/{path.stem}" in toc, path.name
    assert book.BOOK_DIR == REPO_ROOT / "book"


# ------------------------------------------------------------------------------------- tables and provenance

def test_chapter_table_writes_csv_under_the_runner_and_shows_text_columns(tmp_path, monkeypatch):
    monkeypatch.setenv(book.RESULTS_ENV, str(tmp_path / "02_x"))
    chapter = start_chapter("x", seed=0, device="cpu")
    frame = pd.DataFrame({"auc": ["0.900 ± 0.010"], "auc_mean": [0.9], "auc_sd": [0.01], "loss_mean": [1.5]},
                         index=pd.Index(["ridge"], name="model"))
    shown = chapter.table("cv_results", frame)
    assert list(shown.columns) == ["auc", "loss_mean"]  # a twin without its text column stays
    written = pd.read_csv(tmp_path / "02_x" / "cv_results.csv")
    assert list(written.columns) == ["model", "auc", "auc_mean", "auc_sd", "loss_mean"]
    assert written.loc[0, "auc_mean"] == 0.9
    with pytest.raises(ValueError, match="registered twice"):
        chapter.table("cv_results", frame)
    with pytest.raises(ValueError, match="lower-case letters"):
        chapter.table("CV results", frame)


def test_tables_and_figures_show_labels_of_the_model_ids_the_studies_use(tmp_path, monkeypatch):
    from perturbx.studies import drug_response, graph_model, signatures

    monkeypatch.setenv(book.RESULTS_ENV, str(tmp_path / "03_x"))
    chapter = start_chapter("x", seed=0, device="cpu")
    chapter.models(graph_model.MODELS, signatures.MODELS)  # "ridge" is in both, with one label
    runs = pd.DataFrame({"model": ["graph_model", "ridge"], "baseline": ["ridge", "oracle row"], "r": [0.5, 0.4]})
    assert chapter.labelled(runs)["model"].tolist() == ["graph model", "ridge"]
    assert chapter.labelled(runs)["baseline"].tolist() == ["ridge", "oracle row"], "a non-model row is kept"
    assert runs["model"].tolist() == ["graph_model", "ridge"], "labelled returns a copy"
    by_index = chapter.labelled(runs.set_index(["model", "baseline"]))
    assert by_index.index.get_level_values("model").tolist() == ["graph model", "ridge"]
    chapter.table("runs", runs)
    assert pd.read_csv(tmp_path / "03_x" / "runs.csv")["model"].tolist() == ["graph model", "ridge"]
    chapter.finish()
    written = pd.read_csv(tmp_path / "03_x" / "models.csv", index_col="id")
    assert written.loc["graph_model", "label"] == "graph model" and written.loc["gat_regressor", "role"] == "learned"
    assert written.index.is_unique
    clash = drug_response.MODELS.table().assign(label="another label")
    with pytest.raises(ValueError, match="different labels"):
        chapter.models(type("Registry", (), {"table": lambda self: clash})())


def test_chapter_claims_registers_the_table_the_box_and_prints_the_verdicts(tmp_path, monkeypatch, capsys):
    from perturbx.evaluation.claims import Claim, Evidence

    monkeypatch.setenv(book.RESULTS_ENV, str(tmp_path / "02_x"))
    chapter = start_chapter("x", seed=0, device="cpu")
    shown = chapter.claims([Claim("a_beats_b", "P", "A beats B", "toy", (Evidence("A beats B (+0.1)", True),))])
    assert shown.loc[0, "verdict"] == "holds" and "claims" in chapter.tables
    assert pd.read_csv(tmp_path / "02_x" / "claims.csv")["claim_id"].tolist() == ["a_beats_b"]
    assert "[HOLDS] A beats B\n    A beats B (+0.1)" in capsys.readouterr().out


def test_chapter_writes_nothing_outside_the_runner(tmp_path, monkeypatch):
    monkeypatch.delenv(book.RESULTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    chapter = start_chapter("x", seed=0, device="cpu")
    chapter.table("t", pd.DataFrame({"a": [1]}))
    chapter.finish()
    assert chapter.results_dir is None and list(tmp_path.iterdir()) == []


def test_seeds_follow_the_profile_and_are_recorded(monkeypatch):
    monkeypatch.setenv("PERTURBX_PROFILE", "full")
    chapter = start_chapter("x", seed=3, device="cpu")
    assert chapter.seeds("cross-validation", smoke=1, quick=2, full=4) == [3, 4, 5, 6]
    record = chapter.record()
    assert record["seeds"] == {"cross-validation": [3, 4, 5, 6]} and record["profile"] == "full"
    for key in ("commit", "device_name", "packages", "data", "tables", "kernel_wall_time_s", "peak_memory_mb"):
        assert key in record
    assert record["packages"]["torch"].startswith("2.13.0")


def test_the_recorded_commit_is_the_one_checked_out_when_the_chapter_started(monkeypatch):
    from perturbx.book import chapter as chapter_module

    monkeypatch.setattr(chapter_module, "git_commit", lambda: "aaaa")
    chapter = start_chapter("x", seed=0, device="cpu")
    monkeypatch.setattr(chapter_module, "git_commit", lambda: "bbbb+dirty")  # committed or edited while it ran
    assert chapter.record()["commit"] == "aaaa"


def test_a_tables_download_link_points_at_its_csv_in_the_rendered_book():
    from perturbx.book.chapter import TABLE_LINK_CLASS, table_link_html

    html = table_link_html("02_drp", "ccle_paper_protocol", (7, 12))
    assert f'class="{TABLE_LINK_CLASS}"' in html and 'href="../results/02_drp/ccle_paper_protocol.csv"' in html
    assert "7 rows x 12 columns" in html


@pytest.mark.parametrize("seed", ["x", 1.5, -1, True])
def test_a_seed_that_is_not_a_non_negative_integer_is_refused(seed):
    with pytest.raises(ValueError, match=f"seed {seed!r} is not a non-negative integer"):
        start_chapter("t", profile="smoke", seed=seed, device="cpu")
