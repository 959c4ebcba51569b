"""Models of the book, one module per family.

- :mod:`perturbx.models.drp`: DeepDRA and the bidirectional cross-attention drug-response model.
- :mod:`perturbx.models.classical`: baselines without deep learning (priors, gradient boosting).
"""
