"""PNG plots for people: confusion matrix, training curves, reliability, latency."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from affectlite.files import write_figure  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    return write_figure(path, fig, dpi=120, bbox_inches="tight")


def confusion_png(report: dict, path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix with counts, from a classification report."""
    matrix = np.asarray(report["confusion"], dtype=float)
    labels = report["labels"]
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if normalised[i, j] > 0.5 else "black"
        ax.text(j, i, f"{int(count)}", ha="center", va="center", fontsize=7, color=colour)
    summary = (
        f"acc {report['accuracy']:.3f}  bal-acc {report['balanced_accuracy']:.3f}  "
        f"macro-F1 {report['macro_f1']:.3f}  n={report['n']}"
    )
    ax.set_title(f"{title}\n{summary}" if title else summary, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, path)


def curves_png(history_csv: str | Path, path: str | Path, title: str = "") -> Path:
    """Loss and validation metrics per epoch from a Keras CSVLogger file."""
    with open(history_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{history_csv}: no epochs recorded.")
    # A run resumed after a kill may repeat its last epoch; the later row wins.
    rows = list({int(r["epoch"]): r for r in rows}.values())
    epochs = [int(r["epoch"]) + 1 for r in rows]

    def column(name: str) -> list[float] | None:
        values = [r.get(name) for r in rows]
        return [float(v) for v in values] if all(v not in (None, "") for v in values) else None

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("loss", "val_loss"):
        if (values := column(name)) is not None:
            left.plot(epochs, values, marker="o", label=name)
    left.set_xlabel("epoch")
    left.set_title("loss")
    left.legend()
    for name in ("val_accuracy", "val_balanced_accuracy", "val_macro_f1"):
        if (values := column(name)) is not None:
            right.plot(epochs, values, marker="o", label=name)
    right.set_xlabel("epoch")
    right.set_ylim(0, 1)
    right.set_title("validation (argmax)")
    right.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)
