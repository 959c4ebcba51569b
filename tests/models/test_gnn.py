"""The interpretable graph model of drug-induced expression, at toy sizes."""

import dataclasses

import numpy as np
import pytest
import torch
from torch_geometric.utils import scatter

from perturbx.chem import molecule_graph
from perturbx.models.gnn import GNNConfig, PerturbationGNN, SharedGraphConv, gnn_loss
from perturbx.tasks.l1000 import L1000Batch
from perturbx.training import FitConfig, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMILES = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "CC(=O)Nc1ccc(O)cc1"]
N_GENES = 20
CONFIG = GNNConfig(width=16, compound_layers=2, compound_heads=2, transformer_heads=2, head_hidden=32)
COMPOUND_INDEX = [0, 1, 2, 3, 2, 0]  # row 4 repeats compound 2, row 5 compound 0
N = len(COMPOUND_INDEX)


def random_gene_graph(n_genes: int = N_GENES, n_edges: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Undirected random graph: (2, 2 * n_edges) int64 edges in both directions, float32 weights; gene 19 isolated."""
    rng = np.random.default_rng(seed)
    pairs = [(i, j) for i in range(n_genes - 1) for j in range(i + 1, n_genes - 1)]
    chosen = np.asarray(pairs)[rng.choice(len(pairs), size=n_edges, replace=False)]
    weights = rng.uniform(0.1, 1.0, size=n_edges)
    edge_index = np.concatenate([chosen.T, chosen.T[::-1]], axis=1).astype(np.int64)
    return edge_index, np.concatenate([weights, weights]).astype(np.float32)


def build_model(config: GNNConfig = CONFIG, seed: int = 0) -> PerturbationGNN:
    torch.manual_seed(seed)
    edge_index, edge_weight = random_gene_graph()
    return PerturbationGNN([molecule_graph(s) for s in SMILES], edge_index, edge_weight, N_GENES, config)


def inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    basal = torch.randn(N, N_GENES, generator=generator)
    basal[3] = basal[0]  # rows 0 and 3: one cell line
    dose = torch.stack([torch.rand(N, generator=generator), torch.tensor([1.0, 1, 1, 0, 1, 1])], dim=1)
    time = torch.stack([torch.rand(N, generator=generator), torch.tensor([1.0, 1, 0, 1, 1, 1])], dim=1)
    dose[3, 0] = time[2, 0] = 0.0  # unknown values
    return {"compound_index": torch.tensor(COMPOUND_INDEX), "basal": basal, "dose": dose, "time": time}


@pytest.fixture(scope="module")
def model() -> PerturbationGNN:
    return build_model().eval()


def test_output_shape(model):
    with torch.no_grad():
        change = model(**inputs())
    assert change.shape == (N, N_GENES) and change.dtype == torch.float32 and torch.isfinite(change).all()
    assert change.std() > 0


def test_details(model):
    x = inputs()
    with torch.no_grad():
        plain = model(**x)
        change, info = model(**x, details=True)
    torch.testing.assert_close(change, plain)

    attention = info["token_attention"]
    assert attention.shape == (CONFIG.transformer_layers, N, 4, 4)
    assert (attention >= 0).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(CONFIG.transformer_layers, N, 4))

    molecules, inverse = info["molecules"]
    assert molecules.num_graphs == len(SMILES)  # each distinct compound once
    assert inverse.tolist() == COMPOUND_INDEX  # compounds 0..3 are all present, so positions = indices
    assert info["atom_pool"].shape == (molecules.num_nodes,)
    assert molecules.num_nodes == sum(molecule_graph(s).num_nodes for s in SMILES)
    pooled = scatter(info["atom_pool"], molecules.batch, dim=0, dim_size=molecules.num_graphs, reduce="sum")
    torch.testing.assert_close(pooled, torch.ones(len(SMILES)))
    assert (info["atom_pool"] > 0).all()

    gene_pool = info["gene_pool"]
    assert gene_pool.shape == (N, N_GENES) and (gene_pool > 0).all()
    torch.testing.assert_close(gene_pool.sum(-1), torch.ones(N))
    torch.testing.assert_close(gene_pool[0], gene_pool[3])  # same basal profile

    edge_index, gat = info["gat_edge_index"], info["gat_attention"]
    assert edge_index.shape[0] == 2 and gat.shape == (edge_index.shape[1], CONFIG.compound_heads)
    assert edge_index.shape[1] == molecules.num_edges + molecules.num_nodes  # bonds (both ways) + self loops
    incoming = scatter(gat, edge_index[1], dim=0, dim_size=molecules.num_nodes, reduce="sum")
    torch.testing.assert_close(incoming, torch.ones(molecules.num_nodes, CONFIG.compound_heads))
    # the same sum with index_add, as a check of the scatter call
    by_hand = torch.zeros(molecules.num_nodes, CONFIG.compound_heads).index_add_(0, edge_index[1], gat)
    torch.testing.assert_close(by_hand, incoming)
    # the attention runs along molecular bonds and self loops only
    bonds = {tuple(e) for e in molecules.edge_index.t().tolist()} | {(i, i) for i in range(molecules.num_nodes)}
    assert {tuple(e) for e in edge_index.t().tolist()} == bonds


def test_same_seed_same_model():
    x = inputs()
    first, second = build_model().eval(), build_model().eval()
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(first(**x), second(**x), rtol=0, atol=0)
    other = build_model(seed=1).eval()
    with torch.no_grad():
        assert not torch.allclose(first(**x), other(**x))


def training_batch(n: int = 16, seed: int = 2) -> L1000Batch:
    generator = torch.Generator().manual_seed(seed)
    compound_index = torch.randint(0, len(SMILES), (n,), generator=generator)
    cell = torch.randint(0, 3, (n,), generator=generator)
    basal = torch.randn(3, N_GENES, generator=generator)[cell]  # three cell lines
    dose = torch.stack([torch.rand(n, generator=generator), torch.ones(n)], dim=1)
    time = torch.stack([torch.rand(n, generator=generator), torch.ones(n)], dim=1)
    change = torch.randn(len(SMILES), N_GENES, generator=generator)[compound_index] * dose[:, :1] + 0.3 * basal
    dose_scale = torch.full((n, 1), 99.0)  # not an input of the graph model
    return L1000Batch(compound_index, basal, dose, time, dose_scale, change)


def test_fit_is_reproducible():
    train = training_batch()
    config = FitConfig(epochs=2, batch_size=5, lr=1e-2, seed=3, progress=False)  # CONFIG has dropout 0.1
    fitted = []
    for global_seed in (123, 456):  # fit reseeds, so the global generator state before it does not matter
        model = build_model(seed=0)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        torch.manual_seed(global_seed)
        result = fit(model, gnn_loss, train, config=config)
        assert len(result.history) == 2 and not model.training
        assert any(not torch.equal(initial[k], v) for k, v in model.state_dict().items()), "fit changed no weight"
        fitted.append((model, result))
    (model_a, result_a), (model_b, result_b) = fitted
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert result_a.history["train_loss"].tolist() == result_b.history["train_loss"].tolist()
    # a different fit seed (batch order, dropout) gives different weights
    model_c = build_model(seed=0)
    fit(model_c, gnn_loss, train, config=dataclasses.replace(config, seed=4))
    assert not torch.equal(model_c.head[-1].weight, model_a.head[-1].weight)


def test_identical_basal_rows_share_cell_tokens(model):
    x = inputs()
    with torch.no_grad():
        tokens = model.cell(x["basal"])
        alone = model.cell(x["basal"][3:4])
        scaled = model.cell(x["basal"], torch.ones(N, N_GENES))  # the path without deduplication
    assert tokens.shape == (N, CONFIG.width)
    torch.testing.assert_close(tokens[0], tokens[3], rtol=0, atol=0)
    assert not torch.allclose(tokens[0], tokens[1])
    torch.testing.assert_close(alone[0], tokens[3], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scaled, tokens, rtol=1e-5, atol=1e-6)


def test_gene_scale(model):
    x = inputs()
    with torch.no_grad():
        plain = model(**x)
        ones = model(**x, gene_scale=torch.ones(N, N_GENES))
        torch.testing.assert_close(ones, plain, rtol=1e-5, atol=1e-6)
        scale = torch.ones(N, N_GENES)
        scale[1, 5] = 0.0  # mask gene 5 of row 1 only
        masked = model(**x, gene_scale=scale)
    assert (masked[1] - plain[1]).abs().max() > 1e-4
    others = [i for i in range(N) if i != 1]
    torch.testing.assert_close(masked[others], plain[others], rtol=1e-5, atol=1e-6)


def test_atom_scale_of_ones_changes_nothing(model):
    x = inputs()
    with torch.no_grad():
        molecules = model.molecule_batch(x["compound_index"])
        plain = model(**x)
        ones = model(**x, atom_scale=torch.ones(molecules[0].num_nodes), molecules=molecules)
        scale = torch.ones(molecules[0].num_nodes)
        scale[molecules[0].batch == 1] = 0.0  # mask every atom of benzene (compound 1, row 1)
        masked = model(**x, atom_scale=scale, molecules=molecules)
    torch.testing.assert_close(ones, plain, rtol=1e-5, atol=1e-6)
    assert (masked[1] - plain[1]).abs().max() > 1e-4
    torch.testing.assert_close(masked[[0, 2, 3, 4, 5]], plain[[0, 2, 3, 4, 5]], rtol=1e-5, atol=1e-6)


def test_gnn_loss_decreases_on_a_fixed_batch():
    model = build_model(dataclasses.replace(CONFIG, dropout=0.0))
    batch = training_batch(n=12)
    losses = gnn_loss(model, batch)
    assert set(losses) == {"loss"} and losses["loss"].dim() == 0
    with torch.no_grad():
        expected = ((model(batch.compound, batch.basal, batch.dose, batch.time) - batch.target) ** 2).mean()
    torch.testing.assert_close(losses["loss"].detach(), expected)
    # the loss reads the fields by name: the target is the change, whatever the other fields hold
    moved = batch._replace(target=batch.target + 1.0, dose_scale=torch.zeros(12, 1))
    with torch.no_grad():
        shifted = ((model(batch.compound, batch.basal, batch.dose, batch.time) - moved.target) ** 2).mean()
    torch.testing.assert_close(gnn_loss(model, moved)["loss"].detach(), shifted)
    assert not torch.allclose(shifted, expected)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    values = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = gnn_loss(model, batch)["loss"]
        loss.backward()
        optimizer.step()
        values.append(loss.item())
    with torch.no_grad():
        final = gnn_loss(model, batch)["loss"].item()
    assert final < 0.7 * values[0], values


def test_compound_without_bonds():
    """Water (one atom, no bond) and a salt (two atoms, no bond): the GAT sees self loops only."""
    torch.manual_seed(0)
    edge_index, edge_weight = random_gene_graph()
    model = PerturbationGNN([molecule_graph(s) for s in ("O", "[Na+].[Cl-]", "CCO")], edge_index, edge_weight,
                            N_GENES, CONFIG).eval()
    x = inputs()
    for rows in ([0, 1, 2], [0], [1]):
        n = len(rows)
        with torch.no_grad():
            change, info = model(torch.tensor(rows), x["basal"][:n], x["dose"][:n], x["time"][:n], details=True)
        assert change.shape == (n, N_GENES) and torch.isfinite(change).all()
        molecules = info["molecules"][0]
        pooled = scatter(info["atom_pool"], molecules.batch, dim=0, dim_size=molecules.num_graphs, reduce="sum")
        torch.testing.assert_close(pooled, torch.ones(n))
    assert info["atom_pool"].shape == (2,)  # the salt: two ions


def dense_propagation(edge_index, edge_weight, n_nodes, h, linear):
    """D^-1/2 (A + I) D^-1/2 (H W^T + b), A[target, source] = weight, D the in-degree (weights) + 1."""
    adjacency = torch.zeros(n_nodes, n_nodes, dtype=torch.float64)
    for (source, target), w in zip(edge_index.T, edge_weight):
        adjacency[target, source] += float(w)
    adjacency += torch.eye(n_nodes, dtype=torch.float64)
    scale = adjacency.sum(1) ** -0.5
    normalised = scale[:, None] * adjacency * scale[None, :]
    features = h.double() @ linear.weight.double().T + linear.bias.double()
    return normalised @ features  # (nodes, nodes) @ (batch, nodes, width) broadcasts over the batch


def test_shared_graph_conv_equals_dense_gcn():
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    # nodes 0..5 with weighted undirected edges, node 6 isolated
    pairs = np.array([[0, 1], [0, 2], [1, 2], [2, 3], [3, 4], [4, 5], [1, 5]])
    weights = rng.uniform(0.2, 2.0, size=len(pairs))
    edge_index = np.concatenate([pairs.T, pairs.T[::-1]], axis=1)
    edge_weight = np.concatenate([weights, weights]).astype(np.float32)
    conv = SharedGraphConv(edge_index, edge_weight, 7, in_width=4, out_width=5)
    h = torch.randn(3, 7, 4)  # a batch of 3 graphs
    out = conv(h)
    assert out.shape == (3, 7, 5)
    expected = dense_propagation(edge_index, edge_weight, 7, h, conv.linear)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    # each graph of the batch alone gives the same rows
    for b in range(3):
        torch.testing.assert_close(conv(h[b:b + 1])[0], out[b], rtol=1e-6, atol=1e-6)
    # the isolated node keeps its own transformed features (self loop, degree 1)
    torch.testing.assert_close(out[:, 6], conv.linear(h[:, 6]), rtol=1e-6, atol=1e-6)


def test_shared_graph_conv_direction():
    """A directed edge 0 -> 1 (source -> target) carries node 0's features to node 1, not the reverse."""
    conv = SharedGraphConv(np.array([[0], [1]]), np.array([3.0], dtype=np.float32), 2, in_width=1, out_width=1)
    with torch.no_grad():
        conv.linear.weight.fill_(1.0)
        conv.linear.bias.zero_()
    out = conv(torch.tensor([[[1.0], [10.0]]]))[0, :, 0]
    # node 0: in-degree 0 + self loop -> itself; node 1: (3 * 1 / sqrt(4 * 1) + 10 / 4)
    torch.testing.assert_close(out, torch.tensor([1.0, 3.0 / 2.0 + 10.0 / 4.0]))
    expected = dense_propagation(np.array([[0], [1]]), [3.0], 2, torch.tensor([[[1.0], [10.0]]]), conv.linear)
    torch.testing.assert_close(out.double(), expected[0, :, 0])
