"""Attributions of the graph model's predictions to atoms, genes, pathways and tokens, and checks of them.

What is attributed is the size of the predicted response, ``f = ||predicted change||² / 2`` (its gradient is the
predicted change pushed back through the network), for each profile separately:

- atoms: gradient x input of the atom input embeddings (``atom_scale`` at 1), and, for comparison, the attention
  an atom receives from its neighbours in the last graph-attention layer (mean over heads, self-loops excluded);
- genes: gradient x input of the standardised basal values (``gene_scale`` at 1; the baseline is the training
  mean, where the standardised value is 0);
- pathways: mean |gene attribution| of each pathway's landmark genes;
- tokens: the attention each of the four tokens receives in the last Transformer layer (mean over queries).

:func:`faithfulness` masks the top-attributed atoms (input embedding set to 0) or genes (basal set to the
training mean) and the same number of random ones, and compares how much the prediction moves.
:func:`atom_recovery` and :func:`gene_recovery` score attributions against the simulator's known causes.

The structure-only model of consensus signatures (:class:`perturbx.models.structure.StructureRegressor`) has atoms
only: :func:`structure_atom_attributions` (gradient x input of ``f = ||predicted standardised signature||² / 2``),
:func:`structure_faithfulness` (masking top against random atoms) and :func:`motif_overlap` (do the top atoms fall
on a known pharmacophore, e.g. the kinase hinge binders of :data:`HINGE_BINDER_SMARTS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from rdkit import Chem
from sklearn.metrics import roc_auc_score

from .. import chem
from ..models.gnn import TOKEN_NAMES, PerturbationGNN
from ..models.structure import StructureRegressor
from ..tasks.l1000 import Inputs, Prepared, batch
from ..training import to_device


@dataclass
class Attributions:
    """Attributions for profiles ``rows`` (one entry per row; atoms in RDKit atom order of the compound).

    Attributes:
        rows: (n,) dataset positions.
        atom_gradient: per row, float (n_atoms,) gradient x input.
        atom_attention: per row, float (n_atoms,) attention received in the last GAT layer.
        gene_gradient: float (n, genes) gradient x input of the basal values.
        gene_pool: float (n, genes) attention-pooling weights of the gene graph.
        token_attention: DataFrame (n, 4) attention received by each token (columns = token names).
        predicted_change: float (n, genes).
    """

    rows: np.ndarray
    atom_gradient: list[np.ndarray]
    atom_attention: list[np.ndarray]
    gene_gradient: np.ndarray
    gene_pool: np.ndarray
    token_attention: pd.DataFrame
    predicted_change: np.ndarray


def _row_batch(model: PerturbationGNN, inputs: Inputs, prepared: Prepared, rows: np.ndarray):
    """Inputs of ``rows`` on the model's device with one molecule per row (so atom scales are per profile)."""
    device = next(model.parameters()).device
    b = to_device(batch(inputs, prepared, rows), device)
    compound_index, basal, dose, time = b.compound, b.basal, b.dose, b.time
    molecules = model.molecule_batch(compound_index, distinct=False)
    return compound_index, basal, dose, time, molecules


def attributions(model: PerturbationGNN, inputs: Inputs, prepared: Prepared, rows: np.ndarray,
                 batch_size: int = 64) -> Attributions:
    """Gradient x input and attention of atoms, genes and tokens for the profiles at ``rows``."""
    model.eval()
    atom_gradient, atom_attention, genes, pools, tokens, changes = [], [], [], [], [], []
    for start in range(0, len(rows), batch_size):
        part = rows[start:start + batch_size]
        compound_index, basal, dose, time, molecules = _row_batch(model, inputs, prepared, part)
        graph_batch = molecules[0]
        atom_scale = torch.ones(graph_batch.num_nodes, device=basal.device, requires_grad=True)
        gene_scale = torch.ones_like(basal, requires_grad=True)
        change, info = model(compound_index, basal, dose, time, atom_scale, gene_scale, molecules, details=True)
        (0.5 * (change**2).sum()).backward()  # rows are independent: one backward gives every row's gradient
        atom_of = graph_batch.batch.cpu().numpy()
        source, target = info["gat_edge_index"].detach().cpu().numpy()
        alpha = info["gat_attention"].detach().mean(dim=1).cpu().numpy()
        received = np.bincount(source[source != target], weights=alpha[source != target],
                               minlength=graph_batch.num_nodes)
        gradient = atom_scale.grad.cpu().numpy()
        for i in range(len(part)):
            atom_gradient.append(gradient[atom_of == i])
            atom_attention.append(received[atom_of == i])
        genes.append(gene_scale.grad.cpu().numpy())
        pools.append(info["gene_pool"].detach().cpu().numpy())
        tokens.append(info["token_attention"][-1].detach().mean(dim=1).cpu().numpy())
        changes.append(change.detach().cpu().numpy())
    return Attributions(np.asarray(rows), atom_gradient, atom_attention, np.concatenate(genes),
                        np.concatenate(pools), pd.DataFrame(np.concatenate(tokens), columns=list(TOKEN_NAMES)),
                        np.concatenate(changes))


