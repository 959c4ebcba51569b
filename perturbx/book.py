"""The chapter convention and the papermill runner.

Every chapter is a notebook in ``book/`` whose first code cell is tagged ``parameters``::

    profile = "quick"   # smoke | quick | full
    seed = 0

and whose next cell calls :func:`start_chapter`. ``$PERTURBX_PROFILE`` overrides the profile (the test suite sets
it to ``smoke``), :meth:`Chapter.pick` turns the profile into sizes, :meth:`Chapter.seeds` into seed lists,
:meth:`Chapter.table` registers each results table, and the chapter ends with :meth:`Chapter.finish`, which prints
the provenance line (commit, device, profile, seed, wall time).

:func:`run_chapters` (``perturbx book run``) executes chapters with papermill and writes, per chapter,
``book/results/<chapter>/<table>.csv`` and ``provenance.json`` (commit, device, profile, seeds, package versions,
data checksums, wall time), and appends one line per chapter run to ``book/results/runs.csv``.
:func:`executed_problems` is the one rule for what a stored chapter may not contain (error outputs, tracebacks,
warnings, cells that never ran, a missing provenance line); the runner, the HTML build and the tests apply it.

Profiles:

- ``smoke``: for the test suite; seconds to a couple of minutes per chapter on 2 CPU cores.
- ``quick``: what a student gets by default; minutes on a laptop CPU.
- ``full``: the book's tables; meant for a GPU.
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from . import __version__
from .runtime import DEVICE_ENV, describe_device, git_commit, package_versions, seed_everything, select_device

if TYPE_CHECKING:
    import pandas as pd

PROFILES = ("smoke", "quick", "full")
PROFILE_ENV = "PERTURBX_PROFILE"
# Set by the runner for each chapter: the folder that receives its tables and provenance record. Unset (e.g. under
# pytest --nbmake) nothing is written, so test runs never overwrite the book's results.
RESULTS_ENV = "PERTURBX_CHAPTER_RESULTS"
BOOK_DIR = Path(__file__).resolve().parent.parent / "book"
RESULTS_DIR = BOOK_DIR / "results"
PROVENANCE_FILE = "provenance.json"
RUNS_LOG = "runs.csv"
RUNS_LOG_COLUMNS = ("chapter", "status", "profile", "device", "device_name", "commit", "finished_utc", "wall_time_s")
T = TypeVar("T")


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def resolve_profile(profile: str) -> str:
    """The profile in force: ``$PERTURBX_PROFILE`` when set, else ``profile``; must be one of :data:`PROFILES`."""
    chosen = os.environ.get(PROFILE_ENV) or profile
    if chosen not in PROFILES:
        source = f"${PROFILE_ENV}" if os.environ.get(PROFILE_ENV) else "the chapter's `profile` parameter"
        raise ValueError(f"unknown profile {chosen!r} from {source}; use one of {', '.join(PROFILES)}")
    return chosen


@dataclass
class Chapter:
    """The run of one chapter: its profile, seed and device, its tables, and the clock for the provenance line.

    When the runner executes the chapter, ``results_dir`` (from ``$PERTURBX_CHAPTER_RESULTS``) receives each table
    registered with :meth:`table` as CSV and, at :meth:`finish`, the provenance record ``provenance.json``.
    """

    title: str
    profile: str
    seed: int
    device: str
    results_dir: Path | None = None
    seed_lists: dict[str, list[int]] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    started_utc: str = field(default_factory=_utc_now)

    def pick(self, *, smoke: T, quick: T, full: T) -> T:
        """The value for the profile in force, e.g. ``n_epochs = chapter.pick(smoke=1, quick=20, full=200)``."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.profile]

    def seeds(self, label: str, *, smoke: int, quick: int, full: int) -> list[int]:
        """The seeds ``[seed, seed + 1, ...]`` of an experiment, as many as the profile asks for; recorded under
        ``label`` in the provenance record, e.g. ``chapter.seeds("CCLE", smoke=1, quick=2, full=5)``."""
        chosen = [self.seed + i for i in range(self.pick(smoke=smoke, quick=quick, full=full))]
        self.seed_lists[label] = chosen
        return chosen

    def table(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Register a results table: saved as ``<name>.csv`` (every column, index included) when the runner
        executes the chapter; returns what the chapter shows: ``frame`` without the numeric twins ``<m>_mean`` /
        ``<m>_sd`` of a column ``<m>`` that already shows them as text ("0.912 ± 0.004").

        ``name`` is a file stem of lower-case letters, digits and underscores, unique within the chapter.
        """
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise ValueError(f"table name {name!r}: use lower-case letters, digits and underscores (it is a file name)")
        if name in self.tables:
            raise ValueError(f"table {name!r} is registered twice in {self.title!r}; give each table its own name")
        self.tables.append(name)
        if self.results_dir is not None:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            flat = frame if _is_default_index(frame) else frame.reset_index()
            flat.to_csv(self.results_dir / f"{name}.csv", index=False)
        twins = [c for c in frame.columns if isinstance(c, str) and c.endswith(("_mean", "_sd"))
                 and c.rsplit("_", 1)[0] in frame.columns]
        return frame.drop(columns=twins)

    def record(self) -> dict:
        """The provenance record: what ran (title, profile, seeds, tables), where (device, commit), with what
        (package versions, sha256 of every data file the chapter verified) and how long (seconds)."""
        from .datasets import verified_files

        return {"title": self.title, "profile": self.profile, "seed": self.seed, "seeds": self.seed_lists,
                "device": self.device, "device_name": describe_device(self.device), "commit": git_commit(),
                "started_utc": self.started_utc, "finished_utc": _utc_now(),
                "kernel_wall_time_s": round(time.perf_counter() - self.started, 1),
                "packages": package_versions(), "data": verified_files(), "tables": list(self.tables)}

    def provenance(self, record: dict | None = None) -> str:
        """One line of :meth:`record` (default: taken now): commit, device, profile, seed, wall time since
        :func:`start_chapter`, package version, date."""
        record = record if record is not None else self.record()
        return (f"{self.title} | commit {record['commit']} | device {record['device_name']} | "
                f"profile {self.profile} | seed {self.seed} | wall time {record['kernel_wall_time_s']:.1f} s | "
                f"perturbx {__version__} | {record['finished_utc'][:16]} UTC")

    def finish(self) -> None:
        """Print the provenance line and, under the runner, write ``provenance.json``; the last call of every
        chapter."""
        record = self.record()
        print(f"Provenance: {self.provenance(record)}")
        if self.results_dir is not None:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            (self.results_dir / PROVENANCE_FILE).write_text(json.dumps(record, indent=1) + "\n")


def _is_default_index(frame: pd.DataFrame) -> bool:
    """True for an unnamed 0, 1, 2, ... index, which carries no information and is left out of the CSV."""
    import pandas as pd

    index = frame.index
    return (isinstance(index, pd.RangeIndex) and index.name is None and index.start == 0 and index.step == 1)


def start_chapter(title: str, profile: str = "quick", seed: int = 0, device: str | None = None) -> Chapter:
    """Resolve the profile (``$PERTURBX_PROFILE`` wins), seed every generator, pick the device, start the clock."""
    results = os.environ.get(RESULTS_ENV)
    chapter = Chapter(title=title, profile=resolve_profile(profile), seed=int(seed), device=select_device(device),
                      results_dir=Path(results) if results else None)
    seed_everything(chapter.seed)
    print(f"{title}: profile {chapter.profile}, seed {chapter.seed}, {describe_device(chapter.device)}")
    return chapter


class ChapterFailed(RuntimeError):
    """A chapter raised while being executed; the message names the chapter and the error."""


def chapter_paths(book_dir: Path | str = BOOK_DIR, names: Sequence[str] | None = None) -> list[Path]:
    """The chapter notebooks in reading order (their file names start with the chapter number).

    ``names`` selects chapters by file name or stem, e.g. ``["00_intro"]``.
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


_CURSOR_UP = "\x1b[A"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A tqdm line: "folds: 100%|█████| 5/5 [05:52<00:00, 70.55s/it]" or, without a total, "splits: 3it [00:01, ...]".
_PROGRESS_LINE = re.compile(r"\d+%\||\b\d+(?:\.\d+)?[kMGTP]?(?:it|B) \[")


def _render_terminal(text: str) -> str:
    """What a terminal shows after ``text``: a carriage return starts the line again (the next text replaces it),
    a newline moves down, and ``ESC[A`` (how a nested progress bar returns to its parent's line) moves up."""
    lines, row, at_start = [""], 0, True
    for token in re.split(r"(\r|\n|\x1b\[A)", text):
        if token == "\r":
            at_start = True
        elif token == "\n":
            row += 1
            at_start = True
            if row == len(lines):
                lines.append("")
        elif token == _CURSOR_UP:
            row = max(row - 1, 0)
        elif token:
            lines[row] = token if at_start else lines[row] + token
            at_start = False
    return "\n".join(_ANSI.sub("", line) for line in lines)


def tidy_streams(notebook) -> int:
    """Make stored progress-bar output readable, in place; returns the number of outputs removed.

    A progress bar redraws itself with carriage returns, and a kernel sends each redraw as a separate stream
    message, so a stored notebook holds hundreds of fragments that a browser renders as separate blocks.
    Consecutive stream outputs of one name are merged and rendered as a terminal would show them (every line keeps
    only its last redraw, nested bars included); stderr lines left blank (bars that erase themselves when done)
    are dropped.
    """
    removed = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        merged = []
        for output in cell.get("outputs", []):
            if (output.output_type == "stream" and merged and merged[-1].output_type == "stream"
                    and merged[-1].name == output.name):
                merged[-1].text += output.text
                removed += 1
            else:
                merged.append(output)
        kept = []
        for output in merged:
            if output.output_type == "stream":
                text = _render_terminal(output.text)
                if output.name == "stderr":
                    text = "\n".join(line for line in text.split("\n") if line.strip())
                    text = text + "\n" if text else ""
                if not text.strip():
                    removed += 1
                    continue
                output.text = text
            kept.append(output)
        cell.outputs = kept
    return removed


def is_progress_line(line: str) -> bool:
    """Whether a line of stderr is a tqdm progress bar (which a chapter may show) rather than a warning."""
    return bool(_PROGRESS_LINE.search(line))


def executed_problems(notebook) -> list[str]:
    """What a stored chapter must not show, one line each (empty when it is fit to publish).

    - an error output, or a traceback printed to a stream;
    - stderr that is not a progress bar (a warning the chapter should have dealt with);
    - a code cell that was never executed (the run stopped early, or the notebook was never run);
    - no ``Provenance:`` line from the last code cell (the chapter did not reach :meth:`Chapter.finish`).

    ``notebook`` is an ``nbformat`` notebook (version 4). Cells are numbered from 1 in file order.
    """
    problems = []
    code = [(number, cell) for number, cell in enumerate(notebook.cells, 1) if cell.cell_type == "code"]
    for number, cell in code:
        where = f"cell {number}"
        if cell.get("execution_count") is None and cell.source.strip():
            problems.append(f"{where}: never executed")
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                problems.append(f"{where}: error {output.ename}: {_ANSI.sub('', str(output.evalue))[:200]}")
            elif output.output_type == "stream":
                text = _ANSI.sub("", output.text)
                if "Traceback (most recent call last)" in text:
                    problems.append(f"{where}: a traceback on {output.name}")
                elif output.name == "stderr":
                    problems += [f"{where}: stderr: {line.strip()[:200]}" for line in text.splitlines()
                                 if line.strip() and not is_progress_line(line)]
    last = code[-1][1] if code else None
    if last is None or not any("Provenance:" in output.get("text", "") for output in last.get("outputs", [])):
        problems.append("the last code cell printed no 'Provenance:' line: the chapter did not finish")
    return problems


def _append_run(log: Path, row: dict) -> None:
    """Append one chapter run to the runs log (CSV with :data:`RUNS_LOG_COLUMNS`), writing the header if new."""
    log.parent.mkdir(parents=True, exist_ok=True)
    new = not log.exists()
    with open(log, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RUNS_LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({column: row.get(column, "") for column in RUNS_LOG_COLUMNS})


def _failure_message(path: Path, error) -> str:
    """The failing cell, the exception and the end of its traceback (ANSI colours removed)."""
    traceback = _ANSI.sub("", "\n".join(error.traceback or [])).strip().splitlines()
    shown = "\n".join("    " + line for line in traceback[-20:])
    return (f"chapter {path.name} failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n{shown}\n"
            f"The notebook with the full traceback was written to {path}.")


def _without_injected_parameters(path: Path):
    """The notebook at ``path`` without the parameters cell papermill injected in an earlier run: papermill keeps
    such a cell when no new parameters are given, so a run with the chapters' own profile would silently reuse
    the profile of the previous run."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    notebook.cells = [cell for cell in notebook.cells if "injected-parameters" not in cell.metadata.get("tags", [])]
    return notebook


def run_chapters(chapters: Sequence[Path], profile: str | None = None, device: str | None = None,
                 results_dir: Path | str | None = None) -> dict[str, float]:
    """Execute ``chapters`` in order with papermill, writing each executed notebook back in place.

    ``profile`` is injected as the chapter parameter (``None`` keeps each chapter's own default; an exported
    ``$PERTURBX_PROFILE`` still wins inside the chapter). ``device`` is passed to the kernels as
    ``$PERTURBX_DEVICE``. Stored progress-bar output is tidied (:func:`tidy_streams`). Each chapter's tables
    and provenance record go to ``results_dir/<chapter>/`` (default: ``results/`` beside the chapter; the
    runner adds its own wall time, kernel start included, as ``wall_time_s``), replacing those of its previous
    run, and every chapter run, failed ones included, is appended to ``results_dir/runs.csv``.

    Returns:
        Wall time in seconds of each executed chapter, by file stem.

    Raises:
        ChapterFailed: naming the chapter, the failing cell and the error with the end of its traceback, or the
            :func:`executed_problems` of a chapter that ran to the end; later chapters are not run.
    """
    import nbformat
    import papermill

    if profile is not None and profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    if device is not None:
        os.environ[DEVICE_ENV] = select_device(device)
    parameters = {} if profile is None else {"profile": profile}
    timings = {}
    for path in chapters:
        results = Path(results_dir) if results_dir is not None else path.parent / "results"
        folder = results / path.stem
        for stale in [*folder.glob("*.csv"), folder / PROVENANCE_FILE]:
            stale.unlink(missing_ok=True)
        run = {"chapter": path.stem, "status": "failed", "profile": profile or "chapter default",
               "device": os.environ.get(DEVICE_ENV, "default")}
        started = time.perf_counter()
        previous = os.environ.get(RESULTS_ENV)
        os.environ[RESULTS_ENV] = str(folder.resolve())
        try:
            papermill.execute_notebook(_without_injected_parameters(path), str(path), parameters=parameters,
                                       cwd=str(path.parent), kernel_name="python3", progress_bar=True)
        except papermill.PapermillExecutionError as error:
            raise ChapterFailed(_failure_message(path, error)) from error
        finally:
            if previous is None:
                os.environ.pop(RESULTS_ENV, None)
            else:
                os.environ[RESULTS_ENV] = previous
            elapsed = time.perf_counter() - started
            problems = ["the notebook was not written"]
            if path.exists():
                executed = nbformat.read(path, as_version=4)
                tidy_streams(executed)
                nbformat.write(executed, path)
                problems = executed_problems(executed)
            record_path = folder / PROVENANCE_FILE
            if record_path.exists():
                record = json.loads(record_path.read_text())
                record |= {"chapter": path.stem, "wall_time_s": round(elapsed, 1)}
                record_path.write_text(json.dumps(record, indent=1) + "\n")
                run |= {key: record[key] for key in ("profile", "device", "device_name", "commit")}
            elif not problems:
                problems = [f"no provenance record {record_path}: the chapter did not call chapter.finish()"]
            run |= {"status": "failed" if problems else "ok", "finished_utc": _utc_now(),
                    "wall_time_s": round(elapsed, 1)}
            _append_run(results / RUNS_LOG, run)
        if problems:
            raise ChapterFailed(f"chapter {path.name} ran but is not fit to publish:\n"
                                + "\n".join(f"    {p}" for p in problems)
                                + f"\nThe executed notebook was written to {path}.")
        timings[path.stem] = elapsed
    return timings


def time_chapter(name: str, profile: str = "smoke", book_dir: Path | str = BOOK_DIR) -> float:
    """Execute one chapter with papermill into a temporary file (the stored chapter is untouched) and return its
    wall time in seconds; for the speed benchmarks (e.g. "the smoke profile runs in under 3 minutes")."""
    import tempfile

    import papermill

    path, = chapter_paths(book_dir, [name])
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        papermill.execute_notebook(str(path), str(Path(folder) / path.name), parameters={"profile": profile},
                                   cwd=str(path.parent), kernel_name="python3", progress_bar=False)
        return time.perf_counter() - started
