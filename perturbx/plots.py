"""Figures of the book (seaborn/matplotlib). Each function returns its matplotlib Figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

sns.set_theme(context="notebook", style="whitegrid")


def count_panels(metadata: pd.DataFrame, columns: Sequence[str] = ("cell_id", "dose_um", "time_h"),
                 hue: str = "source", top: int = 30) -> plt.Figure:
    """Profile counts: the first column (cell lines: the ``top`` most frequent) on top, the others below."""
    fig = plt.figure(figsize=(11, 7.5))
    grid = fig.add_gridspec(2, len(columns) - 1, height_ratios=[1.1, 1])
    axes = [fig.add_subplot(grid[0, :])] + [fig.add_subplot(grid[1, i]) for i in range(len(columns) - 1)]
    for ax, column in zip(axes, columns):
        numeric = pd.api.types.is_numeric_dtype(metadata[column])
        values = metadata[column].map(lambda v: "unknown" if pd.isna(v) else f"{v:g}") if numeric \
            else metadata[column].astype(str)
        order = list(values.value_counts().index[:top])
        if numeric:
            order = sorted(order, key=lambda v: np.inf if v == "unknown" else float(v))
        frame = metadata.assign(**{column: values})
        sns.countplot(data=frame[frame[column].isin(order)], x=column, hue=hue, order=order, ax=ax)
        ax.set_title(f"profiles per {column}" + (f" (top {top})" if len(order) == top else ""))
        ax.tick_params(axis="x", rotation=90 if column == columns[0] else 0)
        if ax is not axes[0] and ax.get_legend():
            ax.get_legend().remove()
    fig.tight_layout()
    return fig


def correlation_distributions(groups: dict[str, np.ndarray], title: str, xlabel: str = "Pearson r") -> plt.Figure:
    """Overlaid densities (and medians) of several sets of correlations, e.g. replicate vs random pairs."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values in groups.items():
        values = np.asarray(values)[np.isfinite(values)]
        sns.kdeplot(values, ax=ax, label=f"{label} (n={len(values)}, median {np.median(values):.2f})",
                    fill=True, alpha=0.25, cut=0, common_norm=False)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    return fig


def embedding(points: np.ndarray, labels: pd.Series, title: str, axis_names: Sequence[str] = ("PC1", "PC2"),
              palette: str = "viridis") -> plt.Figure:
    """A 2-D scatter of ``points`` (n, 2) coloured by ``labels``."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=labels.to_numpy(), palette=palette, s=22, ax=ax,
                    linewidth=0)
    ax.set(xlabel=axis_names[0], ylabel=axis_names[1], title=title)
    ax.legend(title=labels.name, fontsize=8, title_fontsize=9, loc="best")
    fig.tight_layout()
    return fig


def dose_response(doses_um: np.ndarray, changes: np.ndarray, gene_names: Sequence[str], title: str,
                  truth: np.ndarray | None = None) -> plt.Figure:
    """Change from basal (log2) against dose for a few genes; ``truth`` (same shape) adds the true mean curve.

    Args:
        doses_um: (n,) doses in µM.
        changes: (n, genes) observed change from basal of the plotted genes.
        gene_names: (genes,) labels.
        truth: optional (n, genes) true mean change.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = sns.color_palette("tab10", len(gene_names))
    order = np.argsort(doses_um)
    for j, (name, colour) in enumerate(zip(gene_names, colours)):
        ax.scatter(doses_um, changes[:, j], color=colour, s=18, alpha=0.7)
        curve = truth[order, j] if truth is not None else changes[order, j]
        ax.plot(doses_um[order], curve, color=colour, label=name, lw=1.5, ls="-" if truth is not None else ":")
    ax.set_xscale("log")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="dose (µM)", ylabel="change from basal (log2)", title=title)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig
