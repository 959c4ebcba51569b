"""A Sphinx extension that makes the book's HTML build fail on a chapter that is not fit to publish.

The build renders the outputs stored in the chapters and never executes them, so a chapter whose last run failed
(an error output, a traceback, cells that never ran, no provenance line) would otherwise be published as it is.
Enabled in ``_config.yml`` (``sphinx.extra_extensions``); every problem that
:func:`perturbx.book.publishing.executed_problems` finds becomes a Sphinx warning naming the notebook and the cell,
and the strict build (``jupyter-book build . -W -n --keep-going``) turns warnings into a failed build.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from sphinx.application import Sphinx
from sphinx.util import logging

from . import __version__
from .book.publishing import executed_problems
from .book.runner import chapter_paths

logger = logging.getLogger(__name__)


def check_chapters(app: Sphinx) -> None:
    """Warn once per problem of every chapter notebook under ``<source>/book`` (all of them, every build: an
    incremental build would not re-read an unchanged, still broken chapter)."""
    for path in chapter_paths(Path(app.srcdir) / "book"):
        for problem in executed_problems(nbformat.read(path, as_version=4)):
            logger.warning("%s: %s. Fix the chapter and run `perturbx book run --chapters %s` again.",
                           path, problem, path.stem)


def setup(app: Sphinx) -> dict:
    """Register :func:`check_chapters` to run when the builder starts; the extension is safe in parallel builds."""
    app.connect("builder-inited", check_chapters)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
