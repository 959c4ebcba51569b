"""perturbx: the tested package behind the book's reproductions of drug-perturbation models.

Subpackages and modules, from data to book:

- :mod:`perturbx.datasets`: the data registry, the checksummed fetcher, CMap readers and writer, L1000 curation,
  drug-response assembly and the semi-synthetic generator.
- :mod:`perturbx.chem`, :mod:`perturbx.pathways`: RDKit featurisation; gene sets, the pathway gene graph, GSEA.
- :mod:`perturbx.splits`, :mod:`perturbx.metrics`, :mod:`perturbx.analysis`: splits, metrics, analyses of data.
- :mod:`perturbx.models`: one module per model family.
- :mod:`perturbx.training`: the one fit loop of every torch model.
- :mod:`perturbx.experiments`: the one experiment protocol and its instances for chapters 02-04.
- :mod:`perturbx.explain`: attributions of the graph model and checks of them.
- :mod:`perturbx.papers`: the three papers and their reported numbers (reference only).
- :mod:`perturbx.plots`: the book's figures.
- :mod:`perturbx.book`: the chapter API, the papermill runner and the publishing rule;
  :mod:`perturbx.reproduction` the Reproduction page; :mod:`perturbx.sphinxext` the HTML build's check.
- :mod:`perturbx.runtime`: seeds, devices, the git commit and package versions; :mod:`perturbx.cli` the command.
"""

__version__ = "0.1.0"
