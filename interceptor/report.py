"""Evaluation reports: video-level metric tables, ROC curves and confusion matrices (matplotlib PNG), markdown."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from interceptor.utils import atomic_path, atomic_write_text

REPORT_METRICS = ("auc", "ap", "log_loss", "eer", "accuracy", "accuracy_real", "accuracy_fake", "f1", "count")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    _pyplot().close(fig)
    return path


def roc_figure(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], title: str):
    """A matplotlib figure with the ROC curves of several scorers on one split."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=80)
    for name, (labels, scores) in curves.items():
        if len(set(labels)) < 2:
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, linewidth=2.0 if name == "agent" else 1.2, label=f"{name} ({roc_auc_score(labels, scores):.3f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    return fig


def roc_plot(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], title: str, path: Path) -> Path:
    return _save(roc_figure(curves, title), path)


def figure_rgb(fig) -> np.ndarray:
    """The figure rendered as an RGB array (H, W, 3), for TensorBoard."""
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    _pyplot().close(fig)
    return image


def confusion_plot(labels: Sequence[int], scores: Sequence[float], threshold: float, title: str, path: Path) -> Path:
    plt = _pyplot()
    labels = np.asarray(labels)
    predicted = (np.asarray(scores) >= threshold).astype(int)
    matrix = np.array([[np.sum((labels == t) & (predicted == p)) for p in (0, 1)] for t in (0, 1)])
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    for t in (0, 1):
        for p in (0, 1):
            ax.text(p, t, str(matrix[t, p]), ha="center", va="center",
                    color="white" if matrix[t, p] > matrix.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["real", "fake"], yticklabels=["real", "fake"],
           xlabel="predicted", ylabel="true", title=title)
    return _save(fig, path)


def heatmap_plot(rows: Mapping[str, Sequence[float | None]], columns: Sequence[str], title: str, path: Path) -> Path:
    """A scorer x column heatmap of AUCs in [0.5, 1] (cells written in; missing ones blank)."""
    plt = _pyplot()
    values = np.array([[np.nan if v is None else v for v in row] for row in rows.values()], dtype=float)
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 1.5, 0.45 * len(rows) + 1.2), dpi=100)
    ax.imshow(values, cmap="viridis", vmin=0.5, vmax=1.0, aspect="auto")
    for (r, c), value in np.ndenumerate(values):
        if not np.isnan(value):
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if value > 0.8 else "white")
    ax.set(xticks=range(len(columns)), yticks=range(len(rows)), xticklabels=columns, yticklabels=list(rows),
           title=title)
    return _save(fig, path)


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(path: Path, sections: Sequence[tuple[str, str]], title: str) -> Path:
    body = [f"# {title}", ""]
    for heading, text in sections:
        body += [f"## {heading}", "", text, ""]
    return atomic_write_text(path, "\n".join(body))
