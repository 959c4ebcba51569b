"""The data the L1000 chapters (03 graph model, 04 diffusion) load, in the shapes their studies take.

- :func:`landmark_gene_sets`: the 978 landmark genes, the Reactome gene sets and the pathway gene graph over them;
- :func:`simulated_benchmark`: the LINCS-scale simulator of a profile and its featurised inputs;
- :func:`replicate_plate`: the SKBR3 dose x time plate (real replicate wells) and its inputs;
- :func:`consensus_drugs`: the DrugBank consensus signatures;
- :func:`true_changes`, :func:`simulator_truth`: what the simulator knows about its profiles;
- :func:`gsea_options`: the Reactome gene sets and landmark symbols GSEA ranks over.

Each is a short composition of the data and task layers, so that a chapter calls its study and nothing below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..datasets import consensus, fetch, pharmacoset
from ..datasets.cmap import landmark_genes
from ..datasets.curated import CuratedL1000
from ..datasets.simulate import Simulation, lincs_scale_config, simulate
from ..pathways import GeneGraph, gene_graph, read_gmt
from ..tasks import l1000
from ..tasks.l1000 import Inputs, Truth, build_inputs


@dataclass(frozen=True)
class GeneSets:
    """The landmark genes (``gene_symbol`` among the columns, one row per gene in the data's gene order), the
    Reactome gene sets (name -> gene symbols) and, when built, the pathway gene graph over the landmark genes."""

    genes: pd.DataFrame
    pathways: dict[str, list[str]]
    graph: GeneGraph | None = None


def landmark_gene_sets(graph: bool = True, max_pathway_size: int = 100, max_neighbours: int = 16) -> GeneSets:
    """The landmark genes and Reactome pathways (fetched and verified), with the gene graph of the graph model
    (pathways of at most ``max_pathway_size`` landmark genes, each gene linked to at most ``max_neighbours``)."""
    genes, pathways = landmark_genes(), read_gmt(fetch("reactome_pathways"))
    if not graph:
        return GeneSets(genes, pathways)
    return GeneSets(genes, pathways, gene_graph(pathways, genes, max_pathway_size=max_pathway_size,
                                                max_neighbours=max_neighbours))


def simulated_benchmark(profile: str, seed: int, graph: GeneGraph | None = None) -> tuple[Simulation, Inputs]:
    """The LINCS-scale simulator of ``profile`` (:func:`perturbx.datasets.simulate.lincs_scale_config`) drawn with
    ``seed``, and its inputs (compound graphs, fingerprints and, with ``graph``, the gene graph)."""
    simulation = simulate(lincs_scale_config(profile, seed=seed))
    return simulation, build_inputs(simulation.data, graph)


def replicate_plate() -> tuple[CuratedL1000, Inputs]:
    """The SKBR3 dose x time plate with its replicate wells (:func:`perturbx.datasets.pharmacoset.read_pharmacoset`)
    and its inputs."""
    plate = pharmacoset.read_pharmacoset()[0]
    return plate, build_inputs(plate)


def consensus_drugs() -> CuratedL1000:
    """The DrugBank consensus signatures (:func:`perturbx.datasets.consensus.read_consensus`)."""
    return consensus.read_consensus()[0]


def true_changes(simulation: Simulation):
    """The simulator's exact mean change of each profile's condition, (n, genes) float32
    (:func:`perturbx.tasks.l1000.true_changes`)."""
    return l1000.true_changes(simulation)


def simulator_truth(simulation: Simulation, n_reference: int, seed: int) -> Truth:
    """Exact moments and fresh reference draws (``n_reference`` per condition, seeded by ``seed``) of the
    simulator's test conditions (:class:`perturbx.tasks.l1000.Truth`)."""
    return Truth(simulation, n_reference, seed=seed)


def gsea_options(permutations: int, seed: int) -> dict:
    """Keyword arguments of a GSEA comparison: the Reactome gene sets, the landmark gene symbols in the data's gene
    order, the number of permutations and the seed."""
    return {"gene_sets": read_gmt(fetch("reactome_pathways")), "symbols": landmark_genes()["gene_symbol"].to_numpy(),
            "permutations": permutations, "seed": seed}
