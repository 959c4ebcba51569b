"""perturbx: the tested package behind the book's reproductions of drug-perturbation models.

Subpackages and modules:

- :mod:`perturbx.datasets`: the data registry and the checksummed fetcher.
- :mod:`perturbx.book`: the chapter convention (profiles, provenance) and the papermill runner.
- :mod:`perturbx.runtime`: seeds, devices and the git commit.
"""

__version__ = "0.1.0"
