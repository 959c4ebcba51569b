"""The tasks: what a model sees, and nothing else.

Each task turns curated data into split-independent inputs, fits its scaling on the training rows of a split only,
and builds the typed batches its torch models train on.

- :mod:`~perturbx.tasks.l1000`: a drug-induced L1000 profile (change from basal of the 978 landmarks) from
  compound, basal expression, dose and time (chapters 03 and 04);
- :mod:`~perturbx.tasks.consensus_signatures`: a drug's consensus signature from its structure alone (chapter 03);
- :mod:`~perturbx.tasks.drug_cell_pairs`: a (cell line, drug) pair sensitive or resistant (chapter 02).
"""

import hashlib


def digest(values) -> str:
    """sha256 of the values' text, one per line: the fingerprint of an ordered table (compounds, genes) that a
    saved model checks when it is loaded for a task."""
    return hashlib.sha256("\n".join(map(str, values)).encode()).hexdigest()
