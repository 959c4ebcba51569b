import json
from pathlib import Path

import nbformat
import pytest

from perturbx import book
from perturbx.book import ChapterFailed, chapter_paths, resolve_profile, run_chapters, start_chapter

from .conftest import REPO_ROOT


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
    import numpy as np
    import torch

    start_chapter("a", seed=3, device="cpu")
    first = (np.random.rand(), torch.rand(1).item())
    start_chapter("b", seed=3, device="cpu")
    assert (np.random.rand(), torch.rand(1).item()) == first


def write_chapter(folder: Path, name: str, body: str) -> Path:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile = "quick"\nseed = 0', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / name
    nbformat.write(notebook, path)
    return path


def test_run_chapters_injects_profile_writes_outputs_and_stops_at_failure(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    good = write_chapter(tmp_path, "01_good.ipynb", "print('profile is', profile)")
    bad = write_chapter(tmp_path, "02_bad.ipynb", "raise RuntimeError('chapter broke')")
    never = write_chapter(tmp_path, "03_never.ipynb", "print('ran')")
    assert chapter_paths(tmp_path) == [good, bad, never]
    with pytest.raises(ChapterFailed, match="02_bad.ipynb.*RuntimeError: chapter broke"):
        run_chapters(chapter_paths(tmp_path), profile="smoke")
    outputs = json.dumps(nbformat.read(good, as_version=4).cells[-1].outputs)
    assert "profile is smoke" in outputs
    assert nbformat.read(never, as_version=4).cells[-1].outputs == []


def test_unknown_chapter_name(tmp_path):
    write_chapter(tmp_path, "00_intro.ipynb", "")
    with pytest.raises(ValueError, match="no chapter named 99_x"):
        chapter_paths(tmp_path, ["99_x"])


@pytest.mark.parametrize("path", chapter_paths(), ids=lambda p: p.stem)
def test_every_chapter_follows_the_convention(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    parameters = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1 and parameters[0] is code[0], "the first code cell is the only `parameters` cell"
    assert "profile =" in parameters[0].source and "seed =" in parameters[0].source
    assert "start_chapter(" in code[1].source
    assert code[-1].source.strip().endswith("chapter.finish()")
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")


def test_every_chapter_is_in_the_table_of_contents():
    toc = (REPO_ROOT / "_toc.yml").read_text()
    for path in chapter_paths():
        assert f"book/{path.stem}" in toc, path.name
    assert book.BOOK_DIR == REPO_ROOT / "book"


def test_tidy_streams_keeps_the_last_redraw_of_each_bar():
    from perturbx.book import tidy_streams

    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="\rfolds:   0%| 0/2"),
        nbformat.v4.new_output("stream", name="stderr", text="\rfolds:  50%| 1/2"),
        nbformat.v4.new_output("stream", name="stderr", text="\rfolds: 100%| 2/2\n"),
        nbformat.v4.new_output("stream", name="stderr", text="\repochs: 50%|\r          \r"),  # erased bar
        nbformat.v4.new_output("stream", name="stdout", text="result line\n"),
        nbformat.v4.new_output("stream", name="stderr", text="\r                  \r"),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    removed = tidy_streams(notebook)
    assert [(o.name, o.text) for o in cell.outputs] == [("stderr", "folds: 100%| 2/2\n"), ("stdout", "result line\n")]
    assert removed == 4
