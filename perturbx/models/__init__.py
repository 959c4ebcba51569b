"""Models of the book, one module per family: the network, its loss and its estimator.

Every learned model has an estimator (:class:`perturbx.models.estimator.Estimator`): ``fit(fold, seed)``,
``predict(fold, rows)``, ``sample(...)`` for the generative ones, ``save(folder)`` and ``load(folder, task)``.

- :mod:`perturbx.models.estimator`: the interface and the saved-model bundle (verified by sha256 when loaded).

- :mod:`perturbx.models.drug_response`: DeepDRA and the bidirectional cross-attention drug-response model.
- :mod:`perturbx.models.gnn`: the interpretable graph model of drug-induced expression.
- :mod:`perturbx.models.diffusion`: the conditional diffusion model (DDPM/DDIM, classifier-free guidance).
- :mod:`perturbx.models.encoder_decoder`: the PRnet-style encoder-decoder baseline.
- :mod:`perturbx.models.generative`: the diffusion model and the encoder-decoder as one L1000 estimator.
- :mod:`perturbx.models.structure`: structure-only models of a consensus signature (the GAT compound encoder with a
  regression head; the fingerprint conditioner of the diffusion model).
- :mod:`perturbx.models.classical`: baselines without deep learning (priors, gradient boosting, scikit-learn
  regressors of expression changes).
"""
