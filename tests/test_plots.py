"""Layout of the shared figures: titles and legends must not cover each other or the data."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from perturbx import plots  # noqa: E402


def _runs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"model": np.repeat(["drug prior", "DeepDRA", "cross-attention"], 6),
                         "protocol": np.tile(np.repeat(["paper", "leakage-free"], 3), 3),
                         "roc_auc": rng.uniform(0.8, 0.9, 18), "auprc": rng.uniform(0.7, 0.9, 18)})


def test_model_comparison_keeps_its_title_and_legend_clear_of_the_panels():
    fig = plots.model_comparison(_runs(), ["roc_auc", "auprc"], "CTRP+GDSC -> CCLE", hue="protocol")
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in fig.axes:
        panel = ax.get_tightbbox(renderer)  # the axes with their title and tick labels
        assert title.y0 >= panel.y1 - 1, "the figure title overlaps a panel's title"
        assert legend.y1 <= panel.y0 + 1, "the legend covers a panel"
