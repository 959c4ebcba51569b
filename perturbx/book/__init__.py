"""The book: the chapter convention, the runner that executes the chapters, and the rule for publishing them.

- :mod:`perturbx.book.chapter`: what a chapter notebook calls (:func:`start_chapter`, :class:`Chapter`, profiles,
  provenance record) and the layout of the results folder (:data:`BOOK_DIR`, :data:`RESULTS_DIR`,
  :data:`PROVENANCE_FILE`, :data:`RUNS_LOG`). Re-exported here, so a chapter writes
  ``from perturbx import book; chapter = book.start_chapter(...)``.
- :mod:`perturbx.book.runner`: ``perturbx book run``: executes chapters with papermill, writes their tables,
  provenance records and the runs log (``run_chapters``, ``chapter_paths``, ``time_chapter``, ``ChapterFailed``).
- :mod:`perturbx.book.publishing`: what a stored chapter may not show (``executed_problems``) and the tidying of
  its progress-bar output (``tidy_streams``, ``is_progress_line``); used by the runner, the HTML build
  (:mod:`perturbx.sphinxext`) and the tests.

Importing this package imports neither papermill nor nbformat (chapter kernels import it). The runner's and the
publishing rule's names are still reachable as ``perturbx.book.<name>`` for older callers, imported on first use;
new code imports them from their modules.
"""

from __future__ import annotations

from importlib import import_module

from .chapter import (
    BOOK_DIR,
    PROFILE_ENV,
    PROFILES,
    PROVENANCE_FILE,
    RESULTS_DIR,
    RESULTS_ENV,
    RUNS_LOG,
    Chapter,
    resolve_profile,
    start_chapter,
)

__all__ = ["BOOK_DIR", "PROFILES", "PROFILE_ENV", "PROVENANCE_FILE", "RESULTS_DIR", "RESULTS_ENV", "RUNS_LOG",
           "Chapter", "resolve_profile", "start_chapter"]

# Names that moved to the runner and publishing modules, forwarded lazily so the kernel never imports papermill.
_FORWARDED = {"run_chapters": "runner", "time_chapter": "runner", "chapter_paths": "runner",
              "ChapterFailed": "runner", "RUNS_LOG_COLUMNS": "runner", "executed_problems": "publishing",
              "tidy_streams": "publishing", "is_progress_line": "publishing"}


def __getattr__(name: str) -> object:
    """``perturbx.book.<name>`` for a name of :mod:`~perturbx.book.runner` or :mod:`~perturbx.book.publishing`."""
    if name in _FORWARDED:
        return getattr(import_module(f"{__name__}.{_FORWARDED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
