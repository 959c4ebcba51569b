"""The interpretable graph model of drug-induced expression (seed paper 001).

Four tokens, one per input, fused by a Transformer encoder; an MLP head predicts the 978 landmark genes:

- compound: the RDKit molecular graph (:func:`perturbx.chem.molecule_graph`) -> graph attention layers
  (torch-geometric ``GATConv`` with bond features on the edges) -> atom embeddings -> attention pooling -> token;
- cell line: the pathway gene graph (:func:`perturbx.pathways.gene_graph`) whose node features are the cell line's
  basal expression (standardised per gene with training statistics) plus a learned embedding per gene ->
  graph convolutions on the weighted adjacency (:class:`SharedGraphConv`) -> attention pooling over genes -> token;
- dose and time: normalised values and a "known" flag (the TranSiGen pairs have no dose or time) -> MLP -> token.

The head predicts the change from basal (log2 units); the predicted profile is basal + change. Predicting the
change is a choice made here (the paper predicts expression): basal expression is an input, so the two are the
same model class, but the change keeps the head from having to copy 978 basal values through the tokens.

Interpretability hooks: ``atom_scale`` and ``gene_scale`` multiply the atom input embeddings and the standardised
basal values; their gradients at 1 are gradient x input attributions, and setting entries to 0 masks atoms (their
input embedding) or genes (basal value -> training mean). ``details=True`` returns the GAT attention of the last
layer, the pooling weights over atoms and genes, and the token attention of every Transformer layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch_geometric.nn import GATConv
from torch_geometric.nn.aggr import AttentionalAggregation
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import softmax

from ..chem import atom_feature_sizes, bond_feature_sizes
from ..splits import Split
from ..tasks.l1000 import FeatureScalers, Inputs, L1000Fold
from ..training import FitConfig, FitReport, fit, step_budget, to_device
from .estimator import Estimator, check_fitted_on, load_bundle, restore_weights, save_bundle
from .molecules import MoleculeTable

N_TOKENS = 4
TOKEN_NAMES = ("compound", "cell line", "dose", "time")


class CategoricalEncoder(nn.Module):
    """Sum of one embedding per categorical column: long (n, columns) -> float (n, width)."""

    def __init__(self, sizes: tuple[int, ...], width: int):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(size, width) for size in sizes)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: long (n, columns) -> sum of the column embeddings, float (n, width)."""
        return sum(embedding(codes[:, i]) for i, embedding in enumerate(self.embeddings))


