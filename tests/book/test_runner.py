"""Executing chapters with papermill, their results and the runs log (perturbx.book.runner)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from perturbx import book
from perturbx.book import publishing, runner
from perturbx.book.runner import ChapterFailed, chapter_paths, run_chapters


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


def test_moved_names_are_still_reachable_from_the_package():
    """Older callers (benchmarks, the rendered-book test) use perturbx.book.<name>; it forwards to the new modules."""
    assert book.run_chapters is runner.run_chapters and book.time_chapter is runner.time_chapter
    assert book.chapter_paths is runner.chapter_paths and book.ChapterFailed is runner.ChapterFailed
    assert book.executed_problems is publishing.executed_problems and book.tidy_streams is publishing.tidy_streams
    with pytest.raises(AttributeError, match="no_such_name"):
        book.no_such_name  # noqa: B018


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
    # papermill records its input; a notebook given as input must not be stored inside the output (it nested a
    # copy of the whole chapter, outputs included, on every run)
    assert notebook.metadata["papermill"]["input_path"] == str(path)


def test_unknown_chapter_name(tmp_path):
    write_chapter(tmp_path, "00_intro.ipynb", "")
    with pytest.raises(ValueError, match="no chapter named 99_x"):
        chapter_paths(tmp_path, ["99_x"])


def test_unknown_profile_is_refused_before_any_chapter_runs(tmp_path):
    path = write_chapter(tmp_path, "01_x.ipynb", "")
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        run_chapters([path], profile="huge")
    assert not (tmp_path / "results").exists()


def test_runner_writes_tables_provenance_and_a_runs_log(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    write_chapter(tmp_path, "01_tables.ipynb", "import time\nimport pandas as pd\n"
                  "time.sleep(0.2)  # a measurable kernel wall time (pandas is already imported by start_chapter)\n"
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
    stored = json.dumps(nbformat.read(tmp_path / "01_tables.ipynb", as_version=4).cells[-2].outputs)
    assert 'href=\\"../results/01_tables/scores.csv\\"' in stored, "the table's download link is shown"
    assert record["peak_memory_mb"] > 0
    runs = pd.read_csv(results / "runs.csv")
    assert runs[["chapter", "status", "profile"]].values.tolist() == [["01_tables", "ok", "smoke"],
                                                                    ["02_broken", "failed", "smoke"]]


def test_runner_refuses_a_chapter_that_ran_but_printed_a_warning(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    write_chapter(tmp_path, "01_noisy.ipynb", "import sys\nprint('UserWarning: ill-conditioned', file=sys.stderr)")
    with pytest.raises(ChapterFailed, match="not fit to publish(.|\n)*stderr: UserWarning: ill-conditioned"):
        run_chapters(chapter_paths(tmp_path), profile="smoke")
    assert "failed" in (tmp_path / "results" / "runs.csv").read_text()


def test_a_run_hides_the_injected_parameters_and_stores_no_progress_bar(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    body = "from tqdm import tqdm\nfor _ in tqdm(range(3), desc='folds'):\n    pass\nprint('done')"
    path = write_chapter(tmp_path, "01_bars.ipynb", body)
    run_chapters([path], profile="smoke")
    notebook = nbformat.read(path, as_version=4)
    injected = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]
    stored = json.dumps(notebook.cells[-2].outputs)
    assert "done" in stored and "folds" not in stored


def test_tidy_chapters_cleans_a_stored_chapter_without_running_it(tmp_path):
    path = write_chapter(tmp_path, "01_stored.ipynb", "x = 1")
    notebook = nbformat.read(path, as_version=4)
    for number, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        cell.execution_count = number + 1
    notebook.cells[3].outputs = [nbformat.v4.new_output("stream", name="stderr", text="folds: 100%|█| 5/5 [00:01]\n")]
    notebook.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="Provenance: x\n")]
    nbformat.write(notebook, path)
    assert runner.tidy_chapters([path]) == {"01_stored": []}
    assert nbformat.read(path, as_version=4).cells[3].outputs == []


def test_the_run_box_is_filled_with_what_the_run_measured(tmp_path, monkeypatch):
    """A chapter glues its run box when it starts (from the previous run); the runner rewrites it after the run
    with this run's wall time, peak memory and data files."""
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    body = ("from perturbx.book import reproduction\n"
            "chapter.glue_markdown('run_box', reproduction.run_box_for('01_boxed'))")
    path = write_chapter(tmp_path, "01_boxed.ipynb", body)
    run_chapters([path], profile="smoke")
    outputs = [o for cell in nbformat.read(path, as_version=4).cells for o in cell.get("outputs", [])]
    glued = [o["data"]["application/papermill.record/text/markdown"] for o in outputs
             if o.get("metadata", {}).get("scrapbook", {}).get("name") == "run_box"]
    assert len(glued) == 1
    assert not [o for o in outputs if o["output_type"] == "execute_result"], "the glue call shows no copy of its text"
    assert "smoke on cpu:" in glued[0] and "Peak memory" in glued[0], glued[0]
    assert runner.fill_run_box(write_chapter(tmp_path, "02_plain.ipynb", "x = 1"), tmp_path / "results") is False


