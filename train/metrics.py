"""Honest multi-class metrics from argmax predictions (never Keras' binary accuracy).

Plain NumPy so that conversion checks and benchmarks can use them without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from affectlite.edge_app.labels import LABELS
from affectlite.schemas import ClassificationReport


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``num_classes × num_classes`` counts; rows are true labels, columns predictions."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return matrix


def classification_report(
    y_true: np.ndarray,
    scores: np.ndarray,
    labels: Sequence[str] = LABELS,
) -> ClassificationReport:
    """Accuracy, balanced accuracy, macro-F1, per-class figures and the confusion matrix.

    Args:
        y_true: integer labels ``(N,)`` (or soft labels ``(N, C)``, reduced by argmax).
        scores: logits or probabilities ``(N, C)``; the prediction is their argmax.
        labels: class names in output order.

    Balanced accuracy and macro-F1 average over the classes present in ``y_true`` only, so a
    dataset without contempt (FER2013) is scored over its own classes; ``classes_evaluated``
    says which.
    """
    scores = np.asarray(scores)
    y_true = np.asarray(y_true)
    if y_true.ndim == 2:
        y_true = y_true.argmax(axis=1)
    if scores.ndim != 2 or len(scores) != len(y_true):
        raise ValueError(f"scores {scores.shape} do not match {len(y_true)} labels.")
    num_classes = len(labels)
    if scores.shape[1] != num_classes:
        raise ValueError(f"scores have {scores.shape[1]} classes, labels {num_classes}.")
    y_pred = scores.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    true_positive = np.diag(matrix)
    recall = np.divide(true_positive, support, out=np.zeros(num_classes), where=support > 0)
    precision = np.divide(true_positive, predicted, out=np.zeros(num_classes), where=predicted > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros(num_classes), where=denominator > 0
    )
    present = support > 0
    n = int(len(y_true))
    return {
        "n": n,
        "labels": list(labels),
        "accuracy": float(true_positive.sum() / n) if n else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "classes_evaluated": [label for label, keep in zip(labels, present) if keep],
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": matrix.tolist(),
    }
