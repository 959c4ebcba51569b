"""Figures of the book (seaborn/matplotlib). Each function returns its matplotlib Figure."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colormaps
from rdkit.Chem import Draw
from sklearn.decomposition import PCA
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from .chem import mol_from_smiles

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
        crowded = column == columns[0] or len(order) > 6
        ax.tick_params(axis="x", rotation=90 if column == columns[0] else 45 if crowded else 0)
        if crowded and column != columns[0]:
            plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
        if ax is not axes[0] and ax.get_legend():
            ax.get_legend().remove()
    fig.tight_layout()
    return fig


def correlation_distributions(groups: dict[str, np.ndarray], title: str, xlabel: str = "Pearson r") -> plt.Figure:
    """Overlaid densities (and medians) of several sets of correlations, e.g. replicate vs random pairs."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for label, values in groups.items():
        values = np.asarray(values)[np.isfinite(values)]
        sns.kdeplot(values, ax=ax, label=f"{label} (n={len(values)}, median {np.median(values):.2f})",
                    fill=True, alpha=0.25, cut=0, common_norm=False)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    _legend_under_axes(ax, len(groups))
    fig.tight_layout()
    return fig


def embedding(points: np.ndarray, labels: pd.Series, title: str, axis_names: Sequence[str] = ("PC1", "PC2"),
              palette: str = "viridis") -> plt.Figure:
    """A 2-D scatter of ``points`` (n, 2) coloured by ``labels``."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    hue, order = labels.to_numpy(), None
    if pd.api.types.is_numeric_dtype(labels) and labels.nunique() <= 12:
        # a few doses are categories: one clearly different colour each, in numeric order (a continuous scale
        # would make 0.04 and 0.37 the same colour)
        levels = sorted(labels.dropna().unique())
        hue, order = labels.map(lambda v: f"{v:g}").to_numpy(), [f"{v:g}" for v in levels]
        palette = sns.color_palette(palette, len(levels))
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=hue, hue_order=order, palette=palette, s=22, ax=ax,
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


def roc_pr_curves(labels: np.ndarray, scores: dict[str, np.ndarray], title: str) -> plt.Figure:
    """ROC and precision-recall curves of several models on one test set (positive class = 1)."""
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(12, 5))
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(labels, score)
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(labels, score):.3f})")
        precision, recall, _ = precision_recall_curve(labels, score)
        pr_ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(labels, score):.3f})")
    roc_ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    pr_ax.axhline(np.mean(labels), color="grey", lw=0.8, ls="--", label=f"positive rate {np.mean(labels):.3f}")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall")
    for ax in (roc_ax, pr_ax):
        ax.legend(fontsize=8, loc="lower right" if ax is roc_ax else "lower left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def per_group_distribution(table: pd.DataFrame, value: str, group: str, title: str) -> plt.Figure:
    """Box plots with points of ``value`` per ``group`` (e.g. per-drug AUC per model)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.boxplot(data=table, x=group, y=value, ax=ax, color="white", fliersize=0)
    sns.stripplot(data=table, x=group, y=value, ax=ax, size=4, alpha=0.6)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=15)
    fig.tight_layout()
    return fig


def attention_maps(maps: Sequence[np.ndarray], row_labels: Sequence[str], column_labels: Sequence[str],
                   titles: Sequence[str], suptitle: str) -> plt.Figure:
    """Heatmaps of attention weights (rows: queries, columns: keys; each row sums to 1)."""
    fig, axes = plt.subplots(1, len(maps), figsize=(1.2 + 2.9 * len(maps), 3.6), squeeze=False)
    for ax, weights, title in zip(axes[0], maps, titles):
        sns.heatmap(weights, vmin=0, vmax=1, annot=True, fmt=".2f", cmap="Blues", cbar=False, ax=ax,
                    xticklabels=column_labels, yticklabels=row_labels if ax is axes[0][0] else False)
        ax.set_title(textwrap.fill(title, 24), fontsize=11)
        ax.tick_params(axis="x", rotation=30)
        ax.tick_params(axis="y", rotation=0)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def model_comparison(runs: pd.DataFrame, metrics: Sequence[str], title: str, hue: str = "split") -> plt.Figure:
    """Bars (mean over seeds, with the seeds as points) of each metric per model, one panel per metric."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4.2), squeeze=False, sharey=False)
    for ax, metric in zip(axes[0], metrics):
        sns.barplot(data=runs, y="model", x=metric, hue=hue, ax=ax, errorbar=None, alpha=0.8)
        sns.stripplot(data=runs, y="model", x=metric, hue=hue, ax=ax, dodge=True, palette="dark:black", size=3,
                      legend=False)
        ax.set(ylabel="" if ax is not axes[0][0] else "model", title=metric)
        if ax is not axes[0][0]:
            ax.set_yticklabels([])
    fig.suptitle(title)  # before the layout, which then keeps the panel titles clear of it
    _legend_below(fig, axes[0])
    return fig


def _legend_under_axes(ax, entries: int) -> None:
    """The axes' legend below its x label, where it cannot cover the data (inside, it covered density peaks)."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2 if entries > 3 else 1, fontsize=9,
              frameon=False)


