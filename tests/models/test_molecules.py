import pytest
import torch
from torch_geometric.data import Batch

from perturbx import chem
from perturbx.models.molecules import MoleculeTable

SMILES = ["CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1", "CCO", "C", "N#N", "CC(C)Cc1ccc(cc1)C(C)C(=O)O"]


@pytest.fixture(scope="module")
def graphs():
    return [chem.molecule_graph(smiles, record=f"compound {i}") for i, smiles in enumerate(SMILES)]


@pytest.mark.parametrize("rows", [[3, 0, 0, 5, 2], [4], list(range(6))[::-1], [1, 1, 1]])
def test_a_gathered_batch_equals_collating_those_graphs(graphs, rows):
    """Same atoms, bonds, renumbered edges, molecule of each atom and offsets as Batch.from_data_list, also for a
    molecule without bonds (methane) and for repeated rows."""
    gathered = MoleculeTable(graphs).batch(torch.tensor(rows))
    collated = Batch.from_data_list([graphs[i] for i in rows])
    for name in ("x", "edge_index", "edge_attr", "batch", "ptr"):
        assert torch.equal(getattr(gathered, name), getattr(collated, name)), name
    assert gathered.num_graphs == len(rows) and gathered.num_nodes == collated.num_nodes


def test_a_compound_outside_the_table_is_refused(graphs):
    with pytest.raises(IndexError, match=r"compound rows must lie in \[0, 6\)"):
        MoleculeTable(graphs).batch(torch.tensor([0, 6]))
