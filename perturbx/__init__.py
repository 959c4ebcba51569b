"""perturbx: the tested package behind the book's reproductions of drug-perturbation models.

Layers, each importing only from the ones before it (``tests/test_package_shape.py`` checks every import):

1. :mod:`perturbx.runtime`, :mod:`perturbx.profiles`, :mod:`perturbx.papers`, :mod:`perturbx.chem`,
   :mod:`perturbx.pathways`: seeds and devices, the chapter profiles, the three papers' reported numbers
   (reference only), RDKit featurisation, gene sets and GSEA.
2. :mod:`perturbx.datasets`: the data registry, the checksummed fetcher, CMap readers and writer, L1000 curation,
   drug-response assembly and the semi-synthetic generator.
3. :mod:`perturbx.tasks` and :mod:`perturbx.splits`: what a model sees (inputs, training-fitted scaling, typed
   batches) and the splitter.
4. :mod:`perturbx.models` and :mod:`perturbx.training`: one module per model family, and the one fit loop.
5. :mod:`perturbx.evaluation`: metrics, distribution scores, replicate ceilings, claims and verdicts,
   explanations.
6. :mod:`perturbx.studies`: the only code that knows a chapter (its settings, model registry, runs, tables and
   claims).
7. :mod:`perturbx.book` (the chapter API, the papermill runner, the publishing rule, the Reproduction page) and
   :mod:`perturbx.plots` (the book's figures); on top, :mod:`perturbx.cli` (the command) and
   :mod:`perturbx.sphinxext` (the HTML build's check).
"""

__version__ = "0.1.0"
