"""The book's experiments: one protocol, its three instances, and the L1000 task they share.

- :mod:`~perturbx.experiments.protocol`: model registry keyed by stable ids, settings per profile, the result
  shape, and the shared run / results-table / speed-table functions;
- :mod:`~perturbx.experiments.l1000`: the L1000 task shared by chapters 03 and 04 (inputs, per-split scaling fitted
  on training rows, the typed :class:`~perturbx.experiments.l1000.L1000Batch`, splits, baselines, simulator truth);
- :mod:`~perturbx.experiments.drp`: drug response (chapter 02): priors, gradient boosting, DeepDRA, cross-attention;
- :mod:`~perturbx.experiments.expression`: the interpretable graph model against the baselines (chapter 03);
- :mod:`~perturbx.experiments.signatures`: unseen drugs on real data, a DrugBank drug's consensus signature from
  its structure alone on scaffold-grouped folds (chapter 03);
- :mod:`~perturbx.experiments.generative`: the diffusion model and the encoder-decoder, sampled per condition
  (chapter 04).
"""
