"""The book's bibliography (references.bib) covers the papers, the methods they build on and every data source."""

import tomllib

import pytest
from pybtex.database import parse_file

from perturbx.datasets.registry import REGISTRY_TOML

from .conftest import REPO_ROOT

REQUIRED = {"diffusion_paper", "graph_paper", "drp_paper", "deepdra", "prnet", "chemcpa", "lincs", "gdsc", "ctrp",
            "ccle", "reactome", "drugbank", "dhimmel"}


@pytest.fixture(scope="module")
def entries():
    return parse_file(str(REPO_ROOT / "references.bib")).entries


def test_every_registry_citation_has_a_bibliography_entry(entries):
    keys = set(tomllib.loads(REGISTRY_TOML.read_text())["citations"])
    assert keys and keys <= set(entries), f"registry citations missing from references.bib: {keys - set(entries)}"


def test_the_papers_methods_and_data_are_in_the_bibliography(entries):
    assert REQUIRED <= set(entries), REQUIRED - set(entries)
    for key in ("diffusion_paper", "graph_paper", "drp_paper"):
        fields = entries[key].fields
        assert "[" in fields["title"], f"{key}: the Korean title with an English translation in brackets"
        assert entries[key].persons["author"], key
    for key, entry in entries.items():
        assert entry.fields.get("title"), key