def pathway_importance(gene_scores: np.ndarray, pathways: dict[str, list[int]], min_size: int = 5) -> pd.DataFrame:
    """Rank pathways by the mean |score| of their landmark genes.

    Args:
        gene_scores: (genes,) attribution of each landmark gene for one prediction.
        pathways: name -> landmark positions (e.g. ``GeneGraph.pathways``).
        min_size: pathways with fewer landmark genes are skipped (a single gene would rank as its pathway).

    Returns:
        DataFrame pathway, landmark_genes, mean_abs_attribution, sorted high to low.
    """
    scores = np.abs(np.asarray(gene_scores))
    rows = [(name, len(members), scores[members].mean()) for name, members in pathways.items()
            if len(members) >= min_size]
    table = pd.DataFrame(rows, columns=["pathway", "landmark_genes", "mean_abs_attribution"])
    return table.sort_values("mean_abs_attribution", ascending=False, ignore_index=True)


@torch.no_grad()
def _masked_change(model: PerturbationGNN, inputs: Inputs, prepared: Prepared, rows: np.ndarray,
                   atom_masks: list[np.ndarray] | None = None, gene_masks: np.ndarray | None = None) -> np.ndarray:
    compound_index, basal, dose, time, molecules = _row_batch(model, inputs, prepared, rows)
    atom_scale = gene_scale = None
    if atom_masks is not None:
        atom_scale = torch.as_tensor(np.concatenate([1.0 - m for m in atom_masks]), dtype=torch.float32,
                                     device=basal.device)
    if gene_masks is not None:
        gene_scale = torch.as_tensor(1.0 - gene_masks, dtype=torch.float32, device=basal.device)
    return model(compound_index, basal, dose, time, atom_scale, gene_scale, molecules).cpu().numpy()


def faithfulness(model: PerturbationGNN, inputs: Inputs, prepared: Prepared, found: Attributions,
                 kind: str, n_masked: int | float, n_random: int = 5, seed: int = 0) -> pd.DataFrame:
    """How much the prediction moves when the top-attributed atoms or genes are masked, against random ones.

    Args:
        found: attributions of the rows to test.
        kind: ``"atoms"`` (mask = input embedding 0) or ``"genes"`` (mask = basal at the training mean).
        n_masked: number of units masked per profile; a float in (0, 1) is a fraction of the molecule's atoms.
        n_random: random masks of the same size per profile (their effects are averaged).

    Returns:
        One row per profile: ``top`` and ``random`` = ||masked - original prediction|| / ||original prediction||,
        and ``masked`` (units masked).
    """
    if kind not in ("atoms", "genes"):
        raise ValueError(f"kind must be 'atoms' or 'genes', not {kind!r}")
    rng = np.random.default_rng(seed)
    rows, original = found.rows, found.predicted_change
    norm = np.linalg.norm(original, axis=1)

    def masks_from(choose) -> list[np.ndarray]:
        scores = found.atom_gradient if kind == "atoms" else list(found.gene_gradient)
        out = []
        for score in scores:
            k = max(1, int(round(n_masked * len(score)))) if isinstance(n_masked, float) else int(n_masked)
            mask = np.zeros(len(score))
            mask[choose(np.abs(score), min(k, len(score)))] = 1.0
            out.append(mask)
        return out

    def effect(masks: list[np.ndarray]) -> np.ndarray:
        if kind == "atoms":
            moved = _masked_change(model, inputs, prepared, rows, atom_masks=masks)
        else:
            moved = _masked_change(model, inputs, prepared, rows, gene_masks=np.stack(masks))
        return np.linalg.norm(moved - original, axis=1) / norm

    top_masks = masks_from(lambda score, k: np.argsort(-score, kind="stable")[:k])
    random_effects = [effect(masks_from(lambda score, k: rng.choice(len(score), k, replace=False)))
                      for _ in range(n_random)]
    return pd.DataFrame({"row": rows, "masked": [int(m.sum()) for m in top_masks], "top": effect(top_masks),
                         "random": np.mean(random_effects, axis=0)})


