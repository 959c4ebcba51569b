"""The command-line side of the book: execute chapters with papermill and record each run.

:func:`run_chapters` (``perturbx book run``) executes each chapter into a copy of its notebook and its results
into a folder beside ``<results>/<chapter>/``, and publishes both (renames them into place) only when the run
passed the publishing rule (:func:`~perturbx.book.publishing.executed_problems`). A chapter that raised, was
interrupted, whose kernel died, or that ran but is not fit to publish leaves the published notebook and results as
they were, and stops the run with :class:`ChapterFailed` (or ``KeyboardInterrupt``). Per chapter it writes
``<results>/<chapter>/<table>.csv`` and ``provenance.json`` (commit, device, profile, seeds, package versions, data
checksums, the sha256 of the chapter's source cells, wall time) and appends one line per run, failed ones included
(with a one-line ``reason``: :func:`failure_reason`), to ``<results>/runs.csv``. A chapter's results folder is
locked while it runs (``.<chapter>.lock`` beside it): a second run of the same chapter fails at once. :func:`time_chapter` times one chapter for the speed benchmarks.

Chapter kernels never import this module (it imports papermill and nbformat); they use
:mod:`perturbx.book.chapter`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import nbformat
import papermill
from nbclient.exceptions import DeadKernelError

from ..datasets.output_folder import output_lock
from ..runtime import DEVICE_ENV, select_device
from .chapter import BOOK_DIR, PROVENANCE_FILE, RESULTS_ENV, RUNS_LOG, utc_now
from ..profiles import PROFILE_ENV, PROFILES
from .failures import ChapterFailed, Terminated
from .publishing import executed_problems, hide_injected_parameters, replace_glued_markdown, strip_ansi, tidy_streams

RUNS_LOG_COLUMNS = ("chapter", "status", "profile", "device", "device_name", "commit", "finished_utc", "wall_time_s",
                    "reason")
# A failed run's reason is one line of the runs log: longer messages are cut (the full one is printed and kept in the
# executed notebook).
REASON_CHARS = 240
# Where a run's executed notebook is written before it is published (and kept, when the run failed): outside the
# book's source folder, which the HTML build reads whole.
EXECUTED_DIR = Path(tempfile.gettempdir()) / "perturbx-runs"


def chapter_paths(book_dir: Path | str = BOOK_DIR, names: Sequence[str] | None = None) -> list[Path]:
    """The chapter notebooks in reading order (their file names start with the chapter number).

    Args:
        book_dir: the folder of the chapters (default: the book's).
        names: chapters to select by file name or stem, e.g. ``["00_intro"]`` (default: all, in order).

    Returns:
        The chapters' paths.

    Raises:
        ValueError: a name matches no chapter.
    """
    book_dir = Path(book_dir)
    available = sorted(book_dir.glob("[0-9][0-9]_*.ipynb"))
    if names is None:
        return available
    by_name = {p.stem: p for p in available} | {p.name: p for p in available}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"no chapter named {', '.join(missing)} in {book_dir}; "
                         f"chapters: {', '.join(p.stem for p in available)}")
    return [by_name[n] for n in names]


def run_chapters(chapters: Sequence[Path], profile: str | None = None, device: str | None = None,
                 results_dir: Path | str | None = None) -> dict[str, float]:
    """Execute ``chapters`` in order with papermill, writing each executed notebook back in place.

    Stored progress-bar output is tidied (:func:`~perturbx.book.publishing.tidy_streams`). Each chapter's tables
    and provenance record go to ``results_dir/<chapter>/``, replacing those of its previous run (the runner adds
    its own wall time, kernel start included, as ``wall_time_s``), and every chapter run, failed ones included, is
    appended to ``results_dir/runs.csv``.

    Args:
        chapters: the notebooks, e.g. from :func:`chapter_paths`.
        profile: injected as the chapter parameter (``None`` keeps each chapter's own default; an exported
            ``$PERTURBX_PROFILE`` still wins inside the chapter).
        device: passed to the kernels as ``$PERTURBX_DEVICE``.
        results_dir: where results go (default: ``results/`` beside each chapter).

    Returns:
        Wall time in seconds of each executed chapter, by file stem.

    Raises:
        ValueError: an unknown profile or device.
        ChapterFailed: naming the chapter, the failing cell and the error with the end of its traceback, or the
            :func:`~perturbx.book.publishing.executed_problems` of a chapter that ran to the end; later chapters
            are not run.
    """
    parameters = _prepare(profile, device)
    timings = {}
    for path in chapters:
        results = Path(results_dir) if results_dir is not None else path.parent / "results"
        timings[path.stem] = _run_chapter(path, parameters, results)
    return timings


def _prepare(profile: str | None, device: str | None) -> dict:
    """Check ``profile`` and the environment overrides, export ``device`` for the kernels; returns the parameters
    to inject. Nothing has run when this raises."""
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    exported = os.environ.get(PROFILE_ENV)
    if exported and exported not in PROFILES:
        raise ValueError(f"${PROFILE_ENV} is {exported!r}, not a profile; use one of {', '.join(PROFILES)} or unset it")
    if device is not None or os.environ.get(DEVICE_ENV):  # the argument, else an exported $PERTURBX_DEVICE
        os.environ[DEVICE_ENV] = select_device(device)
    return {} if profile is None else {"profile": profile}


def _run_chapter(path: Path, parameters: dict, results: Path) -> float:
    """Execute one chapter into a copy and a staging folder, log the run, publish both when it passed; returns its
    wall time in seconds."""
    folder = results / path.stem
    for place in (results, path.parent):  # the results, and the notebook's folder (the notebook is renamed into it)
        _require_writable(place, path)
    with output_lock(folder, label="chapter results folder"):
        # The chapter links its tables by its folder's name, so it writes into <results>/.<chapter>.tmp-<pid>/<chapter>
        # (what a killed run leaves there is removed when the lock is next taken).
        staging_root = results / f".{path.stem}.tmp-{os.getpid()}"
        shutil.rmtree(staging_root, ignore_errors=True)
        staging = staging_root / path.stem
        staging.mkdir(parents=True)
        executed = EXECUTED_DIR / str(os.getpid()) / path.name  # same name: the run box finds its chapter by it
        executed.parent.mkdir(parents=True, exist_ok=True)
        run = {"chapter": path.stem, "status": "failed", "profile": parameters.get("profile", "chapter default"),
               "device": os.environ.get(DEVICE_ENV, "default")}
        started, failure = time.perf_counter(), None
        try:
            _execute(path, parameters, staging, executed)
        except BaseException as error:  # noqa: BLE001 - recorded below, then raised again
            failure = error
        with _signals_deferred():  # a second Ctrl-C (or a SIGTERM) waits until the run is logged
            elapsed = time.perf_counter() - started
            problems = _tidy_and_check(executed, path)
            problems = _finish_record(path, executed, staging, elapsed, run, problems, failed=failure is not None)
            run["reason"] = failure_reason(failure, problems)
            _append_run(results / RUNS_LOG, run)
            published = failure is None and not problems and _publish(executed, path, staging, folder, results)
            shutil.rmtree(staging_root, ignore_errors=True)
            if published:
                shutil.rmtree(executed.parent, ignore_errors=True)  # the run's own folder: its notebook is in place
    if failure is not None:
        raise failure
    if not published:
        raise ChapterFailed(f"chapter {path.name} ran but is not fit to publish:\n"
                            + "\n".join(f"    {p}" for p in problems)
                            + f"\nThe published chapter is unchanged; the executed notebook was written to {executed}.")
    return elapsed


def _require_writable(folder: Path, chapter: Path) -> None:
    """Create ``folder`` if needed and write (then remove) a file in it; a folder that cannot be written to raises
    ChapterFailed naming it and the fix, before anything runs."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".perturbx-write-check-"):
            pass
    except PermissionError as error:
        raise ChapterFailed(f"chapter {chapter.name}: cannot write to {folder} ({error.strerror or error}); nothing "
                            "was run and the published chapter is unchanged. Fix: make it writable "
                            f"(chmod -R u+w {folder}) or run the book from a copy you can write to.") from None


def _publish(executed: Path, path: Path, staging: Path, folder: Path, results: Path) -> bool:
    """Rename the staged results into ``folder`` and the executed notebook (its run box filled) onto ``path``; on
    any failure, the previous results are put back. Returns True."""
    aside = results / f".{path.stem}.old-{os.getpid()}"
    had_results = folder.exists()
    if had_results:
        folder.rename(aside)
    staging.rename(folder)
    try:
        fill_run_box(executed, results)
        os.replace(executed, path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        if had_results:
            aside.rename(folder)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return True


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held back (delivered on exit) while the block runs; a no-op where signals cannot be
    masked."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def notebook_sha256(notebook: nbformat.NotebookNode) -> str:
    """sha256 of a chapter's source: its cells' types and sources, without papermill's injected parameters cell."""
    cells = [(cell.cell_type, cell.source) for cell in notebook.cells
             if "injected-parameters" not in cell.metadata.get("tags", [])]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def _committed_sha256(path: Path) -> str | None:
    """:func:`notebook_sha256` of the chapter as committed at HEAD (None outside git or for a new chapter)."""
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=path.parent, capture_output=True,
                             text=True, check=True).stdout.strip()
        relative = path.resolve().relative_to(Path(top).resolve()).as_posix()
        text = subprocess.run(["git", "show", f"HEAD:{relative}"], cwd=top, capture_output=True, text=True,
                              check=True).stdout
        return notebook_sha256(nbformat.reads(text, as_version=4))
    except (OSError, ValueError, subprocess.CalledProcessError, nbformat.reader.NotJSONError):
        return None


@contextmanager
def _results_env(folder: Path) -> Iterator[None]:
    """``$PERTURBX_CHAPTER_RESULTS`` set to ``folder`` for the kernel, restored afterwards."""
    previous = os.environ.get(RESULTS_ENV)
    os.environ[RESULTS_ENV] = str(folder.resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RESULTS_ENV, None)
        else:
            os.environ[RESULTS_ENV] = previous


def _execute(path: Path, parameters: dict, folder: Path, executed: Path) -> None:
    """Run the chapter with papermill into ``executed``, its results going to ``folder``; a failing cell or a dead
    kernel raises ChapterFailed."""
    with _results_env(folder):
        try:
            papermill.execute_notebook(_without_injected_parameters(path), str(executed), parameters=parameters,
                                       cwd=str(path.parent), kernel_name="python3", progress_bar=True)
        except papermill.PapermillExecutionError as error:
            raise ChapterFailed(_failure_message(path, error, executed)) from error
        except DeadKernelError as error:
            raise ChapterFailed(f"chapter {path.name}: the kernel died in cell {_running_cell(executed)} (killed, "
                                "e.g. by the out-of-memory killer). The published chapter is unchanged. Fix: run it "
                                "again with more memory or a smaller profile.") from error


def _running_cell(executed: Path) -> str:
    """The execution count (or position) of the cell papermill marked as running in ``executed``; '?' if none."""
    try:
        notebook = nbformat.read(executed, as_version=4)
    except (OSError, ValueError):
        return "?"
    for number, cell in enumerate(notebook.cells, 1):
        if cell.metadata.get("papermill", {}).get("status") == "running":
            return str(cell.get("execution_count") or f"#{number}")
    return "?"


def _tidy_and_check(path: Path, chapter: Path | None = None) -> list[str]:
    """Tidy the executed notebook at ``path`` in place (progress bars out of the outputs, the injected parameters
    cell hidden; papermill's record names ``chapter``, the notebook it will replace, default ``path``); returns
    what makes it unfit to publish."""
    if not path.exists():
        return ["the notebook was not written"]
    chapter = chapter or path
    executed = nbformat.read(path, as_version=4)
    tidy_streams(executed)
    hide_injected_parameters(executed)
    record = executed.metadata.get("papermill", {})
    if not isinstance(record.get("input_path", ""), str):  # papermill stores a notebook given as input whole
        record["input_path"] = str(chapter)
    if "output_path" in record:
        record["output_path"] = str(chapter)
    nbformat.write(executed, path)
    return executed_problems(executed)


def tidy_chapters(chapters: Sequence[Path], results_dir: Path | str | None = None) -> dict[str, list[str]]:
    """Apply the runner's tidying to stored chapters without executing them (progress bars out of the outputs, the
    injected parameters cell hidden, the run box filled from the results of their last run): for chapters executed
    before these rules, so that their numbers stay those of their run. Returns, per chapter stem, what still makes
    it unfit to publish (empty: fit)."""
    problems = {}
    for path in map(Path, chapters):
        problems[path.stem] = _tidy_and_check(path)
        results = Path(results_dir) if results_dir is not None else path.parent / "results"
        if (results / path.stem / PROVENANCE_FILE).exists():
            fill_run_box(path, results)
    return problems


RUN_BOX = "run_box"


def fill_run_box(path: Path, results: Path) -> bool:
    """Rewrite the chapter's glued ``run_box`` (:func:`perturbx.book.reproduction.run_box`, which the chapter glued
    from its previous run when it started) with what this run measured: its wall time in the runs log, its peak memory
    and its data files from the provenance record just written. Returns whether the chapter has a run box."""
    from .reproduction import Results, run_box  # imported here: the reproduction page pulls in every experiment

    executed = nbformat.read(path, as_version=4)
    if not replace_glued_markdown(executed, RUN_BOX, run_box(Results.load(results), path.stem)):
        return False
    nbformat.write(executed, path)
    return True


def _finish_record(path: Path, executed: Path, folder: Path, elapsed: float, run: dict, problems: list[str],
                   failed: bool = False) -> list[str]:
    """Add the chapter, the sha256 of its source and the runner's wall time to the chapter's provenance record (in
    ``folder``), and the outcome to ``run``. The commit is marked ``+dirty`` when the executed chapter's source
    differs from the committed one.

    Returns:
        ``problems``, or the missing provenance record when the chapter ran cleanly but wrote none.
    """
    record_path = folder / PROVENANCE_FILE
    record = _read_record(record_path)
    if record is not None:
        source = notebook_sha256(nbformat.read(executed, as_version=4)) if executed.exists() else None
        commit = str(record.get("commit", "unknown"))
        if source is not None and source != _committed_sha256(path) and not commit.endswith("+dirty"):
            record["commit"] = commit + "+dirty"  # the chapter differs from the commit: its numbers are not the commit's
        record |= {"chapter": path.stem, "notebook_sha256": source, "wall_time_s": round(elapsed, 1)}
        record_path.write_text(json.dumps(record, indent=1) + "\n")
        run |= {key: record[key] for key in ("profile", "device", "device_name", "commit") if key in record}
    elif not problems and not failed:
        problems = [f"no provenance record {record_path}: the chapter did not call chapter.finish()"]
    failed = failed or bool(problems)
    run |= {"status": "failed" if failed else "ok", "finished_utc": utc_now(), "wall_time_s": round(elapsed, 1)}
    return problems


def _read_record(path: Path) -> dict | None:
    """The provenance record at ``path``; None when there is none or a killed run left it unreadable."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def failure_reason(failure: BaseException | None, problems: Sequence[str] = ()) -> str:
    """Why a run failed, in one line of at most :data:`REASON_CHARS` characters ('' for a run that passed).

    Args:
        failure: what the run raised (``None`` when it ran to the end).
        problems: what made a run that ended unfit to publish (:func:`~perturbx.book.publishing.executed_problems`).
    """
    if isinstance(failure, KeyboardInterrupt):
        reason = "interrupted (Ctrl-C)"
    elif isinstance(failure, Terminated):  # the command line's SIGTERM
        reason = "terminated (SIGTERM)"
    elif isinstance(failure, ChapterFailed):
        reason = str(failure).splitlines()[0] if str(failure) else "chapter failed"
    elif failure is not None:
        first = str(failure).splitlines()[0] if str(failure) else ""
        reason = f"{type(failure).__name__}: {first}" if first else type(failure).__name__
    elif problems:
        reason = "not fit to publish: " + "; ".join(problems)
    else:
        return ""
    reason = " ".join(reason.split())
    return reason if len(reason) <= REASON_CHARS else reason[:REASON_CHARS - 3] + "..."


def _append_run(log: Path, row: dict) -> None:
    """Append one chapter run to the runs log (CSV with :data:`RUNS_LOG_COLUMNS`), writing the header if new.

    A log written before a column was added is rewritten once with the current header (its rows keep their values;
    the new columns are empty), so every row stays under the right column."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if log.exists():
        with open(log, newline="") as handle:
            reader = csv.DictReader(handle)
            outdated = reader.fieldnames is not None and tuple(reader.fieldnames) != RUNS_LOG_COLUMNS
            old_rows = list(reader) if outdated else []
        if outdated:
            _write_runs(log, old_rows)
    with open(log, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RUNS_LOG_COLUMNS)
        if handle.tell() == 0:
            writer.writeheader()
        writer.writerow({column: row.get(column, "") for column in RUNS_LOG_COLUMNS})


def _write_runs(log: Path, rows: list[dict]) -> None:
    """Replace the runs log with ``rows`` under the current header (atomically: a copy renamed into place)."""
    staged = log.with_name(f".{log.name}.tmp-{os.getpid()}")
    with open(staged, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RUNS_LOG_COLUMNS)
        writer.writeheader()
        writer.writerows({column: row.get(column) or "" for column in RUNS_LOG_COLUMNS} for row in rows)
    os.replace(staged, log)


def _failure_message(path: Path, error: papermill.PapermillExecutionError, executed: Path) -> str:
    """The failing cell, the exception and the end of its traceback (ANSI colours removed)."""
    traceback = strip_ansi("\n".join(error.traceback or [])).strip().splitlines()
    shown = "\n".join("    " + line for line in traceback[-20:])
    return (f"chapter {path.name} failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n{shown}\n"
            f"The published chapter is unchanged; the notebook with the full traceback was written to {executed}.")


def _without_injected_parameters(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` without the parameters cell papermill injected in an earlier run: papermill keeps
    such a cell when no new parameters are given, so a run with the chapters' own profile would silently reuse
    the profile of the previous run."""
    try:
        notebook = nbformat.read(path, as_version=4)
    except (nbformat.reader.NotJSONError, ValueError, KeyError) as error:  # truncated or not a notebook
        raise ChapterFailed(f"chapter {path.name}: {path} cannot be read as a notebook "
                            f"({str(error).splitlines()[0][:120] if str(error) else type(error).__name__}). The "
                            f"published results are unchanged. Fix: restore it (git checkout {path.name}) or repair "
                            "its JSON.") from None
    notebook.cells = [cell for cell in notebook.cells if "injected-parameters" not in cell.metadata.get("tags", [])]
    return notebook


def time_chapter(name: str, profile: str = "smoke", book_dir: Path | str = BOOK_DIR) -> float:
    """Execute one chapter with papermill into a temporary file (the stored chapter is untouched).

    For the speed benchmarks (e.g. "the smoke profile runs in under 3 minutes").

    Args:
        name: the chapter's file name or stem, e.g. ``"04_diffusion"``.
        profile: the profile injected into the chapter.
        book_dir: the folder of the chapters.

    Returns:
        The chapter's wall time in seconds, kernel start included.
    """
    path, = chapter_paths(book_dir, [name])
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        papermill.execute_notebook(str(path), str(Path(folder) / path.name), parameters={"profile": profile},
                                   cwd=str(path.parent), kernel_name="python3", progress_bar=False)
        return time.perf_counter() - started
