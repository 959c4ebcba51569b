"""The strict HTML build refuses a chapter whose stored outputs are not fit to publish (perturbx.sphinxext)."""

import subprocess
import sys
from pathlib import Path

import nbformat

from .book.test_publishing import executed_notebook

CONFIG = """title: test book
only_build_toc_files: true
execute:
  execute_notebooks: "off"
repository:
  url: https://github.com/perturbx/perturbx
sphinx:
  extra_extensions:
    - perturbx.sphinxext
"""


def build(folder: Path, notebook, config: str = CONFIG) -> subprocess.CompletedProcess:
    (folder / "book").mkdir(exist_ok=True)
    (folder / "_config.yml").write_text(config)
    (folder / "_toc.yml").write_text("format: jb-book\nroot: book/00_only\n")
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell("# Only chapter"))
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, folder / "book" / "00_only.ipynb")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    return subprocess.run([str(jupyter_book), "build", str(folder), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True)


def test_a_clean_chapter_builds(tmp_path):
    result = build(tmp_path, executed_notebook([nbformat.v4.new_output("stream", name="stdout", text="r = 0.9\n")]))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_a_chapter_with_an_error_output_fails_the_build(tmp_path):
    error = nbformat.v4.new_output("error", ename="KeyError", evalue="'dose_um'", traceback=["KeyError: 'dose_um'"])
    result = build(tmp_path, executed_notebook([error]))
    assert result.returncode != 0
    assert "00_only.ipynb: cell 2: error KeyError" in result.stdout + result.stderr


def test_a_chapter_that_did_not_finish_fails_the_build(tmp_path):
    result = build(tmp_path, executed_notebook([], finished=False))
    assert result.returncode != 0
    assert "did not finish" in result.stdout + result.stderr


def with_formula(notebook):
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell("The loss $L = L_{CAE} + L_{DAE}$ and\n\n$$C' = QK^T$$"))
    return notebook


def test_the_book_serves_its_own_mathjax(tmp_path):
    config = CONFIG.replace("sphinx:\n", "sphinx:\n  config:\n    mathjax_path: mathjax/tex-chtml.js\n")
    result = build(tmp_path, with_formula(executed_notebook([])), config)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    page = (tmp_path / "_build" / "html" / "book" / "00_only.html").read_text()
    assert 'src="../_static/mathjax/tex-chtml.js"' in page
    assert (tmp_path / "_build" / "html" / "_static" / "mathjax" / "input" / "tex" / "extensions").is_dir()


def test_a_page_that_loads_mathjax_from_a_cdn_fails_the_build(tmp_path):
    result = build(tmp_path, with_formula(executed_notebook([])))  # Sphinx's default mathjax_path is a CDN
    assert result.returncode != 0
    assert "must load nothing from the network" in result.stdout + result.stderr
    assert "book/00_only.html: https://cdn.jsdelivr.net/npm/mathjax" in result.stdout + result.stderr


def test_the_result_tables_are_published_beside_the_pages(tmp_path):
    (tmp_path / "book" / "results" / "00_only").mkdir(parents=True)
    (tmp_path / "book" / "results" / "00_only" / "table.csv").write_text("model,auc\nx,0.9\n")
    result = build(tmp_path, executed_notebook([]))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (tmp_path / "_build" / "html" / "results" / "00_only" / "table.csv").read_text() == "model,auc\nx,0.9\n"


def test_a_verdict_box_is_filled_from_a_glued_value_computed_later_in_the_chapter(tmp_path):
    """The box comes first in the chapter, the cell that computes its text later (myst-nb glue)."""
    glued = nbformat.v4.new_output(
        "display_data", data={"application/papermill.record/text/markdown": "- **holds**: the claim, r = 0.91"},
        metadata={"scrapbook": {"name": "claims_box", "mime_prefix": "application/papermill.record/"}})
    notebook = executed_notebook([glued])
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(
        "::::{admonition} Verdict\n:class: important\n\n:::{glue:md} claims_box\n:format: myst\n:::\n::::"))
    result = build(tmp_path, notebook)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    page = (tmp_path / "_build" / "html" / "book" / "00_only.html").read_text()
    assert "<strong>holds</strong>: the claim, r = 0.91" in page and "admonition" in page