def _legend_below(fig: plt.Figure, axes) -> None:
    """One legend for all panels, below them, where it cannot cover data."""
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes:
        if ax.get_legend():
            ax.get_legend().remove()
    fig.tight_layout(rect=(0, 0.08 if handles else 0, 1, 1))
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False)


def ranked_bars(table: pd.DataFrame, label: str, value: str, title: str, top: int = 15) -> plt.Figure:
    """Horizontal bars of the ``top`` rows of ``table`` ranked by ``value`` (e.g. pathway importance)."""
    shown = table.nlargest(top, value)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(shown) + 1.4))
    sns.barplot(data=shown, y=label, x=value, ax=ax, color="tab:blue")
    ax.set(ylabel="")
    ax.set_title(textwrap.fill(title, 70))
    ax.set_yticks(ax.get_yticks(), [textwrap.fill(str(text), 45) for text in shown[label]], fontsize=9)
    fig.tight_layout()
    return fig


def molecule_attributions(smiles: Sequence[str], scores: Sequence[np.ndarray], legends: Sequence[str],
                          per_row: int = 3, size: int = 320):
    """RDKit drawings with atoms shaded by |score| (darker red = more important; each molecule scaled to its max).

    Returns:
        a PIL image (shown inline by Jupyter).
    """
    colours = colormaps["Reds"]
    mols, atom_lists, atom_colours = [], [], []
    for text, score in zip(smiles, scores):
        mol = mol_from_smiles(text)
        magnitude = np.abs(np.asarray(score, dtype=float))
        scaled = magnitude / magnitude.max() if magnitude.max() > 0 else magnitude
        mols.append(mol)
        atom_lists.append(list(range(mol.GetNumAtoms())))
        atom_colours.append({i: tuple(colours(0.05 + 0.8 * s)[:3]) for i, s in enumerate(scaled)})
    return Draw.MolsToGridImage(mols, molsPerRow=per_row, subImgSize=(size, size), legends=list(legends),
                                highlightAtomLists=atom_lists, highlightAtomColors=atom_colours,
                                highlightBondLists=[[] for _ in mols])


def sample_clouds(reference: np.ndarray, samples: dict[str, np.ndarray], title: str,
                  reference_label: str = "true distribution") -> plt.Figure:
    """Generated profiles of one condition against reference profiles, on the first two principal components of
    the reference (scikit-learn PCA fitted on ``reference`` only), one panel per model.

    Args:
        reference: (m, genes) e.g. fresh draws from the simulator; samples: model -> (n, genes), same units.
    """
    pca = PCA(n_components=2).fit(reference)
    shown = pca.transform(reference)
    fig, axes = plt.subplots(1, len(samples), figsize=(3.6 * len(samples), 3.6), squeeze=False, sharex=True,
                             sharey=True)
    for ax, (name, values) in zip(axes[0], samples.items()):
        ax.scatter(shown[:, 0], shown[:, 1], s=10, color="0.6", label=reference_label)
        projected = pca.transform(values)
        ax.scatter(projected[:, 0], projected[:, 1], s=10, color="tab:red", alpha=0.8, label="generated")
        ax.set(title=name, xlabel="PC1")
    axes[0][0].set_ylabel("PC2")
    fig.suptitle(title)
    _legend_below(fig, axes[0])
    return fig


