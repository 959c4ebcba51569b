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


def build(folder: Path, notebook) -> subprocess.CompletedProcess:
    (folder / "book").mkdir(exist_ok=True)
    (folder / "_config.yml").write_text(CONFIG)
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
