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
    """A chapter following the convention: parameters, start_chapter, ``body``, chapter.finish()."""
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(f"# {name}"),
        nbformat.v4.new_code_cell('profile = "quick"\nseed = 0', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(f"from perturbx import book\nchapter = book.start_chapter({name!r}, profile=profile, "
                                  "seed=seed, device='cpu')"),
        nbformat.v4.new_code_cell(body),
        nbformat.v4.new_code_cell("chapter.finish()"),
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
    outputs = json.dumps(nbformat.read(good, as_version=4).cells[-2].outputs)
    assert "profile is smoke" in outputs
    assert nbformat.read(never, as_version=4).cells[-2].outputs == []


def test_a_run_without_a_profile_uses_the_chapters_own_not_the_previous_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    path = write_chapter(tmp_path, "01_profile.ipynb", "print('profile is', profile)")
    run_chapters([path], profile="smoke")
    run_chapters([path])
    notebook = nbformat.read(path, as_version=4)
    assert "profile is quick" in json.dumps(notebook.cells[-2].outputs)
    assert not any("injected-parameters" in cell.metadata.get("tags", []) for cell in notebook.cells)


def test_unknown_chapter_name(tmp_path):
    write_chapter(tmp_path, "00_intro.ipynb", "")
    with pytest.raises(ValueError, match="no chapter named 99_x"):
        chapter_paths(tmp_path, ["99_x"])


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


# ------------------------------------------------------------------------------------- tables and provenance

def test_chapter_table_writes_csv_under_the_runner_and_shows_text_columns(tmp_path, monkeypatch):
    import pandas as pd

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


def test_chapter_writes_nothing_outside_the_runner(tmp_path, monkeypatch):
    import pandas as pd

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
    for key in ("commit", "device_name", "packages", "data", "tables", "kernel_wall_time_s"):
        assert key in record
    assert record["packages"]["torch"].startswith("2.13.0")


def test_runner_writes_tables_provenance_and_a_runs_log(tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    write_chapter(tmp_path, "01_tables.ipynb", "import pandas as pd\n"
                  "seeds = chapter.seeds('main', smoke=2, quick=3, full=5)\n"
                  "chapter.table('scores', pd.DataFrame({'seed': seeds, 'score': [0.5] * len(seeds)}))")
    write_chapter(tmp_path, "02_broken.ipynb", "def inner():\n    raise KeyError('missing column dose_um')\ninner()")
    results = tmp_path / "results"
    with pytest.raises(ChapterFailed) as failure:
        run_chapters(chapter_paths(tmp_path), profile="smoke", results_dir=results)
    message = str(failure.value)
    assert "02_broken.ipynb failed in cell" in message and "KeyError" in message
    assert "inner()" in message, "the end of the traceback is shown"

    record = json.loads((results / "01_tables" / "provenance.json").read_text())
    assert record["chapter"] == "01_tables" and record["profile"] == "smoke"
    assert record["seeds"] == {"main": [0, 1]} and record["tables"] == ["scores"]
    assert record["wall_time_s"] >= record["kernel_wall_time_s"] > 0
    assert pd.read_csv(results / "01_tables" / "scores.csv")["seed"].tolist() == [0, 1]
    runs = pd.read_csv(results / "runs.csv")
    assert runs[["chapter", "status", "profile"]].values.tolist() == [["01_tables", "ok", "smoke"],
                                                                    ["02_broken", "failed", "smoke"]]


def test_runner_refuses_a_chapter_that_ran_but_printed_a_warning(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    write_chapter(tmp_path, "01_noisy.ipynb", "import sys\nprint('UserWarning: ill-conditioned', file=sys.stderr)")
    with pytest.raises(ChapterFailed, match="not fit to publish(.|\n)*stderr: UserWarning: ill-conditioned"):
        run_chapters(chapter_paths(tmp_path), profile="smoke")
    assert "failed" in (tmp_path / "results" / "runs.csv").read_text()


def executed_notebook(*outputs_per_cell, finished: bool = True):
    """A notebook whose code cells were executed (counts set) with the given outputs, ending in finish()."""
    cells = []
    for number, outputs in enumerate(outputs_per_cell, 1):
        cell = nbformat.v4.new_code_cell("x = 1", execution_count=number)
        cell.outputs = list(outputs)
        cells.append(cell)
    last = nbformat.v4.new_code_cell("chapter.finish()", execution_count=len(cells) + 1)
    if finished:
        last.outputs = [nbformat.v4.new_output("stream", name="stdout", text="Provenance: x | commit abc\n")]
    return nbformat.v4.new_notebook(cells=[*cells, last])


def stream(name, text):
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_executed_problems_accepts_results_and_progress_bars():
    from perturbx.book import executed_problems

    notebook = executed_notebook([stream("stdout", "r = 0.91\n"),
                                  stream("stderr", "folds: 100%|██████████| 5/5 [05:52<00:00, 70.55s/it]\n"
                                                   "splits: 3it [00:01,  2.00it/s]\n")])
    assert executed_problems(notebook) == []


@pytest.mark.parametrize("outputs, finished, expected", [
    ([nbformat.v4.new_output("error", ename="ValueError", evalue="bad dose unit", traceback=[])], True,
     "cell 1: error ValueError: bad dose unit"),
    ([stream("stdout", "Traceback (most recent call last):\n  File x\n")], True, "cell 1: a traceback on stdout"),
    ([stream("stderr", "ConvergenceWarning: lbfgs failed to converge\n")], True,
     "cell 1: stderr: ConvergenceWarning: lbfgs failed to converge"),
    ([], False, "did not finish"),
])
def test_executed_problems_names_what_is_wrong(outputs, finished, expected):
    from perturbx.book import executed_problems

    problems = executed_problems(executed_notebook(outputs, finished=finished))
    assert len(problems) == 1 and expected in problems[0]


def test_executed_problems_finds_cells_that_never_ran():
    from perturbx.book import executed_problems

    notebook = executed_notebook([])
    notebook.cells.insert(1, nbformat.v4.new_code_cell("y = 2"))
    assert executed_problems(notebook) == ["cell 2: never executed"]


def test_tidy_streams_renders_nested_progress_bars_as_a_terminal_shows_them():
    import io
    import re

    from tqdm.std import tqdm

    from perturbx.book import tidy_streams

    terminal = io.StringIO()
    for _ in tqdm(range(2), desc="splits", file=terminal, mininterval=0):
        for _ in tqdm(range(3), desc="epochs", file=terminal, leave=False, mininterval=0):
            pass
    text = terminal.getvalue()
    assert "\x1b[A" in text
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [stream("stderr", piece) for piece in re.split(r"(?=\r)", text) if piece]  # one per redraw
    tidy_streams(nbformat.v4.new_notebook(cells=[cell]))
    (output,) = cell.outputs
    assert output.text.startswith("splits: 100%|") and output.text.count("\n") == 1
