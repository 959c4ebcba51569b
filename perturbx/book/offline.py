"""The rendered book loads nothing from the network: MathJax is served from the book, and a check finds any page
or stylesheet that still points at an external script, stylesheet, font or image.

Readers open the HTML offline (a laptop on a train, a cluster without internet); a formula that needs a CDN shows as
raw TeX there. MathJax 3 comes from the pinned PyPI package ``django-static-mathjax`` (MathJax's own ``es5``
build, Apache-2.0); :func:`copy_mathjax` puts the part the book uses under ``_static/mathjax`` and the book's
``mathjax_path`` points there. :func:`external_resources` is applied by the HTML build (:mod:`perturbx.sphinxext`),
which fails when it finds one. Links a reader clicks (``<a href>``) are not resources and stay allowed.
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

MATHJAX_PACKAGE = "django-static-mathjax"
MATHJAX_ENTRY = "tex-chtml.js"  # TeX input, CommonHTML output; extensions and fonts load from beside it
# what tex-chtml.js loads at run time (TeX extensions on demand, CHTML fonts, the menu and its speech rules)
_MATHJAX_PARTS = ("input/tex", "output/chtml", "output/chtml.js", "ui", "a11y", "sre", "adaptors")

_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)  # http://, https://, //host (not data:)
# url(...) anywhere (fonts, images, @import url(...)) and @import "..."
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)['"]""", re.IGNORECASE)
# (tag, attribute) pairs whose value the browser fetches when the page loads
_FETCHED = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"), ("source", "src"),
            ("video", "src"), ("audio", "src"), ("embed", "src"), ("object", "data")}


def _css_urls(text: str) -> list[str]:
    return [url or imported for url, imported in _CSS_URL.findall(text)]


class MathJaxMissingError(FileNotFoundError):
    """The MathJax package is not installed; the message names the fix."""


def mathjax_source() -> Path:
    """The folder of MathJax's ``es5`` build inside the installed ``django-static-mathjax`` package.

    Raises:
        MathJaxMissingError: the package is not installed (``pip install -e '.[book]'`` installs it).
    """
    try:
        root = Path(str(resources.files("mathjax"))) / "static" / "mathjax" / "es5"
    except ModuleNotFoundError:
        root = None
    if root is None or not (root / MATHJAX_ENTRY).is_file():
        raise MathJaxMissingError(f"MathJax is not installed: the book serves it from the package {MATHJAX_PACKAGE} "
                                  f"(pinned in pyproject.toml). Run `make venv` or `pip install -e '.[book]'`.")
    return root


def copy_mathjax(static_dir: Path | str, source: Path | str | None = None) -> Path:
    """Copy MathJax's entry script and what it loads at run time into ``<static_dir>/mathjax``; returns that
    folder. ``source``: an ``es5`` folder (default: :func:`mathjax_source`)."""
    source = Path(source) if source is not None else mathjax_source()
    target = Path(static_dir) / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / MATHJAX_ENTRY, target / MATHJAX_ENTRY)
    for part in _MATHJAX_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        elif (source / part).is_file():
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, target / part)
    return target


class _ResourceParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        self.urls += [values[name] for t, name in _FETCHED if t == tag and values.get(name)]
        self.urls += _css_urls(values.get("style") or "")
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = self._in_style and tag != "style"

    def handle_data(self, data):
        if self._in_style:
            self.urls += _css_urls(data)


def external_resources(html_dir: Path | str) -> list[tuple[str, str]]:
    """Every external resource the built book would fetch: (file relative to ``html_dir``, URL) for each script,
    stylesheet, font, image or frame of an HTML page, and each ``url(...)`` / ``@import`` of a stylesheet, whose
    address is absolute (``http://``, ``https://``, ``//host``). Links (``<a href>``) are not resources."""
    html_dir = Path(html_dir)
    found = []
    for path in sorted(html_dir.rglob("*.html")):
        parser = _ResourceParser()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        found += [(str(path.relative_to(html_dir)), url) for url in parser.urls if _EXTERNAL.match(url)]
    for path in sorted(html_dir.rglob("*.css")):
        urls = _css_urls(path.read_text(encoding="utf-8", errors="replace"))
        found += [(str(path.relative_to(html_dir)), url) for url in urls if _EXTERNAL.match(url)]
    return found
