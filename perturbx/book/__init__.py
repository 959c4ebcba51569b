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

- :mod:`perturbx.book.reproduction`: the Reproduction page, from the results folder only; ``run_box_for`` fills a
  chapter's "Run this chapter" box.

- :mod:`perturbx.book.failures`: :class:`ChapterFailed`, which the command line catches without importing a runner.

Importing this package imports none of these modules: each name is imported on first use
(``perturbx.book.start_chapter`` imports the chapter module; chapter kernels never import papermill or nbformat, and
the command line starts without pandas or torch). New code imports the names from their modules.
"""

from __future__ import annotations

from importlib import import_module

__all__ = ["BOOK_DIR", "PROFILES", "PROFILE_ENV", "PROVENANCE_FILE", "RESULTS_DIR", "RESULTS_ENV", "RUNS_LOG",
           "Chapter", "resolve_profile", "start_chapter"]

# Every name is imported on first use: the command line imports perturbx.book.failures without pandas or torch,
# and a chapter kernel never imports papermill.
_FORWARDED = {name: "chapter" for name in __all__} | {
    "run_chapters": "runner", "time_chapter": "runner", "chapter_paths": "runner", "ChapterFailed": "failures",
    "RUNS_LOG_COLUMNS": "runner", "executed_problems": "publishing", "tidy_streams": "publishing",
    "is_progress_line": "publishing", "run_box_for": "reproduction"}


def __getattr__(name: str) -> object:
    """``perturbx.book.<name>``, imported from its module on first use."""
    if name in _FORWARDED:
        return getattr(import_module(f"{__name__}.{_FORWARDED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
