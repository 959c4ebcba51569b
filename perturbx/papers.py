"""The three papers the book reproduces, and the numbers they report (reference values only).

Nothing here was computed by this package: a paper's number appears in the book only in a column labelled as the
paper's (``paper <metric>``, ``paper reported``). The chapters and the Reproduction page read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    """A paper of the book: a short title for tables, and the chapter that reproduces it."""

    key: str
    title: str
    chapter: str


DIFFUSION = Paper("diffusion", "Diffusion model of drug-induced L1000 profiles", "04_diffusion")
GRAPH = Paper("graph", "Interpretable pathway-graph model of L1000 profiles", "03_gnn")
DRP = Paper("drp", "Bidirectional cross-attention drug response", "02_drp")
PAPERS = (DRP, GRAPH, DIFFUSION)

# Reported by the cross-attention paper (Cho and Kim), tables 1 and 2, for DeepDRA and the proposed model, keyed by
# experiment and model id (perturbx.studies.drug_response.MODELS). Its precision and recall may follow DeepDRA's code,
# which computes them for the resistant class (see perturbx.evaluation.metrics.deepdra_precision_recall).
DRP_REPORTED = {
    "5-fold CV on CTRP+GDSC": {
        "deepdra": {"accuracy": 0.953, "precision": 0.945, "recall": 0.96, "f1": 0.952, "roc_auc": 0.992,
                    "auprc": 0.992},
        "cross_attention": {"accuracy": 0.956, "precision": 0.939, "recall": 0.969, "f1": 0.954, "roc_auc": 0.993,
                            "auprc": 0.993},
    },
    "CTRP+GDSC -> CCLE": {
        "deepdra": {"accuracy": 0.804, "precision": 0.832, "recall": 0.823, "f1": 0.823, "roc_auc": 0.883,
                    "auprc": 0.887},
        "cross_attention": {"accuracy": 0.829, "precision": 0.842, "recall": 0.850, "f1": 0.846, "roc_auc": 0.910,
                            "auprc": 0.913},
    },
}


def drp_reported(experiment: str, model_id: str, metric: str) -> float | None:
    """The cross-attention paper's reported ``metric`` of ``model_id`` in ``experiment``, or None."""
    return DRP_REPORTED.get(experiment, {}).get(model_id, {}).get(metric)