class CompoundEncoder(nn.Module):
    """Molecular graph -> compound token with graph attention (GATConv, bond features as edge features)."""

    def __init__(self, width: int = 64, layers: int = 3, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be a multiple of heads {heads}")
        self.atoms = CategoricalEncoder(atom_feature_sizes(), width)
        self.bonds = CategoricalEncoder(bond_feature_sizes(), width)
        self.convs = nn.ModuleList(GATConv(width, width // heads, heads=heads, edge_dim=width, dropout=dropout)
                                   for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.pool = AttentionalAggregation(gate_nn=nn.Linear(width, 1))

    def forward(self, graphs, atom_scale: torch.Tensor | None = None, details: bool = False):
        """Args: graphs: a torch-geometric ``Batch`` of molecules; atom_scale: optional (n_atoms,) multipliers.

        Returns: tokens (n_molecules, width); with ``details``, also a dict with ``gat_edge_index`` (2, E) and
        ``gat_attention`` (E, heads) of the last layer (self-loops included) and ``atom_pool`` (n_atoms,) pooling
        weights (summing to 1 within each molecule).
        """
        h = self.atoms(graphs.x)
        if atom_scale is not None:
            h = h * atom_scale[:, None]
        edges = self.bonds(graphs.edge_attr)
        info = {}
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            last = i == len(self.convs) - 1
            if details and last:
                out, (info["gat_edge_index"], info["gat_attention"]) = conv(
                    h, graphs.edge_index, edges, return_attention_weights=True)
            else:
                out = conv(h, graphs.edge_index, edges)
            h = norm(h + torch.relu(out))
        token = self.pool(h, graphs.batch, dim_size=graphs.num_graphs)
        if details:
            info["atom_pool"] = softmax(self.pool.gate_nn(h).squeeze(-1), graphs.batch)
            return token, info
        return token


class SharedGraphConv(nn.Module):
    """Graph convolution ``H' = Â H W + b`` for a batch of graphs that all share one adjacency.

    ``Â = D^-1/2 (A + I) D^-1/2`` is the GCN normalisation of the weighted adjacency, computed once with
    torch-geometric's ``gcn_norm`` and kept as a sparse matrix; the batch is folded into the feature axis so one
    sparse product serves every sample. (torch-geometric's ``GCNConv`` would materialise one message per edge and
    sample, ~75 M floats per layer for a batch of 64 gene graphs; ``DenseGCNConv`` a dense 978 x 978 product.)
    """

    def __init__(self, edge_index: np.ndarray, edge_weight: np.ndarray, n_nodes: int, in_width: int, out_width: int):
        super().__init__()
        index, weight = gcn_norm(torch.as_tensor(edge_index), torch.as_tensor(edge_weight, dtype=torch.float32),
                                 num_nodes=n_nodes, add_self_loops=True)
        adjacency = torch.sparse_coo_tensor(index.flip(0), weight, (n_nodes, n_nodes), check_invariants=True)
        self.register_buffer("adjacency", adjacency.coalesce())  # row = target node, column = source node
        self.linear = nn.Linear(in_width, out_width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: (batch, nodes, in_width) -> (batch, nodes, out_width)."""
        h = self.linear(h)
        batch, nodes, width = h.shape
        folded = h.transpose(0, 1).reshape(nodes, batch * width)
        return torch.sparse.mm(self.adjacency, folded).reshape(nodes, batch, width).transpose(0, 1)


class GeneGraphEncoder(nn.Module):
    """Basal expression on the pathway gene graph -> cell-line token.

    Node features: the gene's standardised basal value and a learned gene embedding; graph convolutions
    (:class:`SharedGraphConv`) on the weighted co-membership graph with residual connections; attention pooling
    over genes. Identical basal profiles in a batch (all profiles of one cell line) are encoded once.
    """

    def __init__(self, edge_index: np.ndarray, edge_weight: np.ndarray, n_genes: int, width: int = 64,
                 gene_embedding: int = 16, layers: int = 2):
        super().__init__()
        self.gene_embedding = nn.Parameter(torch.randn(n_genes, gene_embedding) * 0.1)
        self.input = nn.Linear(1 + gene_embedding, width)
        self.convs = nn.ModuleList(SharedGraphConv(edge_index, edge_weight, n_genes, width, width)
                                   for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.gate = nn.Linear(width, 1)

    def forward(self, basal: torch.Tensor, gene_scale: torch.Tensor | None = None, details: bool = False):
        """Args: basal: (n, genes) standardised basal values; gene_scale: optional (n, genes) multipliers.

        Returns: tokens (n, width); with ``details`` also ``{"gene_pool": (n, genes)}`` pooling weights.
        """
        if gene_scale is None:
            values, inverse = torch.unique(basal, dim=0, return_inverse=True)
        else:
            values, inverse = basal * gene_scale, torch.arange(len(basal), device=basal.device)
        h = torch.cat([values[..., None], self.gene_embedding.expand(len(values), -1, -1)], dim=-1)
        h = torch.relu(self.input(h))
        for conv, norm in zip(self.convs, self.norms):
            h = norm(h + torch.relu(conv(h)))
        weights = torch.softmax(self.gate(h).squeeze(-1), dim=-1)  # (distinct, genes)
        token = (weights[..., None] * h).sum(dim=1)[inverse]
        return (token, {"gene_pool": weights[inverse]}) if details else token


class TokenEncoderLayer(nn.Module):
    """Post-norm Transformer encoder layer that also returns its attention weights (batch, tokens, tokens)."""

    def __init__(self, width: int, heads: int, feedforward: int, dropout: float):
        super().__init__()
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.feedforward = nn.Sequential(nn.Linear(width, feedforward), nn.GELU(), nn.Dropout(dropout),
                                         nn.Linear(feedforward, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: (batch, tokens, width) -> (updated tokens, same shape; attention (batch, tokens, tokens)).

        The attention weights are averaged over heads.
        """
        attended, weights = self.attention(tokens, tokens, tokens, need_weights=True, average_attn_weights=True)
        tokens = self.norm1(tokens + self.dropout(attended))
        return self.norm2(tokens + self.dropout(self.feedforward(tokens))), weights


@dataclass
class GNNConfig:
    """Sizes of :class:`PerturbationGNN`."""

    width: int = 64
    compound_layers: int = 3
    compound_heads: int = 4
    gene_embedding: int = 16
    gene_layers: int = 2
    transformer_layers: int = 2
    transformer_heads: int = 4
    head_hidden: int = 256
    dropout: float = 0.1


def _scalar_mlp(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width))


class PerturbationGNN(nn.Module):
    """Compound GAT + pathway gene graph + dose/time MLPs, fused by a Transformer; predicts the change of 978 genes.

    Args:
        graphs: the molecular graphs of the compound table (index = compound index used in ``forward``).
        gene_edge_index, gene_edge_weight: the gene graph (see :class:`perturbx.pathways.GeneGraph`).
        n_genes: output genes (978).
    """

    def __init__(self, graphs: list, gene_edge_index: np.ndarray, gene_edge_weight: np.ndarray,
                 n_genes: int = 978, config: GNNConfig | None = None):
        super().__init__()
        config = config or GNNConfig()
        self.graphs, self.config, self.n_genes = list(graphs), config, n_genes
        self.molecules = MoleculeTable(self.graphs)  # collated once: a step gathers its molecules by index
        width = config.width
        self.compound = CompoundEncoder(width, config.compound_layers, config.compound_heads)
        self.cell = GeneGraphEncoder(gene_edge_index, gene_edge_weight, n_genes, width, config.gene_embedding,
                                     config.gene_layers)
        self.dose, self.time = _scalar_mlp(width), _scalar_mlp(width)
        self.token_type = nn.Parameter(torch.randn(N_TOKENS, width) * 0.02)
        self.token_norm = nn.LayerNorm(width)
        self.encoder = nn.ModuleList(TokenEncoderLayer(width, config.transformer_heads, 4 * width, config.dropout)
                                     for _ in range(config.transformer_layers))
        self.head = nn.Sequential(nn.Linear(N_TOKENS * width, config.head_hidden), nn.GELU(),
                                  nn.Dropout(config.dropout), nn.Linear(config.head_hidden, n_genes))

    def molecule_batch(self, compound_index: torch.Tensor, distinct: bool = True):
        """The torch-geometric ``Batch`` of the compounds in ``compound_index`` and each row's position in it:
        (batch, inverse (n,)); one molecule per distinct compound (training), or with ``distinct=False`` one per
        row (so that atom scales address each row's atoms, for attributions)."""
        if distinct:
            unique, inverse = torch.unique(compound_index, return_inverse=True)
        else:
            unique, inverse = compound_index, torch.arange(len(compound_index), device=compound_index.device)
        return self.molecules.to(compound_index.device).batch(unique), inverse

    def forward(self, compound_index: torch.Tensor, basal: torch.Tensor, dose: torch.Tensor, time: torch.Tensor,
                atom_scale: torch.Tensor | None = None, gene_scale: torch.Tensor | None = None,
                molecules=None, details: bool = False):
        """Predict the change from basal.

        Args:
            compound_index: long (n,) rows of the compound table.
            basal: float (n, genes) basal expression standardised per gene with training statistics.
            dose, time: float (n, 2): normalised value and a 1/0 "known" flag.
            atom_scale: (n_atoms,) multipliers of the atoms of ``molecules`` (requires ``molecules``).
            gene_scale: (n, genes) multipliers of the standardised basal values.
            molecules: a precomputed ``(batch, inverse)`` from :meth:`molecule_batch` (to address atoms).
            details: also return attention and pooling weights.

        Returns:
            float (n, genes) predicted change (log2 units); with ``details``, ``(change, info)`` where info has
            ``gat_edge_index``, ``gat_attention``, ``atom_pool``, ``molecules``, ``gene_pool`` (n, genes) and
            ``token_attention`` (layers, n, 4, 4).
        """
        batch, inverse = molecules if molecules is not None else self.molecule_batch(compound_index)
        info: dict = {"molecules": (batch, inverse)}
        if details:
            compound_tokens, compound_info = self.compound(batch, atom_scale, details=True)
            cell_tokens, cell_info = self.cell(basal, gene_scale, details=True)
            info |= compound_info | cell_info
        else:
            compound_tokens = self.compound(batch, atom_scale)
            cell_tokens = self.cell(basal, gene_scale)
        tokens = torch.stack([compound_tokens[inverse], cell_tokens, self.dose(dose), self.time(time)], dim=1)
        tokens = self.token_norm(tokens + self.token_type)
        attention = []
        for layer in self.encoder:
            tokens, weights = layer(tokens)
            attention.append(weights)
        change = self.head(tokens.flatten(1))
        if details:
            info["token_attention"] = torch.stack(attention)
            return change, info
        return change


def gnn_loss(model: PerturbationGNN, batch) -> dict[str, torch.Tensor]:
    """Mean squared error of the predicted change of an L1000 batch (fields ``compound``, ``basal``, ``dose``,
    ``time`` and the target change ``target``; see :class:`perturbx.tasks.l1000.L1000Batch`)."""
    predicted = model(batch.compound, batch.basal, batch.dose, batch.time)
    return {"loss": torch.nn.functional.mse_loss(predicted, batch.target)}


def graph_model_for(inputs: Inputs, config: GNNConfig) -> PerturbationGNN:
    """An untrained graph model over the compounds and the gene graph of ``inputs``."""
    graph = inputs.gene_graph
    if graph is None:
        raise ValueError("these inputs have no gene graph; build them with l1000.build_inputs(data, gene_graph)")
    return PerturbationGNN(inputs.graphs, graph.edge_index, graph.edge_weight, graph.n_genes, config)


@dataclass
class GraphModelEstimator(Estimator):
    """The graph model as an estimator of the L1000 task (:class:`perturbx.tasks.l1000.L1000Fold`).

    Its training budget is also counted in optimiser steps (:func:`perturbx.training.step_budget`): the epochs are
    raised to give at least ``min_steps`` steps and the early-stopping patience to wait ``min_patience_steps``.

    Attributes:
        config: network sizes; fit_config: optimisation (its ``seed`` and ``description`` are set by :meth:`fit`).
        network: the trained model (None before :meth:`fit` / :meth:`load`).
        scalers: the training statistics of the fold it was fitted on; task: that task's fingerprint.
    """

    kind: ClassVar[str] = "graph_model"
    config: GNNConfig = field(default_factory=GNNConfig)
    fit_config: FitConfig = field(default_factory=FitConfig)
    min_steps: int = 0
    min_patience_steps: int = 0
    network: PerturbationGNN | None = None
    scalers: FeatureScalers | None = None
    task: dict[str, str] = field(default_factory=dict)

    def fit(self, fold: L1000Fold, seed: int, description: str = "graph model") -> FitReport:
        """Train on ``fold.split.train`` with early stopping on ``fold.split.val`` (MSE of the log2 change)."""
        torch.manual_seed(seed)
        self.network = graph_model_for(fold.inputs, self.config)
        config = step_budget(replace(self.fit_config, seed=seed, description=description), len(fold.split.train),
                             self.min_steps, self.min_patience_steps)
        val = fold.batch(fold.split.val) if len(fold.split.val) else None
        report = fit(self.network, gnn_loss, fold.batch(fold.split.train), val, config)
        self.scalers, self.task = fold.scalers, fold.inputs.fingerprint()
        return report

    @torch.no_grad()
    def predict(self, fold: L1000Fold, rows: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(len(rows), genes) predicted log2 changes from basal, in batches, on the network's device."""
        network = self.fitted_network().eval()
        device = next(network.parameters()).device
        parts = []
        for start in range(0, len(rows), batch_size):
            b = to_device(fold.batch(rows[start:start + batch_size]), device)
            parts.append(network(b.compound, b.basal, b.dose, b.time).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, fold.inputs.n_genes), np.float32)

    def save(self, folder: Path | str) -> Path:
        """The bundle: sizes, optimisation, the task fingerprint, the weights and the training statistics."""
        config = {"gnn": asdict(self.config), "fit": asdict(self.fit_config), "min_steps": self.min_steps,
                  "min_patience_steps": self.min_patience_steps, "task": self.task}
        return save_bundle(folder, self.kind, config, self.fitted_network().state_dict(), self.scalers.arrays())

    @classmethod
    def load(cls, folder: Path | str, task: Inputs, device: str = "cpu") -> GraphModelEstimator:
        """The graph model saved in ``folder``, for ``task`` (the inputs it was fitted on), on ``device``."""
        bundle = load_bundle(folder, cls.kind)
        check_fitted_on(folder, bundle.config["task"], task.fingerprint())
        estimator = cls(GNNConfig(**bundle.config["gnn"]), FitConfig(**bundle.config["fit"]),
                        bundle.config["min_steps"], bundle.config["min_patience_steps"],
                        scalers=FeatureScalers.from_arrays(bundle.arrays), task=bundle.config["task"])
        estimator.network = restore_weights(graph_model_for(task, estimator.config), bundle, device)
        return estimator

    def fold(self, task: Inputs, split: Split) -> L1000Fold:
        """``split`` of ``task`` scaled with the statistics this model was fitted with."""
        return task.fold(split, scalers=self.scalers)
