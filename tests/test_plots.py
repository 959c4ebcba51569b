"""Layout of the shared figures: titles and legends must not cover each other or the data."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from perturbx import plots  # noqa: E402


def _runs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"model": np.repeat(["drug prior", "DeepDRA", "cross-attention"], 6),
                         "protocol": np.tile(np.repeat(["paper", "leakage-free"], 3), 3),
                         "roc_auc": rng.uniform(0.8, 0.9, 18), "auprc": rng.uniform(0.7, 0.9, 18)})


def _sweep() -> pd.DataFrame:
    return pd.DataFrame({"guidance": [0.0, 1.0, 2.0] * 2, "series": ["SKBR3"] * 3 + ["simulator"] * 3,
                         "pearson_change": [0.03, 0.035, 0.034, 0.028, 0.033, 0.035],
                         "spread_ratio": [1.16, 1.15, 1.14, 1.26, 1.15, 1.07]})


@pytest.mark.parametrize("draw", [
    lambda: plots.model_comparison(_runs(), ["roc_auc", "auprc"], "CTRP+GDSC -> CCLE", hue="protocol"),
    lambda: plots.metric_curves(_sweep(), "guidance", ["pearson_change", "spread_ratio"], "Guidance sweep",
                                hue="series"),
    lambda: plots.sample_clouds(np.random.default_rng(0).normal(size=(50, 20)),
                                {"diffusion": np.random.default_rng(1).normal(size=(30, 20))}, "One condition"),
], ids=["model_comparison", "metric_curves", "sample_clouds"])
def test_panel_figures_keep_their_title_and_legend_clear_of_the_panels(draw):
    fig = draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in fig.axes:
        panel = ax.get_tightbbox(renderer)  # the axes with their title and tick labels
        assert title.y0 >= panel.y1 - 1, "the figure title overlaps a panel's title"
        assert legend.y1 <= panel.y0 + 1, "the legend covers a panel"


@pytest.mark.parametrize("draw", [
    lambda rng: plots.correlation_distributions({f"dose {d}": rng.normal(0.9, 0.05, 40) for d in range(6)}, "by dose"),
    lambda rng: plots.count_distributions({"real": rng.integers(1, 900, 300), "simulated": rng.integers(1, 50, 300)},
                                          "Sparsity", "conditions"),
], ids=["correlation_distributions", "count_distributions"])
def test_single_axes_figures_keep_their_legend_off_the_data(draw):
    fig = draw(np.random.default_rng(0))
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend, data_area = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.y1 <= data_area.y0, "the legend covers the densities"
    assert legend.y0 >= 0, "the legend is cut off at the bottom of the figure"
