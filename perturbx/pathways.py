"""Pathway gene sets (GMT) restricted to the L1000 landmark genes, and the gene graph built from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import spearmanr


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


@dataclass
class GeneGraph:
    """A gene-gene graph over the landmark genes, built from pathway co-membership.

    Attributes:
        edge_index: int64 (2, n_edges) directed edges (both directions stored), landmark positions.
        edge_weight: float32 (n_edges,) co-membership weight of each edge (see :func:`gene_graph`).
        pathways: the pathways used: name -> sorted landmark positions.
        n_genes: number of nodes (978 for landmark genes).
    """

    edge_index: np.ndarray
    edge_weight: np.ndarray
    pathways: dict[str, list[int]]
    n_genes: int

    def degree(self) -> np.ndarray:
        """(n_genes,) number of neighbours of each gene."""
        return np.bincount(self.edge_index[0], minlength=self.n_genes)

    def isolated(self) -> np.ndarray:
        """Positions of genes with no neighbour (in no kept pathway with another landmark gene)."""
        return np.flatnonzero(self.degree() == 0)

    def summary(self) -> dict:
        """Counts describing the graph: genes, pathways used, undirected edges, isolated genes and degrees."""
        degree = self.degree()
        in_pathway = np.zeros(self.n_genes, dtype=bool)
        for members in self.pathways.values():
            in_pathway[members] = True
        return {"genes": self.n_genes, "pathways used": len(self.pathways),
                "undirected edges": int(self.edge_index.shape[1] // 2),
                "genes in a kept pathway": int(in_pathway.sum()), "isolated genes": int((degree == 0).sum()),
                "median degree": float(np.median(degree)), "max degree": int(degree.max())}


def gene_graph(gene_sets: dict[str, list[str]], genes: pd.DataFrame, max_pathway_size: int = 100,
               min_pathway_size: int = 2, max_neighbours: int = 16) -> GeneGraph:
    """Landmark gene graph from pathway co-membership.

    Construction:
      1. Each pathway is restricted to the landmark genes; pathways with fewer than ``min_pathway_size`` or more
         than ``max_pathway_size`` landmark genes are dropped (the huge ones, e.g. "Signal Transduction", would
         connect almost every gene to every other and carry no specific information).
      2. Two genes are linked when they share a kept pathway. The weight sums, over shared pathways p,
         ``1 / (|p| - 1)``: each gene spreads one unit of weight over its partners in each pathway, so small,
         specific pathways give strong ties and large ones weak ties.
      3. Each gene keeps its ``max_neighbours`` strongest links; an edge is kept when either end keeps it, and is
         stored in both directions (the graph stays undirected).
      4. Landmark genes in no kept pathway (with another landmark gene) stay as isolated nodes: the model's
         self-loops pass their own features through, so they still inform the cell token.

    Args:
        gene_sets: name -> gene symbols, e.g. from :func:`read_gmt`.
        genes: landmark table with ``gene_symbol`` (row order = node order).

    Returns:
        :class:`GeneGraph`.
    """
    n = len(genes)
    pathways = landmark_gene_sets(gene_sets, genes, min_size=min_pathway_size, max_size=max_pathway_size)
    rows, cols, values = [], [], []
    for p, members in enumerate(pathways.values()):
        if len(members) < 2:  # a one-gene pathway links nothing (and 1 / (|p| - 1) is undefined)
            continue
        rows += [p] * len(members)
        cols += members
        values += [1.0 / (len(members) - 1)] * len(members)
    membership = sparse.csr_matrix((values, (rows, cols)), shape=(len(pathways), n))
    weights = (membership.T @ (membership > 0).astype(np.float64)).toarray()  # sum_p [i,j in p] / (|p| - 1)
    np.fill_diagonal(weights, 0.0)
    keep = np.zeros_like(weights, dtype=bool)
    for i in np.flatnonzero(weights.max(axis=1) > 0):
        partners = np.flatnonzero(weights[i] > 0)
        strongest = partners[np.argsort(-weights[i, partners], kind="stable")[:max_neighbours]]
        keep[i, strongest] = True
    keep |= keep.T
    source, target = np.nonzero(keep)
    return GeneGraph(np.stack([source, target]).astype(np.int64), weights[source, target].astype(np.float32),
                     pathways, n)


def prerank(signature: pd.Series, gene_sets: dict[str, list[str]], min_size: int = 10, max_size: int = 100,
            permutations: int = 200, seed: int = 0) -> pd.DataFrame:
    """GSEA prerank (gseapy) of one signature against gene sets, offline.

    Args:
        signature: gene symbol -> score (e.g. a log2 change; higher = more up-regulated); NaN scores are an error.
            Tied scores (e.g. the exact zeros of genes a simulated compound does not touch) are ordered by gene
            symbol, nudged apart by 1e-9 of the largest |score|, so the result does not depend on input order.
        gene_sets: name -> symbols (e.g. :func:`read_gmt`); sets are restricted to the signature's genes and kept
            when ``min_size``..``max_size`` of their genes are there.
        permutations: gene-set permutations for the p-values and FDR.

    Returns:
        One row per tested set, index ``pathway``: ``nes`` (normalised enrichment score), ``fdr`` (q-value),
        ``size`` (genes of the set in the signature); sorted by NES, most up-regulated first.
    """
    import gseapy  # noqa: PLC0415 (optional dependency: the `book` extra)

    if signature.isna().any():
        raise ValueError(f"signature has {int(signature.isna().sum())} NaN scores (e.g. gene "
                         f"{signature.index[signature.isna()][0]!r}); drop or fill them before GSEA")
    present = set(signature.index)
    restricted = {name: [g for g in members if g in present] for name, members in gene_sets.items()}
    restricted = {name: members for name, members in restricted.items() if min_size <= len(members) <= max_size}
    if not restricted:
        raise ValueError(f"no gene set has {min_size}-{max_size} genes of the signature; check that the signature "
                         "is indexed by gene symbols")
    ranked = signature.astype(float).sort_index()
    tied = ranked.duplicated(keep=False)
    if tied.any():
        step = 1e-9 * max(float(ranked.abs().max()), 1e-12)
        ranked[tied] -= ranked[tied].groupby(ranked[tied]).cumcount().to_numpy() * step
    result = gseapy.prerank(rnk=ranked, gene_sets=restricted, min_size=min_size,
                            max_size=max_size, permutation_num=permutations, threads=1, no_plot=True, outdir=None,
                            seed=seed, verbose=False).res2d
    table = pd.DataFrame({"pathway": result["Term"].to_numpy(), "nes": result["NES"].astype(float).to_numpy(),
                          "fdr": result["FDR q-val"].astype(float).to_numpy()})
    table["size"] = [len(restricted[p]) for p in table["pathway"]]
    return table.set_index("pathway").sort_values("nes", ascending=False)


def pathway_agreement(real: pd.DataFrame, predicted: pd.DataFrame, k: int = 10) -> dict[str, float]:
    """How well two :func:`prerank` tables agree: shared pathways among the top-``k`` up (highest NES) and top-``k``
    down (lowest NES), as fractions of k, and the Spearman correlation of NES over the pathways both tested."""
    common = real.index.intersection(predicted.index)

    def top(table: pd.DataFrame, ascending: bool) -> set:
        return set(table.loc[common, "nes"].sort_values(ascending=ascending).index[:k])

    return {"top_up_shared": len(top(real, False) & top(predicted, False)) / k,
            "top_down_shared": len(top(real, True) & top(predicted, True)) / k,
            "nes_spearman": float(spearmanr(real.loc[common, "nes"], predicted.loc[common, "nes"])[0])}
