"""The rendered book in a real browser.

``_build/html`` (built here with the strict command when it is missing or older than a chapter) is served on
localhost and every chapter is opened in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, installed
by ``make browser``, which ``make test`` runs). Each page must show every table and figure its notebook stores, its
provenance line, and no error output, traceback or warning. A full-page screenshot of each chapter is written to
``_build/screenshots/<chapter>.png`` (a long chapter in parts ``<chapter>-1.png``, ...) for a person to look at.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest

from perturbx.book import chapter_paths, is_progress_line
from perturbx.book.chapter import TABLE_LINK_CLASS
from perturbx.evaluation.claims import VERDICTS

from .conftest import REPO_ROOT

BUILD = REPO_ROOT / "_build" / "html"
SCREENSHOTS = REPO_ROOT / "_build" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
MAX_SCREENSHOT_HEIGHT = 16000  # px; Chromium cannot capture much taller pages in one image
SCREENSHOT_WIDTH = 1600  # px; a desktop reader's window, wide enough for the tables
CHAPTERS = chapter_paths()


def _build_is_stale() -> bool:
    index = BUILD / "index.html"
    sources = [*CHAPTERS, REPO_ROOT / "_config.yml", REPO_ROOT / "_toc.yml"]
    return not index.exists() or max(p.stat().st_mtime for p in sources) > index.stat().st_mtime


@pytest.fixture(scope="module")
def site() -> str:
    """Base URL of ``_build/html`` served on localhost (built first with the strict command if stale)."""
    if _build_is_stale():
        jupyter_book = Path(sys.executable).parent / "jupyter-book"
        built = subprocess.run([str(jupyter_book), "build", str(REPO_ROOT), "-W", "-n", "--keep-going"],
                               capture_output=True, text=True)
        assert built.returncode == 0, f"the strict HTML build failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    handler = functools.partial(_QuietHandler, directory=str(BUILD))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium driven through ChromeDriver, with no background network traffic."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: run `make browser` (installs Debian's chromium and "
                    "chromium-driver) before the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def expected_outputs(path: Path) -> dict:
    """What the stored notebook holds: its title, its provenance line, the number of HTML tables, PNG figures and
    table download links in its outputs, and the number of verdict boxes (``claims_box`` glued into Markdown)."""
    notebook = nbformat.read(path, as_version=4)
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    html = [output.data["text/html"] for output in outputs if "text/html" in output.get("data", {})]
    provenance = [line for output in outputs if output.output_type == "stream"
                  for line in output.text.splitlines() if line.startswith("Provenance: ")]
    return {"title": notebook.cells[0].source.splitlines()[0].lstrip("# ").strip(),
            "provenance": provenance[-1] if provenance else "Provenance: (none stored)",
            "tables": sum(text.count("<table") for text in html),
            "figures": sum("image/png" in output.get("data", {}) for output in outputs),
            "download_links": sum(text.count(TABLE_LINK_CLASS) for text in html),
            "verdict_boxes": sum(cell.source.count("{glue:md} claims_box") for cell in notebook.cells
                                 if cell.cell_type == "markdown")}


def assert_downloads_and_verdicts(driver, expected: dict) -> None:
    """Every table's CSV link is on the page and its file is served; every verdict box shows a computed verdict
    (the glued text, not the name of the glue)."""
    from urllib.request import urlopen

    from selenium.webdriver.common.by import By

    links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, f".{TABLE_LINK_CLASS} a")]
    assert len(links) == expected["download_links"], "every table has its download link"
    for href in links:
        with urlopen(href) as response:  # a local server; a missing CSV raises HTTPError 404
            assert response.status == 200 and response.read(1), f"empty download {href}"
    boxes = [box.text for box in driver.find_elements(By.CSS_SELECTOR, ".admonition")
             if "verdict" in box.text.splitlines()[0]]
    assert len(boxes) == expected["verdict_boxes"], "every verdict box is rendered"
    for text in boxes:
        assert any(verdict in text for verdict in VERDICTS) and "claims_box" not in text, text[:300]


def assert_formulas_rendered(driver) -> None:
    """Every formula of the page was typeset by the book's own MathJax: each ``.math`` element (Sphinx writes
    ``\\(...\\)`` / ``\\[...\\]`` into them) holds MathJax's output and no TeX delimiter is left in the text."""
    from selenium.webdriver.common.by import By

    formulas = driver.find_elements(By.CSS_SELECTOR, ".math")
    if not formulas:
        return
    driver.set_script_timeout(60)
    typeset = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (!window.MathJax || !MathJax.startup) { done('MathJax did not load'); return; }"
        "MathJax.startup.promise.then(() => done('ok')).catch(e => done(String(e)));")
    assert typeset == "ok", f"MathJax: {typeset}"
    scripts = [s.get_attribute("src") for s in driver.find_elements(By.CSS_SELECTOR, "script[src*='mathjax']")]
    assert scripts and all("/_static/mathjax/" in src for src in scripts), f"MathJax not served by the book: {scripts}"
    raw = [f.text[:60] for f in formulas if not f.find_elements(By.TAG_NAME, "mjx-container")]
    assert not raw, f"{len(raw)} of {len(formulas)} formulas were not typeset, e.g. {raw[:3]}"
    text = driver.find_element(By.TAG_NAME, "body").text
    assert "\\(" not in text and "\\[" not in text, "raw TeX delimiters left on the page"


