"""Pathway gene sets (GMT) restricted to the L1000 landmark genes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_gmt(path: Path | str) -> dict[str, list[str]]:
    """Read a GMT file: one gene set per line, ``name<TAB>description<TAB>gene<TAB>gene...``.

    Returns:
        name -> gene symbols (order kept, duplicates removed).

    Raises:
        ValueError: a line with fewer than three fields or a duplicated set name, naming the line.
    """
    sets: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\n\r").split("\t")
            if not line.strip():
                continue
            if len(fields) < 3:
                raise ValueError(f"{path}, line {number}: a GMT line needs a name, a description and genes")
            name = fields[0]
            if name in sets:
                raise ValueError(f"{path}, line {number}: gene set {name!r} appears twice")
            sets[name] = list(dict.fromkeys(g for g in fields[2:] if g))
    return sets


def landmark_gene_sets(gene_sets: dict[str, list[str]], genes: pd.DataFrame, min_size: int = 1,
                       max_size: int | None = None) -> dict[str, list[int]]:
    """Gene sets as positions among the landmark genes, keeping sets of ``min_size``..``max_size`` landmarks.

    Args:
        gene_sets: name -> symbols, e.g. from :func:`read_gmt`.
        genes: landmark table with a ``gene_symbol`` column (row order = positions).

    Returns:
        name -> sorted positions (ints) of the set's landmark genes.
    """
    position = {symbol: i for i, symbol in enumerate(genes["gene_symbol"])}
    out = {}
    for name, members in gene_sets.items():
        hits = sorted({position[g] for g in members if g in position})
        if len(hits) >= min_size and (max_size is None or len(hits) <= max_size):
            out[name] = hits
    return out
