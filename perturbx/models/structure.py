"""Models of a drug's consensus signature from its structure alone (no cell line, dose or time).

- :class:`StructureRegressor`: the graph model's compound encoder (:class:`perturbx.models.gnn.CompoundEncoder`,
  graph attention over the RDKit molecular graph) and an MLP head regressing the 978 landmark z-scores
  (standardised per gene with training statistics by the caller);
- :class:`FingerprintConditioner`: the condition of :class:`perturbx.models.diffusion.ConditionalDiffusion` when
  the only input is the drug's Morgan fingerprint: a learned constant context (there is no cell line) and the
  fingerprint through an MLP as the perturbation, which classifier-free guidance may drop.

Both index a fixed table of drugs (graphs or fingerprints), so a batch carries drug positions, not features
(:class:`StructureBatch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch

from .diffusion import ConditionalDiffusion
from .gnn import CompoundEncoder


class StructureBatch(NamedTuple):
    """Drugs and their targets, for :func:`perturbx.training.fit`.

    Attributes:
        compound: long (B,) positions of the drugs in the model's table (graphs or fingerprints).
        target: float32 (B, genes) standardised signatures (z-scores / training SD per gene).
    """

    compound: torch.Tensor
    target: torch.Tensor


@dataclass
class StructureConfig:
    """Sizes of :class:`StructureRegressor`."""

    width: int = 64
    layers: int = 3
    heads: int = 4
    hidden: int = 256
    dropout: float = 0.1


class StructureRegressor(nn.Module):
    """Molecular graph -> GAT compound token -> MLP -> (genes,) signature.

    Args:
        graphs: torch-geometric molecular graphs (:func:`perturbx.chem.molecule_graph`) of the drug table; the
            index of a graph is the drug position used in :meth:`forward`.
        n_genes: output size (978 landmark genes).
    """

    def __init__(self, graphs: list, n_genes: int, config: StructureConfig | None = None):
        super().__init__()
        config = config or StructureConfig()
        self.graphs, self.config, self.n_genes = list(graphs), config, n_genes
        self.compound = CompoundEncoder(config.width, config.layers, config.heads)
        self.head = nn.Sequential(nn.Linear(config.width, config.hidden), nn.GELU(), nn.Dropout(config.dropout),
                                  nn.Linear(config.hidden, n_genes))

    def molecule_batch(self, compound: torch.Tensor, distinct: bool = True):
        """The torch-geometric ``Batch`` of the drugs ``compound`` (long (n,)) and each row's molecule in it.

        Args:
            distinct: one molecule per distinct drug (training); ``False``: one molecule per row, so that atom
                scales address the atoms of each row separately (attributions).

        Returns:
            (batch, inverse (n,) long).
        """
        if distinct:
            unique, inverse = torch.unique(compound, return_inverse=True)
        else:
            unique, inverse = compound, torch.arange(len(compound), device=compound.device)
        batch = Batch.from_data_list([self.graphs[i] for i in unique.tolist()])
        return batch.to(compound.device), inverse

    def forward(self, compound: torch.Tensor, atom_scale: torch.Tensor | None = None, molecules=None
                ) -> torch.Tensor:
        """Predict standardised signatures.

        Args:
            compound: long (n,) drug positions.
            atom_scale: optional (n_atoms,) multipliers of the atom input embeddings of ``molecules`` (1: as is,
                0: masked); needs ``molecules``.
            molecules: a precomputed ``(batch, inverse)`` from :meth:`molecule_batch`.

        Returns:
            float (n, genes).
        """
        if atom_scale is not None and molecules is None:
            raise ValueError("atom_scale addresses the atoms of given molecules: pass molecules="
                             "model.molecule_batch(compound, distinct=False) too")
        batch, inverse = molecules if molecules is not None else self.molecule_batch(compound)
        return self.head(self.compound(batch, atom_scale))[inverse]


def structure_loss(model: StructureRegressor, batch: StructureBatch) -> dict[str, torch.Tensor]:
    """:func:`perturbx.training.fit` loss: mean squared error of the standardised signature, over genes and drugs."""
    return {"loss": nn.functional.mse_loss(model(batch.compound), batch.target)}


class FingerprintConditioner(nn.Module):
    """Condition of a structure-only diffusion model: (context, perturbation), each (B, width).

    The context is one learned vector for every drug (the consensus signatures have no cell line); the
    perturbation is the drug's fingerprint (a fixed table, so unseen drugs have one too) through an MLP. Input:
    compound (B,) long drug positions.
    """

    def __init__(self, fingerprints: np.ndarray, width: int = 128, dropout: float = 0.1):
        super().__init__()
        self.register_buffer("fingerprints", torch.as_tensor(np.asarray(fingerprints), dtype=torch.float32))
        self.context = nn.Parameter(torch.zeros(width))
        self.compound = nn.Sequential(nn.Linear(self.fingerprints.shape[1], width), nn.SiLU(), nn.Dropout(dropout),
                                      nn.Linear(width, width))

    def forward(self, compound: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed drugs: compound (B,) long -> (context, perturbation), each float (B, width)."""
        perturbation = self.compound(self.fingerprints[compound])
        return self.context.expand_as(perturbation), perturbation


def fingerprint_diffusion_loss(model: ConditionalDiffusion, batch: StructureBatch) -> dict[str, torch.Tensor]:
    """:func:`perturbx.training.fit` loss of a :class:`FingerprintConditioner` diffusion model: the v-prediction
    MSE of ``batch.target`` (B, genes) given the drugs ``batch.compound``."""
    return model.loss(batch.target, batch.compound)