def full_page_screenshots(driver, stem: str) -> list[Path]:
    """The whole page as ``<stem>.png`` when it fits in one capture, else as consecutive parts ``<stem>-1.png``,
    ``<stem>-2.png``, ... (each at most ``MAX_SCREENSHOT_HEIGHT`` high), so that a long chapter is seen to its end."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(SCREENSHOT_WIDTH, min(height + 200, MAX_SCREENSHOT_HEIGHT))
    step = int(driver.execute_script("return window.innerHeight"))  # the window's own frame takes some height
    parts = -(-height // step)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for stale in SCREENSHOTS.glob(f"{stem}*.png"):
        stale.unlink()
    targets = [SCREENSHOTS / (f"{stem}.png" if parts == 1 else f"{stem}-{part + 1}.png") for part in range(parts)]
    for part, target in enumerate(targets):
        driver.execute_script(f"window.scrollTo(0, {part * step});")
        assert driver.save_screenshot(str(target)), f"no screenshot written to {target}"
    driver.set_window_size(1280, 1000)
    return targets


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_page_shows_its_tables_figures_and_no_errors(site, browser, path):
    from selenium.webdriver.common.by import By

    expected = expected_outputs(path)
    browser.get(f"{site}/book/{path.stem}.html")
    assert expected["title"] in browser.find_element(By.CSS_SELECTOR, "article h1").text

    tables = browser.find_elements(By.CSS_SELECTOR, ".cell_output table")
    assert len(tables) == expected["tables"], "every stored table is rendered"
    assert all(table.find_elements(By.CSS_SELECTOR, "td") for table in tables), "no table is empty"
    figures = browser.execute_script(
        "return Array.from(document.querySelectorAll('.cell_output img')).map(i => i.complete && i.naturalWidth)")
    assert len(figures) == expected["figures"], "every stored figure is rendered"
    assert all(width and width > 0 for width in figures), f"a figure failed to load: widths {figures}"

    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Traceback (most recent call last)" not in text
    assert not browser.find_elements(By.CSS_SELECTOR, ".cell_output .traceback, .cell_output .output.error")
    for block in browser.find_elements(By.CSS_SELECTOR, ".cell_output .output.stderr"):
        noise = [line for line in block.text.splitlines() if line.strip() and not is_progress_line(line)]
        assert not noise, f"stderr other than progress bars on the page: {noise[:3]}"
    assert expected["provenance"] in text, "the provenance line is shown"
    assert_formulas_rendered(browser)
    assert_downloads_and_verdicts(browser, expected)

    assert all(shot.stat().st_size > 10_000 for shot in full_page_screenshots(browser, path.stem))


def test_every_chapter_is_linked_from_the_start_page(site, browser):
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def linked(selector: str) -> set[str]:
        return {a.get_attribute("href").split("#")[0].rsplit("/", 1)[-1]
                for a in browser.find_elements(By.CSS_SELECTOR, selector)}

    # A meta refresh leads to the first chapter, whose page then renders: wait for the elements read below (a busy
    # machine is slow), never for a fixed time; the page may replace an element while it is read.
    wait = WebDriverWait(browser, 60, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(f"{site}/index.html")
    wait.until(lambda driver: driver.current_url.endswith(f"{CHAPTERS[0].stem}.html"))
    chapters, later = {f"{path.stem}.html" for path in CHAPTERS}, {f"{path.stem}.html" for path in CHAPTERS[1:]}
    try:
        wait.until(lambda driver: chapters <= linked("nav a[href]") and later <= linked("article a[href]"))
    except TimeoutException:
        pass  # the assertions below say what is missing
    assert chapters <= linked("nav a[href]")
    assert later <= linked("article a[href]"), "the start page's text links every chapter"
