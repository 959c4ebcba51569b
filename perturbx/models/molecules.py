"""Every compound's molecular graph collated once, so that a training step gathers its molecules by index.

``torch_geometric.data.Batch.from_data_list`` rebuilds a batch from Python objects on every call, which was about
8 % of a graph-model step. :class:`MoleculeTable` collates all graphs once and slices any list of compounds out of
the collated tensors: the same atoms, bonds and order as ``from_data_list`` of those graphs, so the numbers do not
change.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch_geometric.data import Batch, Data


def _ranges(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """The concatenation of ``arange(start, start + count)`` for each pair, long (counts.sum(),)."""
    offsets = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
    return torch.arange(int(counts.sum()), device=starts.device) + offsets


class MoleculeTable:
    """The molecular graphs of a compound table (:func:`perturbx.chem.molecule_graph`), collated once."""

    def __init__(self, graphs: Sequence[Data]):
        whole = Batch.from_data_list(list(graphs))
        self.x, self.edge_index, self.edge_attr = whole.x, whole.edge_index, whole.edge_attr
        self.node_ptr = whole.ptr
        self.edge_ptr = torch.as_tensor(whole._slice_dict["edge_index"], dtype=torch.long)
        self.n_compounds = len(graphs)

    def to(self, device: torch.device | str) -> MoleculeTable:
        """The table with its tensors on ``device`` (in place; returns itself)."""
        for name in ("x", "edge_index", "edge_attr", "node_ptr", "edge_ptr"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def batch(self, compounds: torch.Tensor) -> Batch:
        """The ``Batch`` of the molecules of ``compounds`` (long (n,) rows of the table, repeats allowed), in that
        order: ``x`` (atoms, features), ``edge_index`` (2, bonds) renumbered within the batch, ``edge_attr``,
        ``batch`` (atoms,) molecule of each atom and ``ptr`` (n + 1,); equal to ``Batch.from_data_list`` of them.

        Raises:
            IndexError: a compound outside the table.
        """
        compounds = compounds.to(self.node_ptr.device)
        if len(compounds) and (int(compounds.min()) < 0 or int(compounds.max()) >= self.n_compounds):
            raise IndexError(f"compound rows must lie in [0, {self.n_compounds}); got {compounds.tolist()[:8]}...")
        node_start, edge_start = self.node_ptr[compounds], self.edge_ptr[compounds]
        node_count = self.node_ptr[compounds + 1] - node_start
        edge_count = self.edge_ptr[compounds + 1] - edge_start
        edges = _ranges(edge_start, edge_count)
        new_start = torch.cumsum(node_count, 0) - node_count
        shift = torch.repeat_interleave(new_start - node_start, edge_count)
        ptr = torch.cat([new_start, node_count.sum().reshape(1)])
        return Batch(x=self.x[_ranges(node_start, node_count)], edge_index=self.edge_index[:, edges] + shift,
                     edge_attr=self.edge_attr[edges],
                     batch=torch.repeat_interleave(torch.arange(len(compounds), device=ptr.device), node_count),
                     ptr=ptr)
