"""The book's studies: the only code that knows a chapter.

- :mod:`~perturbx.studies.protocol`: model registry keyed by stable ids, settings per profile, the result shape,
  and the shared run / results-table / speed-table functions;
- :mod:`~perturbx.studies.l1000_baselines`: the baselines both L1000 chapters compare against;
- :mod:`~perturbx.studies.drug_response`: drug response (chapter 02): priors, gradient boosting, DeepDRA,
  cross-attention;
- :mod:`~perturbx.studies.graph_model`: the interpretable graph model against the baselines (chapter 03);
- :mod:`~perturbx.studies.signatures`: unseen drugs on real data, a DrugBank drug's consensus signature from its
  structure alone on scaffold-grouped folds (chapter 03);
- :mod:`~perturbx.studies.generative`: the diffusion model and the encoder-decoder, sampled per condition, and
  :mod:`~perturbx.studies.generative_claims` its verdicts (chapter 04).
"""
