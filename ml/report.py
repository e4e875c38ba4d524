"""Pictures of a training run: learning curves and the confusion matrix, as PNG bytes.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot state), so the
trainer can draw them from any thread.
"""

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from emobot.labels import CLASSES


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=100, bbox_inches="tight")
    return out.getvalue()


def learning_curve_png(history: dict[str, Sequence[float]], title: str = "") -> bytes:
    """Loss (train and validation) and accuracy / validation balanced accuracy per epoch."""
    figure = Figure(figsize=(9, 3.6))
    loss_ax, score_ax = figure.subplots(1, 2)
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if history.get(key):
            loss_ax.plot(epochs, history[key], marker=".", label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    for key, label in (
        ("accuracy", "train accuracy"),
        ("val_accuracy", "validation accuracy"),
        ("val_bal_acc", "validation balanced accuracy"),
    ):
        if history.get(key):
            score_ax.plot(epochs, history[key], marker=".", label=label)
    score_ax.set(xlabel="epoch", ylabel="score", title="accuracy", ylim=(0, 1))
    for ax in (loss_ax, score_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    return _png(figure)


def confusion_png(matrix: Sequence[Sequence[int]], title: str = "") -> bytes:
    """Rows true, columns predicted; cells coloured by the row's share, labelled with counts."""
    counts = np.asarray(matrix)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(5.2, 4.6))
    ax = figure.subplots()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(CLASSES))
    ax.set_xticks(ticks, CLASSES, rotation=30)
    ax.set_yticks(ticks, CLASSES)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    for i in ticks:
        for j in ticks:
            colour = "white" if shares[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{counts[i, j]}\n{shares[i, j]:.0%}",
                ha="center",
                va="center",
                color=colour,
                fontsize=9,
            )
    return _png(figure)
