import math

import pytest
import torch
from torch.nn import functional as F

from perturbx.models.drug_response import CrossAttention, CrossAttentionDRP, DeepDRA, DRPOutput, drp_loss
from perturbx.tasks.drug_cell_pairs import PairBatch
from perturbx.training import FitConfig, fit

CELL_DIMS, DRUG_DIMS, BATCH = [7, 5, 3], [4, 6], 8
SMALL = {"latent_dim": 6, "hidden_dim": 16, "classifier_dim": 8}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_blocks(seed: int = 0, batch: int = BATCH):
    generator = torch.Generator().manual_seed(seed)
    cells = [torch.randn(batch, d, generator=generator) for d in CELL_DIMS]
    drugs = [torch.randn(batch, d, generator=generator) for d in DRUG_DIMS]
    return cells, drugs


def assert_reconstructions_match(output: DRPOutput, cells, drugs):
    assert [tuple(r.shape) for r in output.cell_reconstruction] == [tuple(c.shape) for c in cells]
    assert [tuple(r.shape) for r in output.drug_reconstruction] == [tuple(d.shape) for d in drugs]


def run_model(cls, options: dict) -> DRPOutput:
    """A small model of ``cls`` on random blocks; checks the logit and reconstruction shapes."""
    torch.manual_seed(0)
    model = cls(CELL_DIMS, DRUG_DIMS, **SMALL, **options).eval()
    cells, drugs = random_blocks()
    output = model(cells, drugs)
    assert output.logit.shape == (BATCH,)
    assert_reconstructions_match(output, cells, drugs)
    return output


def test_deepdra_shapes():
    output = run_model(DeepDRA, {})
    assert output.cell_to_drug_attention is None and output.drug_to_cell_attention is None


def test_cross_attention_drp_block_tokens_attend_between_blocks():
    output = run_model(CrossAttentionDRP, {"tokens": "blocks"})
    assert output.cell_to_drug_attention.shape == (BATCH, 3, 2)
    assert output.drug_to_cell_attention.shape == (BATCH, 2, 3)
    for attention in (output.cell_to_drug_attention, output.drug_to_cell_attention):
        torch.testing.assert_close(attention.sum(-1), torch.ones(attention.shape[:2]), atol=1e-6, rtol=0)
        assert (attention >= 0).all()


def test_cross_attention_drp_single_token_is_degenerate():
    """One token per side: the softmax runs over one key, so every weight is 1."""
    output = run_model(CrossAttentionDRP, {"tokens": "single"})
    for attention in (output.cell_to_drug_attention, output.drug_to_cell_attention):
        assert attention.shape == (BATCH, 1, 1)
        torch.testing.assert_close(attention, torch.ones(BATCH, 1, 1))


def test_cross_attention_drp_rejects_unknown_tokens():
    with pytest.raises(ValueError, match="tokens must be"):
        CrossAttentionDRP(CELL_DIMS, DRUG_DIMS, tokens="genes")


def test_cross_attention_weights_are_scaled_dot_product_softmax():
    torch.manual_seed(0)
    attention = CrossAttention(dim=6, key_dim=4, ffn_dim=8).eval()
    queries, keys = torch.randn(2, 3, 6), torch.randn(2, 5, 6)
    out, weights = attention(queries, keys)
    assert out.shape == (2, 3, 6) and weights.shape == (2, 3, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3), atol=1e-6, rtol=0)
    q, k = queries @ attention.query.weight.T, keys @ attention.key.weight.T
    expected = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(4), dim=-1)
    torch.testing.assert_close(weights, expected)


def test_cross_attention_duplicated_key_gets_equal_weight():
    """Two identical keys share the weight equally, and the output is that of attending to one copy."""
    torch.manual_seed(0)
    attention = CrossAttention(dim=6, ffn_dim=8).eval()
    queries, key = torch.randn(2, 3, 6), torch.randn(2, 1, 6)
    out_twice, weights = attention(queries, torch.cat([key, key], dim=1))
    torch.testing.assert_close(weights, torch.full((2, 3, 2), 0.5))
    out_once, _ = attention(queries, key)
    torch.testing.assert_close(out_twice, out_once)


def test_drp_loss_is_sum_of_reconstruction_and_classification():
    torch.manual_seed(0)
    model = DeepDRA(CELL_DIMS, DRUG_DIMS, **SMALL).eval()
    cells, drugs = random_blocks()
    labels = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0])
    output = model(cells, drugs)
    losses = drp_loss(output, cells, drugs, labels)
    assert losses["loss"].item() == pytest.approx(
        losses["cell_ae"].item() + losses["drug_ae"].item() + losses["bce"].item(), rel=1e-6)
    expected_bce = F.binary_cross_entropy(torch.sigmoid(output.logit), labels.float())
    assert losses["bce"].item() == pytest.approx(expected_bce.item(), rel=1e-5)
    # the autoencoder terms are the MSE of the whole concatenated input
    expected_cell = ((torch.cat(output.cell_reconstruction, 1) - torch.cat(cells, 1)) ** 2).mean()
    assert losses["cell_ae"].item() == pytest.approx(expected_cell.item(), rel=1e-5)


@pytest.mark.parametrize("model_id", ["deepdra", "cross_attention"])
def test_a_few_epochs_reduce_the_training_loss(model_id):
    """64 pairs whose label is the sign of the first expression feature."""
    generator = torch.Generator().manual_seed(0)
    n_cells, n_drugs = 16, 4
    cell_features = [torch.randn(n_cells, d, generator=generator) for d in CELL_DIMS]
    drug_features = [torch.randn(n_drugs, d, generator=generator) for d in DRUG_DIMS]
    cell_index = torch.arange(n_cells).repeat_interleave(n_drugs)
    drug_index = torch.arange(n_drugs).repeat(n_cells)
    labels = (cell_features[0][cell_index, 0] > 0).float()

    def loss_fn(model, batch):
        assert isinstance(batch, PairBatch)  # the fit loop keeps the batch type
        cells = [block[batch.cell] for block in cell_features]
        drugs = [block[batch.drug] for block in drug_features]
        return drp_loss(model(cells, drugs), cells, drugs, batch.label)

    torch.manual_seed(0)
    model = DeepDRA(CELL_DIMS, DRUG_DIMS, **SMALL) if model_id == "deepdra" else \
        CrossAttentionDRP(CELL_DIMS, DRUG_DIMS, **SMALL)
    config = FitConfig(epochs=15, batch_size=16, lr=5e-3, progress=False, early_stopping_patience=None)
    history = fit(model, loss_fn, PairBatch(cell_index, drug_index, labels), config=config).history
    assert len(history) == 15
    assert history["train_loss"].iloc[-1] < 0.8 * history["train_loss"].iloc[0]
    assert history["train_bce"].iloc[-1] < history["train_bce"].iloc[0]
