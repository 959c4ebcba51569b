"""The rendered book loads nothing from the network (perturbx.book.offline)."""

import pytest

from perturbx.book.offline import MATHJAX_ENTRY, copy_mathjax, external_resources, mathjax_source


def test_external_resources_finds_scripts_stylesheets_images_and_css_urls(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "page.html").write_text(
        '<html><head><script src="https://cdn.example.org/x.js"></script>'
        '<script src="../_static/local.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/font.css">'
        '<style>@import url("https://example.org/a.css"); .x { background: url(data:image/png;base64,AA) }</style>'
        '</head><body><a href="https://doi.org/10.1/x">a citation link is fine</a>'
        '<img src="http://example.org/fig.png"><div style="background: url(\'https://example.org/b.png\')"></div>'
        '</body></html>')
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "theme.css").write_text("@font-face { src: url(https://example.org/f.woff2) }\n"
                                                     ".y { background: url('../img/local.png') }")
    found = external_resources(tmp_path)
    assert found == [
        ("book/page.html", "https://cdn.example.org/x.js"),
        ("book/page.html", "//fonts.example.org/font.css"),
        ("book/page.html", "https://example.org/a.css"),
        ("book/page.html", "http://example.org/fig.png"),
        ("book/page.html", "https://example.org/b.png"),
        ("_static/theme.css", "https://example.org/f.woff2"),
    ]


def test_a_local_page_has_no_external_resources(tmp_path):
    (tmp_path / "index.html").write_text('<script src="_static/mathjax/tex-chtml.js"></script><a href="http://x.org">x</a>')
    assert external_resources(tmp_path) == []


def test_copy_mathjax_takes_the_entry_script_and_what_it_loads(tmp_path):
    source = tmp_path / "es5"
    for part in ("input/tex/extensions/ams.js", "output/chtml/fonts/woff-v2/a.woff", "output/chtml.js",
                 "output/svg/fonts/tex.js", "tex-svg.js", MATHJAX_ENTRY):
        (source / part).parent.mkdir(parents=True, exist_ok=True)
        (source / part).write_text("//")
    target = copy_mathjax(tmp_path / "static", source)
    copied = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert copied == ["input/tex/extensions/ams.js", "output/chtml.js", "output/chtml/fonts/woff-v2/a.woff",
                      MATHJAX_ENTRY]  # not the SVG output, not the other bundles


def test_the_pinned_mathjax_package_is_installed():
    pytest.importorskip("sphinx")
    assert (mathjax_source() / MATHJAX_ENTRY).is_file()