def causal_atoms(smiles: str, causal_bits: np.ndarray, n_bits: int, radius: int = 2) -> np.ndarray:
    """Boolean mask (n_atoms,) of the atoms inside an environment that sets one of the simulator's causal
    fingerprint bits."""
    covered = chem.morgan_bit_atoms(smiles, radius=radius, n_bits=n_bits)
    mask = np.zeros(chem.mol_from_smiles(smiles).GetNumAtoms(), dtype=bool)
    for bit in set(covered) & {int(b) for b in causal_bits}:
        mask[list(covered[bit])] = True
    return mask


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    labels = np.asarray(labels, dtype=bool)
    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else np.nan


def atom_recovery(found: Attributions, inputs: Inputs, truth) -> pd.DataFrame:
    """Per profile: AUROC of |gradient x input| and of GAT attention for the simulator's causal atoms.

    Causal atoms are those in the Morgan environments (radius 2, the simulator's fingerprint length) of the
    causal bits present in the compound. 0.5 = no better than chance; NaN when all or no atoms are causal.
    """
    n_bits = truth.fingerprints.shape[1]
    smiles = inputs.data.metadata["canonical_smiles"].to_numpy()[found.rows]
    rows = []
    for row, text, gradient, attention in zip(found.rows, smiles, found.atom_gradient, found.atom_attention):
        labels = causal_atoms(text, truth.causal_bits, n_bits)
        rows.append({"row": row, "atoms": len(labels), "causal_atoms": int(labels.sum()),
                     "gradient_auroc": _auroc(labels, np.abs(gradient)), "attention_auroc": _auroc(labels, attention)})
    return pd.DataFrame(rows)


def gene_recovery(found: Attributions, inputs: Inputs, truth, k: int = 50) -> pd.DataFrame:
    """Per profile, against the genes of the programs the compound's causal bits drive (``truth.causal_genes``):

    - ``input_auroc``: AUROC of |gradient x input| on basal genes (in the simulator, a program's basal
      expression sets how strongly a cell line responds to it, so those inputs are causal);
    - ``predicted_precision``: fraction of the k genes with the largest |predicted change| that are causal;
    - ``base_rate``: fraction of all genes that are causal (the precision of a random pick).
    """
    compounds = inputs.data.metadata["compound_id"].to_numpy()[found.rows]
    rows = []
    for i, (row, compound) in enumerate(zip(found.rows, compounds)):
        labels = np.zeros(found.gene_gradient.shape[1], dtype=bool)
        labels[truth.causal_genes(compound)] = True
        top = np.argsort(-np.abs(found.predicted_change[i]))[:k]
        rows.append({"row": row, "causal_genes": int(labels.sum()),
                     "input_auroc": _auroc(labels, np.abs(found.gene_gradient[i])),
                     "predicted_precision": labels[top].mean(), "base_rate": labels.mean()})
    return pd.DataFrame(rows)


def recovery_table(found: Attributions, inputs: Inputs, truth, k: int = 50) -> pd.DataFrame:
    """Summary of :func:`atom_recovery` and :func:`gene_recovery`: one row per check with its score (AUROC or
    precision), the mean over profiles, what chance gives, and how many profiles were scored."""
    atoms, genes = atom_recovery(found, inputs, truth), gene_recovery(found, inputs, truth, k)
    return pd.DataFrame({
        "what": ["causal atoms: |gradient x input|", "causal atoms: GAT attention",
                 "causal basal genes: |gradient x input|", f"causal genes among the {k} largest predicted changes"],
        "score": ["AUROC", "AUROC", "AUROC", "precision"],
        "mean": [atoms["gradient_auroc"].mean(), atoms["attention_auroc"].mean(), genes["input_auroc"].mean(),
                 genes["predicted_precision"].mean()],
        "chance": [0.5, 0.5, 0.5, genes["base_rate"].mean()],
        "profiles scored": [atoms["gradient_auroc"].notna().sum(), atoms["attention_auroc"].notna().sum(),
                            genes["input_auroc"].notna().sum(), len(genes)],
    })


# ------------------------------------------------------------------------------------------ structure-only model

#: Hinge-binding motifs of ATP-competitive kinase inhibitors (SMARTS): the 2-anilino/amino-pyrimidine of imatinib
#: and nilotinib, the quinazoline (N1 binds the hinge) of gefitinib, erlotinib and lapatinib, and the
#: 2-aminothiazole of dasatinib.
HINGE_BINDER_SMARTS = {
    "2-aminopyrimidine": "[NX3]-c1ncccn1",
    "quinazoline": "c1ncnc2ccccc12",
    "2-aminothiazole": "[NX3]-c1nccs1",
}


