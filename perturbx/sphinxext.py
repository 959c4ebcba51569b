"""A Sphinx extension that makes the book's HTML build fail on a chapter that is not fit to publish, and keeps
the rendered book offline.

The build renders the outputs stored in the chapters and never executes them, so a chapter whose last run failed
(an error output, a traceback, cells that never ran, no provenance line) would otherwise be published as it is.
Enabled in ``_config.yml`` (``sphinx.extra_extensions``); every problem that
:func:`perturbx.book.publishing.executed_problems` finds becomes a Sphinx warning naming the notebook and the cell,
and the strict build (``jupyter-book build . -W -n --keep-going``) turns warnings into a failed build.

When the HTML is written, :func:`serve_offline` copies MathJax into ``_static/mathjax`` (the book's
``mathjax_path`` points there) and fails the build if any page or stylesheet still loads a resource from the
network (:func:`perturbx.book.offline.external_resources`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

from . import __version__
from .book.chapter import RESULTS_DIR
from .book.offline import copy_mathjax, external_resources
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


def serve_offline(app: Sphinx, exception: Exception | None) -> None:
    """After a successful HTML build: copy MathJax and the chapters' result tables (``book/results`` ->
    ``results/``) next to the pages, then refuse the build if a page or stylesheet would fetch anything from the
    network (listing each file and address)."""
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    copy_mathjax(outdir / "_static")
    results = Path(app.srcdir) / "book" / RESULTS_DIR.name
    if results.is_dir():  # every table as CSV beside the pages that show it (book/<chapter>.html -> ../results/)
        shutil.copytree(results, outdir / RESULTS_DIR.name, dirs_exist_ok=True)
    found = external_resources(outdir)
    if found:
        listed = "\n".join(f"  {page}: {url}" for page, url in found)
        raise ExtensionError(f"the book must load nothing from the network, but {len(found)} resource(s) are "
                             f"external:\n{listed}\nServe them from _static (see perturbx/book/offline.py).")


def setup(app: Sphinx) -> dict:
    """Register :func:`check_chapters` (builder start) and :func:`serve_offline` (build end); the extension is
    safe in parallel builds."""
    app.connect("builder-inited", check_chapters)
    app.connect("build-finished", serve_offline)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
