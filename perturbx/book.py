"""The chapter convention and the papermill runner.

Every chapter is a notebook in ``book/`` whose first code cell is tagged ``parameters``::

    profile = "quick"   # smoke | quick | full
    seed = 0

and whose next cell calls :func:`start_chapter`. ``$PERTURBX_PROFILE`` overrides the profile (the test suite sets
it to ``smoke``), :meth:`Chapter.pick` turns the profile into sizes, and the chapter ends with
:meth:`Chapter.finish`, which prints the provenance line (commit, device, profile, seed, wall time).

Profiles:

- ``smoke``: for the test suite; seconds to a couple of minutes per chapter on 2 CPU cores.
- ``quick``: what a student gets by default; minutes on a laptop CPU.
- ``full``: the book's tables; meant for a GPU.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from . import __version__
from .runtime import DEVICE_ENV, describe_device, git_commit, seed_everything, select_device

PROFILES = ("smoke", "quick", "full")
PROFILE_ENV = "PERTURBX_PROFILE"
BOOK_DIR = Path(__file__).resolve().parent.parent / "book"
T = TypeVar("T")


def resolve_profile(profile: str) -> str:
    """The profile in force: ``$PERTURBX_PROFILE`` when set, else ``profile``; must be one of :data:`PROFILES`."""
    chosen = os.environ.get(PROFILE_ENV) or profile
    if chosen not in PROFILES:
        source = f"${PROFILE_ENV}" if os.environ.get(PROFILE_ENV) else "the chapter's `profile` parameter"
        raise ValueError(f"unknown profile {chosen!r} from {source}; use one of {', '.join(PROFILES)}")
    return chosen


@dataclass
class Chapter:
    """The run of one chapter: its profile, seed and device, and the clock for the provenance line."""

    title: str
    profile: str
    seed: int
    device: str
    started: float = field(default_factory=time.perf_counter)

    def pick(self, *, smoke: T, quick: T, full: T) -> T:
        """The value for the profile in force, e.g. ``n_epochs = chapter.pick(smoke=1, quick=20, full=200)``."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.profile]

    def provenance(self) -> str:
        """One line: commit, device, profile, seed, wall time since :func:`start_chapter`, package version, date."""
        elapsed = time.perf_counter() - self.started
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return (f"{self.title} | commit {git_commit()} | device {describe_device(self.device)} | "
                f"profile {self.profile} | seed {self.seed} | wall time {elapsed:.1f} s | "
                f"perturbx {__version__} | {stamp}")

    def finish(self) -> None:
        """Print the provenance line; the last call of every chapter."""
        print(f"Provenance: {self.provenance()}")


def start_chapter(title: str, profile: str = "quick", seed: int = 0, device: str | None = None) -> Chapter:
    """Resolve the profile (``$PERTURBX_PROFILE`` wins), seed every generator, pick the device, start the clock."""
    chapter = Chapter(title=title, profile=resolve_profile(profile), seed=int(seed), device=select_device(device))
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


def _resolve_carriage_returns(text: str) -> str:
    """What a terminal shows: on each line only the text after its last carriage return survives."""
    lines = []
    for line in text.split("\n"):
        segments = line.split("\r")
        lines.append(next((seg for seg in reversed(segments) if seg), ""))  # spaces erase, as on a terminal
    return "\n".join(lines)


def tidy_streams(notebook) -> int:
    """Make stored progress-bar output readable, in place; returns the number of outputs removed.

    A progress bar redraws itself with carriage returns, and a kernel sends each redraw as a separate stream
    message, so a stored notebook holds hundreds of fragments that a browser renders as separate blocks.
    Consecutive stream outputs of one name are merged and every line keeps only its last redraw; stderr lines
    left blank (bars that erase themselves when done) are dropped.
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
                text = _resolve_carriage_returns(output.text)
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


def run_chapters(chapters: Sequence[Path], profile: str | None = None, device: str | None = None) -> dict[str, float]:
    """Execute ``chapters`` in order with papermill, writing each executed notebook back in place.

    ``profile`` is injected as the chapter parameter (``None`` keeps each chapter's own default; an exported
    ``$PERTURBX_PROFILE`` still wins inside the chapter). ``device`` is passed to the kernels as
    ``$PERTURBX_DEVICE``. Stops at the first failing chapter. Stored progress-bar output is tidied
    (:func:`tidy_streams`).

    Returns:
        Wall time in seconds of each executed chapter, by file stem.

    Raises:
        ChapterFailed: naming the chapter and the error; later chapters are not run.
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
        started = time.perf_counter()
        try:
            papermill.execute_notebook(str(path), str(path), parameters=parameters, cwd=str(path.parent),
                                       kernel_name="python3", progress_bar=True)
        except papermill.PapermillExecutionError as error:
            raise ChapterFailed(
                f"chapter {path.name} failed in cell {error.exec_count}: {error.ename}: {error.evalue}. "
                f"The notebook with the traceback was written to {path}."
            ) from error
        finally:
            if path.exists():
                executed = nbformat.read(path, as_version=4)
                tidy_streams(executed)
                nbformat.write(executed, path)
        timings[path.stem] = time.perf_counter() - started
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
