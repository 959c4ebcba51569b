"""The pathway co-membership gene graph (input of the GNN's cell-line encoder)."""

import itertools

import numpy as np
import pandas as pd
import pytest

from perturbx.pathways import GeneGraph, gene_graph, read_gmt

SYMBOLS = list("ABCDEFGH")  # positions 0..7
A, B, C, D, E, F, G, H = range(8)

# P1 and P2 share A and B; BIG has 6 landmark genes; P4 has a non-landmark gene; P5 and P6 have one landmark gene
HAND_GMT = """P1\tR-1\tA\tB\tC
P2\tR-2\tA\tB
BIG\tR-3\tC\tD\tE\tF\tG\tH
P4\tR-4\tD\tE\tNOTLANDMARK
P5\tR-5\tF
P6\tR-6\tA\tNOTLANDMARK2
"""

# A-B and C-D strong (two pathways each), B-C weak; E is a hub: E-F strong, E-G and E-H weaker
PRUNE_GMT = """AB1\tx\tA\tB
AB2\tx\tA\tB
CD1\tx\tC\tD
CD2\tx\tC\tD
BC\tx\tB\tC
EF1\tx\tE\tF
EF2\tx\tE\tF
EG\tx\tE\tG
EH\tx\tE\tH
"""


@pytest.fixture
def genes() -> pd.DataFrame:
    return pd.DataFrame({"gene_symbol": SYMBOLS, "gene_id": range(100, 108)})


def write_gmt(tmp_path, text: str) -> dict[str, list[str]]:
    path = tmp_path / "pathways.gmt"
    path.write_text(text)
    return read_gmt(path)


def edge_weights(graph: GeneGraph) -> dict[tuple[int, int], float]:
    return {(int(i), int(j)): float(w) for (i, j), w in zip(graph.edge_index.T, graph.edge_weight)}


def undirected(graph: GeneGraph) -> set[tuple[int, int]]:
    return {(min(i, j), max(i, j)) for i, j in graph.edge_index.T.tolist()}


def assert_well_formed(graph: GeneGraph, n_genes: int):
    assert graph.n_genes == n_genes
    assert graph.edge_index.dtype == np.int64 and graph.edge_index.shape == (2, len(graph.edge_weight))
    assert graph.edge_weight.dtype == np.float32 and (graph.edge_weight > 0).all()
    assert ((graph.edge_index >= 0) & (graph.edge_index < n_genes)).all()
    pairs = [tuple(p) for p in graph.edge_index.T.tolist()]
    assert len(set(pairs)) == len(pairs), "duplicate edges"
    assert all(i != j for i, j in pairs), "self loop"
    weights = edge_weights(graph)
    for (i, j), w in weights.items():
        assert (j, i) in weights, f"edge {i}->{j} stored in one direction only"
        assert weights[(j, i)] == w


def test_hand_checked_graph_drops_large_and_single_gene_pathways(tmp_path, genes):
    graph = gene_graph(write_gmt(tmp_path, HAND_GMT), genes, max_pathway_size=5)
    assert_well_formed(graph, 8)
    # BIG (6 landmarks) is too large, P5 and P6 have a single landmark gene
    assert graph.pathways == {"P1": [A, B, C], "P2": [A, B], "P4": [D, E]}
    expected = {(A, B): 1 / 2 + 1 / 1,  # P1 (|p| = 3) and P2 (|p| = 2)
                (A, C): 1 / 2, (B, C): 1 / 2,  # P1 only
                (D, E): 1.0}  # P4: |p| counts landmark genes only (2, not 3)
    weights = edge_weights(graph)
    assert set(weights) == set(expected) | {(j, i) for i, j in expected}
    for (i, j), w in expected.items():
        assert weights[(i, j)] == pytest.approx(w) and weights[(j, i)] == pytest.approx(w)
    # BIG's genes F, G, H are in no other kept pathway: isolated nodes
    np.testing.assert_array_equal(graph.isolated(), [F, G, H])
    np.testing.assert_array_equal(graph.degree(), [2, 2, 2, 1, 1, 0, 0, 0])
    assert graph.summary() == {"genes": 8, "pathways used": 3, "undirected edges": 4, "genes in a kept pathway": 5,
                               "isolated genes": 3, "median degree": 1.0, "max degree": 2}


def test_hand_checked_graph_with_the_large_pathway(tmp_path, genes):
    graph = gene_graph(write_gmt(tmp_path, HAND_GMT), genes, max_pathway_size=6)
    assert_well_formed(graph, 8)
    assert list(graph.pathways) == ["P1", "P2", "BIG", "P4"] and graph.pathways["BIG"] == [C, D, E, F, G, H]
    weights = edge_weights(graph)
    expected = {(A, B): 1.5, (A, C): 0.5, (B, C): 0.5}
    for i, j in itertools.combinations([C, D, E, F, G, H], 2):
        expected[(i, j)] = 1 / 5  # BIG, |p| = 6
    expected[(D, E)] = 1 / 5 + 1  # BIG and P4
    assert set(weights) == set(expected) | {(j, i) for i, j in expected}
    for (i, j), w in expected.items():
        assert weights[(i, j)] == pytest.approx(w, rel=1e-6) and weights[(j, i)] == pytest.approx(w, rel=1e-6)
    assert graph.isolated().size == 0
    np.testing.assert_array_equal(graph.degree(), [2, 2, 7, 5, 5, 5, 5, 5])
    assert graph.summary() == {"genes": 8, "pathways used": 4, "undirected edges": 18, "genes in a kept pathway": 8,
                               "isolated genes": 0, "median degree": 5.0, "max degree": 7}


