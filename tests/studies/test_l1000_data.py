"""The L1000 chapters' data loaders compose the data and task layers; the inputs match the data they came from."""

import numpy as np

from perturbx.studies import l1000_data


def test_the_simulated_benchmark_and_its_inputs_come_from_one_draw(mirror_env):
    sets = l1000_data.landmark_gene_sets()
    assert len(sets.genes) == 978 and sets.graph is not None and len(sets.pathways) > 100
    assert l1000_data.landmark_gene_sets(graph=False).graph is None
    simulation, inputs = l1000_data.simulated_benchmark("smoke", seed=0, graph=sets.graph)
    again, _ = l1000_data.simulated_benchmark("smoke", seed=0)
    assert len(inputs.data) == len(simulation.data) and inputs.gene_graph is sets.graph
    np.testing.assert_array_equal(again.data.change, simulation.data.change)


def test_the_replicate_plate_and_its_inputs(mirror_env):
    plate, inputs = l1000_data.replicate_plate()
    assert len(inputs.data) == len(plate) and plate.metadata["cell_id"].nunique() == 1