def motif_atoms(smiles: str, patterns: dict[str, str] | None = None, record: str = "") -> np.ndarray:
    """Boolean mask (n_atoms,) of the atoms of ``smiles`` inside any match of ``patterns`` (name -> SMARTS;
    default :data:`HINGE_BINDER_SMARTS`)."""
    mol = chem.mol_from_smiles(smiles, record)
    mask = np.zeros(mol.GetNumAtoms(), dtype=bool)
    for name, smarts in (patterns or HINGE_BINDER_SMARTS).items():
        pattern = Chem.MolFromSmarts(smarts)
        if pattern is None:
            raise ValueError(f"motif {name!r}: invalid SMARTS {smarts!r}")
        for match in mol.GetSubstructMatches(pattern):
            mask[list(match)] = True
    return mask


def structure_atom_attributions(model: StructureRegressor, compound: np.ndarray
                                ) -> tuple[list[np.ndarray], np.ndarray]:
    """Gradient x input of each atom (its input embedding scaled by ``atom_scale`` at 1) for drugs ``compound``.

    Args:
        model: a trained structure regressor (eval mode is set).
        compound: (n,) drug positions in the model's graph table.

    Returns:
        (per drug float (n_atoms,) attributions in RDKit atom order, float (n, genes) predicted standardised
        signatures).
    """
    model.eval()
    device = next(model.parameters()).device
    index = torch.as_tensor(np.asarray(compound), dtype=torch.long, device=device)
    molecules = model.molecule_batch(index, distinct=False)
    atom_scale = torch.ones(molecules[0].num_nodes, device=device, requires_grad=True)
    predicted = model(index, atom_scale, molecules)
    (0.5 * (predicted**2).sum()).backward()  # drugs are independent: one backward gives each drug's gradient
    atom_of = molecules[0].batch.cpu().numpy()
    gradient = atom_scale.grad.cpu().numpy()
    return [gradient[atom_of == i] for i in range(len(index))], predicted.detach().cpu().numpy()


@torch.no_grad()
def _structure_masked(model: StructureRegressor, compound: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    device = next(model.parameters()).device
    index = torch.as_tensor(np.asarray(compound), dtype=torch.long, device=device)
    scale = torch.as_tensor(np.concatenate([1.0 - m for m in masks]), dtype=torch.float32, device=device)
    return model(index, scale, model.molecule_batch(index, distinct=False)).cpu().numpy()


def structure_faithfulness(model: StructureRegressor, compound: np.ndarray, scores: list[np.ndarray],
                           n_masked: int = 3, n_random: int = 20, seed: int = 0) -> pd.DataFrame:
    """How much the predicted signature moves when the ``n_masked`` atoms of largest |score| are masked (input
    embedding 0), against ``n_random`` random masks of the same size.

    Returns:
        One row per drug: ``masked`` atoms, ``top`` and ``random`` (mean over the random masks) =
        ||masked - original prediction|| / ||original prediction||, and ``random_rank``: the fraction of random
        masks that moved the prediction less than the top atoms did (1 = top atoms beat every random pick).
    """
    rng = np.random.default_rng(seed)
    original = _structure_masked(model, compound, [np.zeros(len(s)) for s in scores])
    norm = np.linalg.norm(original, axis=1)

    def effect(choose) -> np.ndarray:
        masks = []
        for score in scores:
            mask = np.zeros(len(score))
            mask[choose(np.abs(score), min(n_masked, len(score)))] = 1.0
            masks.append(mask)
        return np.linalg.norm(_structure_masked(model, compound, masks) - original, axis=1) / norm

    top = effect(lambda score, k: np.argsort(-score, kind="stable")[:k])
    random = np.stack([effect(lambda score, k: rng.choice(len(score), k, replace=False)) for _ in range(n_random)])
    return pd.DataFrame({"masked": [min(n_masked, len(s)) for s in scores], "top": top,
                         "random": random.mean(axis=0), "random_rank": (random < top).mean(axis=0)})


def motif_overlap(scores: np.ndarray, motif: np.ndarray, k: int | None = None) -> dict[str, float]:
    """Do the atoms of largest |score| fall on a motif?

    Args:
        scores: (n_atoms,) attributions; motif: bool (n_atoms,) (:func:`motif_atoms`).
        k: top atoms considered (default: the motif's size).

    Returns:
        ``motif_atoms``, ``top_k``, ``top_in_motif`` (fraction of the top-k atoms in the motif), ``chance`` (the
        motif's fraction of all atoms: the expected ``top_in_motif`` of a random ranking) and ``auroc`` of |score|
        for motif atoms (NaN when the motif is absent or covers the molecule).
    """
    motif = np.asarray(motif, dtype=bool)
    k = int(k or max(int(motif.sum()), 1))
    top = np.argsort(-np.abs(scores), kind="stable")[:k]
    return {"motif_atoms": int(motif.sum()), "top_k": k, "top_in_motif": float(motif[top].mean()),
            "chance": float(motif.mean()), "auroc": _auroc(motif, np.abs(scores))}