# --------------------------------------------------------------------------------------------------- safe publishing

BREAKABLE = ("import os\nimport pandas as pd\n"
             "if os.environ.get('PERTURBX_TEST_BREAK') == 'raise':\n    raise RuntimeError('broke on purpose')\n"
             "if os.environ.get('PERTURBX_TEST_BREAK') == 'kill':\n    os.kill(os.getpid(), 9)\n"
             "chapter.table('scores', pd.DataFrame({'score': [0.5]}))")


def published_state(chapter: Path, results: Path) -> dict[str, str]:
    """sha256 of the chapter notebook and of every file of its results folder."""
    files = [chapter, *sorted((results / chapter.stem).iterdir())]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.parametrize("how", ["raise", "kill", "interrupt"])
def test_a_failed_killed_or_interrupted_run_leaves_the_published_chapter_whole(tmp_path, monkeypatch, how):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    monkeypatch.delenv("PERTURBX_TEST_BREAK", raising=False)
    chapter, results = write_chapter(tmp_path, "01_safe.ipynb", BREAKABLE), tmp_path / "results"
    run_chapters([chapter], profile="smoke", results_dir=results)
    before = published_state(chapter, results)
    if how == "interrupt":  # Ctrl-C while the kernel runs, after it wrote part of its results
        def interrupted(path, parameters, folder, executed):
            (folder / "provenance.json").write_text("{}")
            raise KeyboardInterrupt

        monkeypatch.setattr(runner, "_execute", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_chapters([chapter], profile="smoke", results_dir=results)
    else:
        monkeypatch.setenv("PERTURBX_TEST_BREAK", how)
        message = "RuntimeError: broke on purpose" if how == "raise" else "the kernel died in cell"
        with pytest.raises(ChapterFailed, match=message) as caught:
            run_chapters([chapter], profile="smoke", results_dir=results)
        assert "01_safe.ipynb" in str(caught.value) and "The published chapter is unchanged" in str(caught.value)
    assert published_state(chapter, results) == before
    assert sorted(p.name for p in results.iterdir()) == [".01_safe.lock", "01_safe", "runs.csv"]
    assert pd.read_csv(results / "runs.csv")["status"].tolist() == ["ok", "failed"]


def test_a_second_run_of_a_chapter_fails_at_once(tmp_path, monkeypatch):
    from perturbx.datasets.output_folder import OutputLockedError, output_lock

    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    chapter, results = write_chapter(tmp_path, "01_locked.ipynb", ""), tmp_path / "results"
    results.mkdir()
    with output_lock(results / "01_locked", label="chapter results folder"):  # as a running `perturbx book run`
        with pytest.raises(OutputLockedError, match="another perturbx run is writing it"):
            run_chapters([chapter], profile="smoke", results_dir=results)
    assert not (results / "01_locked").exists()


def test_an_exported_profile_that_is_not_one_is_refused_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PERTURBX_PROFILE", "huge")
    chapter = write_chapter(tmp_path, "01_x.ipynb", "")
    with pytest.raises(ValueError, match=r"\$PERTURBX_PROFILE is 'huge', not a profile"):
        run_chapters([chapter], results_dir=tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_provenance_records_the_chapter_source_and_marks_an_uncommitted_chapter_dirty(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    chapter, results = write_chapter(tmp_path, "01_source.ipynb", "x = 1"), tmp_path / "results"
    run_chapters([chapter], profile="smoke", results_dir=results)
    record = json.loads((results / "01_source" / "provenance.json").read_text())
    assert record["notebook_sha256"] == runner.notebook_sha256(nbformat.read(chapter, as_version=4))
    assert record["commit"].endswith("+dirty")  # the chapter is in no commit: its numbers are not a commit's
    assert pd.read_csv(results / "runs.csv")["commit"].iloc[-1] == record["commit"]


def test_a_truncated_notebook_is_one_error_naming_it_and_the_results_stay(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    chapter, results = write_chapter(tmp_path, "01_cut.ipynb", "x = 1"), tmp_path / "results"
    run_chapters([chapter], profile="smoke", results_dir=results)
    record = (results / "01_cut" / "provenance.json").read_bytes()
    chapter.write_bytes(chapter.read_bytes()[:200])
    with pytest.raises(ChapterFailed, match=r"01_cut.ipynb cannot be read as a notebook .*Fix: restore it"):
        run_chapters([chapter], profile="smoke", results_dir=results)
    assert (results / "01_cut" / "provenance.json").read_bytes() == record


def test_sigterm_of_the_runner_logs_the_failure_and_leaves_the_published_chapter_whole(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    monkeypatch.delenv("PERTURBX_TEST_BREAK", raising=False)
    chapter, results = write_chapter(tmp_path, "01_term.ipynb", BREAKABLE), tmp_path / "results"
    run_chapters([chapter], profile="smoke", results_dir=results)
    before = published_state(chapter, results)
    marker = tmp_path / "kernel-started"
    nb = nbformat.read(chapter, as_version=4)  # the next run waits in a cell, after saying it got there
    nb.cells[-2].source = f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(300)"
    nbformat.write(nb, chapter)
    before[chapter.name] = hashlib.sha256(chapter.read_bytes()).hexdigest()
    script = ("import sys\nfrom pathlib import Path\nfrom perturbx import cli\nfrom perturbx.book import runner\n"
              f"runner.chapter_paths = lambda names=None: [Path({str(chapter)!r})]\n"
              "sys.exit(cli.main(['book', 'run', '--profile', 'smoke']))\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=os.environ | {"PYTHONPATH": str(Path.cwd())})
    try:
        for _ in range(1200):  # polls while the kernel starts (up to 2 minutes on a busy machine); no time asserted
            if marker.exists() or process.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), "the chapter's kernel never reached the waiting cell"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143 and err.strip().splitlines()[-1] == "perturbx: terminated"
    assert published_state(chapter, results) == before
    assert pd.read_csv(results / "runs.csv")["status"].tolist() == ["ok", "failed"]


def test_the_runs_log_says_why_a_run_failed(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    monkeypatch.setenv("PERTURBX_TEST_BREAK", "raise")
    chapter, results = write_chapter(tmp_path, "01_why.ipynb", BREAKABLE), tmp_path / "results"
    with pytest.raises(ChapterFailed):
        run_chapters([chapter], profile="smoke", results_dir=results)
    monkeypatch.setenv("PERTURBX_TEST_BREAK", "kill")
    with pytest.raises(ChapterFailed):
        run_chapters([chapter], profile="smoke", results_dir=results)
    monkeypatch.delenv("PERTURBX_TEST_BREAK")
    run_chapters([chapter], profile="smoke", results_dir=results)
    log = pd.read_csv(results / "runs.csv", keep_default_na=False)
    assert log["status"].tolist() == ["failed", "failed", "ok"]
    assert "RuntimeError: broke on purpose" in log["reason"][0] and "cell" in log["reason"][0]
    assert "the kernel died in cell" in log["reason"][1]
    assert log["reason"][2] == ""


def test_failure_reasons_are_one_short_line():
    assert runner.failure_reason(None) == ""
    assert runner.failure_reason(KeyboardInterrupt()) == "interrupted (Ctrl-C)"
    assert runner.failure_reason(runner.Terminated()) == "terminated (SIGTERM)"
    assert runner.failure_reason(None, ["a warning in cell 3", "no run box"]) == (
        "not fit to publish: a warning in cell 3; no run box")
    long = runner.failure_reason(ChapterFailed("chapter 01.ipynb failed: " + "x" * 1000 + "\n    traceback"))
    assert len(long) == runner.REASON_CHARS and long.endswith("...") and "\n" not in long
    assert runner.failure_reason(OSError("disk full")) == "OSError: disk full"


def test_a_runs_log_from_before_the_reason_column_is_carried_over(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    results = tmp_path / "results"
    results.mkdir()
    old_header = [c for c in runner.RUNS_LOG_COLUMNS if c != "reason"]
    (results / "runs.csv").write_text(",".join(old_header) + "\n00_old,ok,smoke,cpu,CPU,abc,2026-01-01 00:00:00 UTC,1.5\n")
    chapter = write_chapter(tmp_path, "01_new.ipynb", "")
    run_chapters([chapter], profile="smoke", results_dir=results)
    log = pd.read_csv(results / "runs.csv", keep_default_na=False)
    assert list(log.columns) == list(runner.RUNS_LOG_COLUMNS)
    assert log["chapter"].tolist() == ["00_old", "01_new"] and log["wall_time_s"][0] == 1.5
    assert log["reason"].tolist() == ["", ""]


def test_a_results_folder_that_cannot_be_written_is_one_error_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_PROFILE", raising=False)
    chapter, results = write_chapter(tmp_path, "01_ro.ipynb", "x = 1"), tmp_path / "results"
    results.mkdir()
    before = chapter.read_bytes()

    def refused(*args, dir=None, **kwargs):  # what a read-only folder does (as root, chmod would not stop us)
        raise PermissionError(13, "Permission denied", str(Path(dir) / ".perturbx-write-check-x"))

    monkeypatch.setattr(runner.tempfile, "NamedTemporaryFile", refused)
    with pytest.raises(ChapterFailed, match=rf"01_ro.ipynb: cannot write to {results} \(Permission denied\); "
                                            r"nothing was run.*Fix: make it writable \(chmod -R u\+w"):
        run_chapters([chapter], profile="smoke", results_dir=results)
    assert chapter.read_bytes() == before and sorted(p.name for p in results.iterdir()) == []
