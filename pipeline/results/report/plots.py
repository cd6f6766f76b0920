"""The report's figures as PNG bytes, drawn with matplotlib's Agg canvas (no display, no pyplot).

Each function makes its own `Figure`, so nothing is shared between calls or threads.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pipeline.results.report.collect import Tile

DPI = 100
MAX_INCHES = 14.0  # no figure wider or taller than this, however many classes
ANNOTATED_CLASSES = 15  # confusion matrices with more classes get no numbers in the cells


def to_png(figure: Figure) -> bytes:
    """The figure rendered to PNG bytes."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def class_counts(per_split_and_class: dict[str, dict[str, int]]) -> bytes:
    """Grouped bars: examples of each class, one group per split."""
    splits = sorted(per_split_and_class)
    classes = sorted({name for counts in per_split_and_class.values() for name in counts})
    figure = Figure(figsize=(min(MAX_INCHES, 4.0 + 0.6 * len(classes) * len(splits)), 3.2))
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(splits))
    positions = np.arange(len(classes))
    for k, split in enumerate(splits):
        values = [per_split_and_class[split].get(name, 0) for name in classes]
        bars = axes.bar(positions + k * width, values, width, label=split)
        axes.bar_label(bars, fontsize=8)
    axes.set_xticks(positions + width * (len(splits) - 1) / 2, classes)
    axes.set_ylabel("examples")
    axes.legend()
    return to_png(figure)


def training_curves(history: dict[str, list[float]]) -> bytes:
    """Accuracy and loss per epoch, training against validation, side by side."""
    figure = Figure(figsize=(10, 3.6))
    for index, metric in enumerate(("accuracy", "loss")):
        axes = figure.add_subplot(1, 2, index + 1)
        for key, label, style in ((metric, "train", "o-"), (f"val_{metric}", "validation", "s--")):
            values = history.get(key)
            if values:
                axes.plot(range(1, len(values) + 1), values, style, label=label)
        axes.set_title(metric)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend()
    return to_png(figure)


def tuning_trials(scores: Sequence[float | None], best_index: int | None) -> bytes:
    """Each trial's eval accuracy in the order they ran, the best so far, the best marked."""
    figure = Figure(figsize=(7, 3.2))
    axes = figure.add_subplot()
    trials = [i + 1 for i, score in enumerate(scores) if score is not None]
    values = [score for score in scores if score is not None]
    axes.plot(trials, values, "o", color="#4c72b0", label="trial")
    axes.plot(trials, np.maximum.accumulate(values) if values else [], "-", color="#55a868",
              label="best so far")
    if best_index is not None and scores[best_index] is not None:
        axes.plot([best_index + 1], [scores[best_index]], "*", markersize=14, color="#c44e52",
                  label="best (trained)")
    axes.set_xlabel("trial")
    axes.set_ylabel("eval accuracy")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return to_png(figure)


def metrics_against_threshold(metrics: dict[str, float], threshold: float,
                              baseline_accuracy: float | None) -> bytes:
    """Horizontal bars of the eval metrics, with the accuracy threshold (and baseline) marked."""
    names = sorted(k for k in metrics if k != "example_count")
    figure = Figure(figsize=(6, 0.5 * len(names) + 1.2))
    axes = figure.add_subplot()
    bars = axes.barh(names, [metrics[k] for k in names], color="#4c72b0")
    axes.bar_label(bars, fmt="%.3f", fontsize=8)
    axes.axvline(threshold, color="#c44e52", linestyle="--", label=f"threshold {threshold:.3f}")
    if baseline_accuracy is not None:
        axes.axvline(baseline_accuracy, color="#55a868", linestyle=":",
                     label=f"baseline accuracy {baseline_accuracy:.3f}")
    axes.set_xlim(0, 1.1)
    axes.legend(loc="lower right", fontsize=8)
    return to_png(figure)


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str]) -> bytes:
    """The counts, true class by row, predicted class by column."""
    size = len(class_names)
    figure = Figure(figsize=(min(MAX_INCHES, 1.0 * size + 2.5), min(MAX_INCHES, 0.9 * size + 2)))
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    axes.set_xticks(range(size), class_names, rotation=45, ha="right")
    axes.set_yticks(range(size), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    peak = matrix.max() if matrix.size else 0
    if size > ANNOTATED_CLASSES:
        return to_png(figure)
    for (row, column), value in np.ndenumerate(matrix):
        axes.text(column, row, str(value), ha="center", va="center",
                  color="white" if peak and value > peak / 2 else "black")
    return to_png(figure)


def per_class_accuracy(accuracies: dict[str, float | None]) -> bytes:
    """Bars of accuracy per class (classes without images are left out)."""
    names = [name for name, value in accuracies.items() if value is not None]
    figure = Figure(figsize=(min(MAX_INCHES, max(4.0, 0.8 * len(names) + 2)), 3))
    axes = figure.add_subplot()
    bars = axes.bar(names, [accuracies[n] for n in names], color="#55a868")
    axes.bar_label(bars, fmt="%.2f", fontsize=8)
    axes.set_ylim(0, 1.1)
    axes.set_ylabel("accuracy")
    return to_png(figure)


def image_grid(tiles: Sequence[Tile], columns: int, tile_inches: float = 1.8) -> bytes:
    """The images in a grid, each with its caption above it."""
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    figure = Figure(figsize=(columns * tile_inches, rows * (tile_inches + 0.3)))
    for index, tile in enumerate(tiles):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.imshow(tile.image)
        axes.set_title(tile.caption, fontsize=7)
        axes.axis("off")
    return to_png(figure)