def spread_scatter(true_sd: np.ndarray, sample_sd: dict[str, np.ndarray], title: str) -> plt.Figure:
    """Per-gene SD of generated profiles against the true per-gene SD of one condition, one panel per model."""
    fig, axes = plt.subplots(1, len(sample_sd), figsize=(3.4 * len(sample_sd), 3.4), squeeze=False, sharex=True,
                             sharey=True)
    top = max(float(np.max(true_sd)), max(float(np.max(v)) for v in sample_sd.values())) * 1.05
    for ax, (name, values) in zip(axes[0], sample_sd.items()):
        ax.scatter(true_sd, values, s=4, alpha=0.5)
        ax.plot([0, top], [0, top], color="k", linewidth=0.8)
        ax.set(title=name, xlabel="true SD per gene (log2)", xlim=(0, top), ylim=(0, top))
    axes[0][0].set_ylabel("SD of generated profiles (log2)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def metric_curves(table: pd.DataFrame, x: str, metrics: Sequence[str], title: str, hue: str | None = None
                  ) -> plt.Figure:
    """One panel per metric: the metric against ``x`` (e.g. the guidance weight), one line per ``hue``."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(6.0, 4.0 * len(metrics)), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.lineplot(data=table, x=x, y=metric, hue=hue, marker="o", ax=ax)
        ax.set(title=metric, ylabel="")
    fig.suptitle(title)  # before the layout, which then keeps the panel titles clear of it
    _legend_below(fig, axes[0])
    return fig


def epoch_traces(history: pd.DataFrame, value: str, title: str, group: str = "model") -> plt.Figure:
    """``value`` after every epoch (e.g. the test ROC AUC), one panel per ``group`` value, one thin line per seed:
    how far a number moves within one run, next to how far it moves between seeds."""
    groups = list(dict.fromkeys(history[group]))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], groups):
        part = history[history[group] == name]
        sns.lineplot(data=part, x="epoch", y=value, units="seed", estimator=None, lw=0.8, alpha=0.7, ax=ax)
        ax.set(title=name, ylabel=value if ax is axes[0][0] else "")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _at_least(ax, span: float, values: np.ndarray) -> None:
    """Widen the x axis to at least ``span`` around ``values``, so that a difference of 0.001 between numbers
    near 0.99 is not drawn across the whole panel."""
    low, high = np.nanmin(values), np.nanmax(values)
    if np.isfinite(low) and high - low < span:
        middle = (low + high) / 2
        left, right = middle - span / 2, middle + span / 2
        if 0 <= low and high <= 1 and right > 1.005:  # a score bounded by 1 (AUC, correlation): stop there
            left, right = left - (right - 1.005), 1.005
        ax.set_xlim(left, right)


def headline_dots(table: pd.DataFrame, title: str, panel: str | None = None, min_span: float = 0.1) -> plt.Figure:
    """Our mean ± sd over runs (dots with bars) next to the paper's reported value (crosses, where there is one),
    one line per row of a :func:`perturbx.book.reproduction.headline_table` (``experiment``, ``model``, ``metric``,
    ``ours (mean)``, ``ours (sd)``, ``paper reported``); one panel, with its own x range, per value of the column
    ``panel`` (all rows in one panel when ``None``), at least ``min_span`` wide. Row labels name the model and
    whatever else varies within the panel."""
    groups = list(table.groupby(panel, sort=False)) if panel else [(None, table)]
    heights = [len(part) for _, part in groups]
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 0.3 * sum(heights) + 1.0 * len(groups) + 0.6),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (name, part) in zip(axes[:, 0], groups):
        varying = [c for c in ("experiment", "model", "metric") if c == "model" or part[c].nunique() > 1]
        labels = [" | ".join(values) for values in zip(*(part[c] for c in varying))]
        y = np.arange(len(part))
        ax.errorbar(part["ours (mean)"], y, xerr=part["ours (sd)"].fillna(0), fmt="o", color="C0", capsize=3,
                    label="ours (mean ± sd over runs)")
        reported = part["paper reported"].notna().to_numpy()
        if reported.any():
            ax.scatter(part["paper reported"][reported], y[reported], marker="x", s=60, color="C3", zorder=3,
                       label="paper (reported)")
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_ylim(len(part) - 0.5, -0.5)
        _at_least(ax, min_span, part[["ours (mean)", "paper reported"]].to_numpy(float))
        ax.set_title(name if name is not None else ", ".join(part["metric"].unique()), fontsize=10)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def replicate_ceiling(table: pd.DataFrame, value: str, title: str, x: str = "dose_um", hue: str = "time_h"
                      ) -> plt.Figure:
    """Per-condition replicate agreement (``value``, a Pearson r) against dose, one colour per time point; the
    dotted line is 0 (no agreement)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    frame = table.assign(**{x: table[x].map(lambda v: f"{v:g} µM"), hue: table[hue].map(lambda v: f"{v:g} h")})
    order = [f"{v:g} µM" for v in sorted(table[x].unique())]
    sns.boxplot(data=frame, x=x, y=value, hue=hue, order=order, ax=ax, fill=False, fliersize=0)
    sns.stripplot(data=frame, x=x, y=value, hue=hue, order=order, ax=ax, dodge=True, size=4, alpha=0.6,
                  legend=False)
    ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="dose", ylabel=value.replace("_", " "), title=title)
    ax.legend(title="time", fontsize=9, title_fontsize=9, loc="upper left")
    fig.tight_layout()
    return fig


def count_distributions(groups: dict[str, np.ndarray], title: str, xlabel: str) -> plt.Figure:
    """Overlaid histograms (log-scaled counts axis, density per group) of counts such as signatures per compound,
    with each group's median in the legend."""
    fig, ax = plt.subplots(figsize=(8, 5))
    values = {label: np.asarray(v, dtype=float)[np.asarray(v) > 0] for label, v in groups.items()}
    bins = np.logspace(0, np.log10(max(v.max() for v in values.values())) + 0.05, 30)
    for label, v in values.items():
        ax.hist(v, bins=bins, density=True, histtype="step", lw=2,
                label=f"{label} (n={len(v):,}, median {np.median(v):g})")
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="density", title=title)
    _legend_under_axes(ax, len(values))
    fig.tight_layout()
    return fig