def test_min_pathway_size(tmp_path, genes):
    graph = gene_graph(write_gmt(tmp_path, HAND_GMT), genes, max_pathway_size=100, min_pathway_size=3)
    assert list(graph.pathways) == ["P1", "BIG"]
    weights = edge_weights(graph)
    assert weights[(A, B)] == pytest.approx(0.5)  # P2 dropped
    assert weights[(D, E)] == pytest.approx(0.2)  # P4 dropped


def test_max_neighbours_keeps_the_strongest_links(tmp_path, genes):
    gene_sets = write_gmt(tmp_path, PRUNE_GMT)
    full = gene_graph(gene_sets, genes)
    assert undirected(full) == {(A, B), (C, D), (B, C), (E, F), (E, G), (E, H)}
    # one neighbour each: A, B keep each other; C, D too; B-C is the second link of both ends and goes;
    # E keeps only F, but G and H have E as their only partner, so E-G and E-H stay
    pruned = gene_graph(gene_sets, genes, max_neighbours=1)
    assert_well_formed(pruned, 8)
    assert undirected(pruned) == {(A, B), (C, D), (E, F), (E, G), (E, H)}
    weights = edge_weights(pruned)
    assert weights[(A, B)] == pytest.approx(2.0) and weights[(E, F)] == pytest.approx(2.0)
    assert weights[(E, G)] == pytest.approx(1.0) and weights[(H, E)] == pytest.approx(1.0)
    np.testing.assert_array_equal(pruned.degree(), [1, 1, 1, 1, 3, 1, 1, 1])
    assert pruned.summary()["undirected edges"] == 5 and pruned.summary()["max degree"] == 3
    # the pathways are the same: pruning acts on edges only
    assert pruned.pathways == full.pathways
    assert undirected(gene_graph(gene_sets, genes, max_neighbours=2)) == undirected(full)


def reference_weights(gene_sets, genes, max_size, min_size) -> np.ndarray:
    """Brute force: for every kept pathway and every pair of its landmark genes add 1 / (|p| - 1)."""
    position = {s: i for i, s in enumerate(genes["gene_symbol"])}
    weights = np.zeros((len(genes), len(genes)))
    for members in gene_sets.values():
        hits = sorted({position[g] for g in members if g in position})
        if min_size <= len(hits) <= max_size:
            for i, j in itertools.permutations(hits, 2):
                weights[i, j] += 1 / (len(hits) - 1)
    return weights


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_neighbours", [1, 3, 50])
def test_random_gene_sets_against_brute_force(seed, max_neighbours):
    rng = np.random.default_rng(seed)
    symbols = [f"G{i}" for i in range(30)]
    genes = pd.DataFrame({"gene_symbol": rng.permutation(symbols)})  # node order = row order, not name order
    gene_sets = {f"S{p}": list(rng.choice(symbols + ["X1", "X2", "X3"], size=rng.integers(1, 12), replace=False))
                 for p in range(15)}
    graph = gene_graph(gene_sets, genes, max_pathway_size=8, max_neighbours=max_neighbours)
    assert_well_formed(graph, 30)
    expected = reference_weights(gene_sets, genes, max_size=8, min_size=2)
    for (i, j), w in edge_weights(graph).items():
        assert w == pytest.approx(expected[i, j], rel=1e-6)
    kept = np.zeros_like(expected, dtype=bool)
    kept[tuple(graph.edge_index)] = True
    assert not (kept & (expected == 0)).any(), "an edge between genes that share no kept pathway"
    for i, j in zip(*np.nonzero(expected)):
        others_i = np.delete(expected[i], j)  # i's other partners
        others_j = np.delete(expected[j], i)
        # certainly among the strongest max_neighbours of an end (no tie at the boundary): must be kept
        if (others_i >= expected[i, j]).sum() < max_neighbours or (others_j >= expected[i, j]).sum() < max_neighbours:
            assert kept[i, j], (i, j)
        # kept: at least one end has fewer than max_neighbours partners strictly stronger
        if kept[i, j]:
            assert (others_i > expected[i, j]).sum() < max_neighbours or \
                (others_j > expected[i, j]).sum() < max_neighbours
    # every gene keeps min(max_neighbours, partners) links of its own, and links only to partners
    degree = graph.degree()
    partners = (expected > 0).sum(axis=1)
    assert (degree >= np.minimum(partners, max_neighbours)).all() and (degree <= partners).all()
    in_pathway = np.zeros(30, dtype=bool)
    for members in graph.pathways.values():
        assert 2 <= len(members) <= 8
        in_pathway[members] = True
    np.testing.assert_array_equal(graph.isolated(), np.flatnonzero(partners == 0))
    summary = graph.summary()
    assert summary["genes in a kept pathway"] == in_pathway.sum()
    assert summary["isolated genes"] == (partners == 0).sum()
    assert summary["undirected edges"] == kept.sum() // 2 and summary["max degree"] == degree.max()
    assert summary["median degree"] == np.median(degree)


def test_no_pathways_gives_isolated_genes(genes):
    graph = gene_graph({"other": ["X", "Y"]}, genes)
    assert graph.edge_index.shape == (2, 0) and graph.edge_weight.shape == (0,) and graph.pathways == {}
    np.testing.assert_array_equal(graph.isolated(), np.arange(8))
    assert graph.summary() == {"genes": 8, "pathways used": 0, "undirected edges": 0, "genes in a kept pathway": 0,
                               "isolated genes": 8, "median degree": 0.0, "max degree": 0}


def test_single_gene_pathway_with_min_size_one_adds_no_edges(genes):
    graph = gene_graph({"single": ["A"], "pair": ["B", "C"]}, genes, min_pathway_size=1)
    assert undirected(graph) == {(B, C)}
    assert graph.summary()["genes in a kept pathway"] == 3
