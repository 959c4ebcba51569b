"""Evaluation: how predictions are scored and claims decided.

- :mod:`~perturbx.evaluation.metrics`: classification, expression and distribution metrics, summaries over seeds,
  paired per-seed comparisons;
- :mod:`~perturbx.evaluation.distributions`: distribution scores of generated profiles per test condition;
- :mod:`~perturbx.evaluation.replicates`: replicate agreement, DMSO spread and the ceilings replicates give;
- :mod:`~perturbx.evaluation.learnability`: what the semi-synthetic simulator lets a model learn;
- :mod:`~perturbx.evaluation.claims`: a claim, its evidence and the verdict that follows;
- :mod:`~perturbx.evaluation.explain`: attributions of the graph and structure models and checks of them.
"""
