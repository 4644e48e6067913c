"""Confidence calibration: one softmax temperature fitted on validation logits.

Temperature scaling (Guo et al., 2017) divides the logits by ``T`` before the softmax. It never
changes the predicted class, only how confident the probabilities are, so it is fitted after
conversion on the deployed model's own logits and stored in the bundle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from affectlite.edge_app.classifier import softmax
from affectlite.errors import InputError
from affectlite.files import write_figure

TEMPERATURE_BOUNDS = (0.05, 20.0)
"""Search range for ``T``; a fit at either end means the logits carry no usable confidence."""


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature and the calibration it buys on held-out validation data.

    ``ece_*`` and ``nll_*`` are measured on the half of the data the temperature for those
    numbers was *not* fitted on (a two-fold estimate), so they are not optimistic; the
    ``temperature`` itself is then refitted on all the data.
    """

    temperature: float
    n: int
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    bins: int

    def to_dict(self) -> dict:
        return asdict(self)


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(
            f"Expected logits (N, C) and N labels, got logits {logits.shape} and labels "
            f"{labels.shape}."
        )
    if len(labels) < 2:
        raise InputError(
            f"Temperature fitting needs at least 2 labelled examples, got {len(labels)}."
        )
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(
            f"Labels must lie in 0..{logits.shape[1] - 1}, got {labels.min()}..{labels.max()}."
        )
    return logits, labels.astype(np.int64)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean cross-entropy of ``softmax(logits / T)`` against integer labels."""
    scaled = np.asarray(logits, np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(scaled).sum(axis=1))
    return float(np.mean(log_norm - scaled[np.arange(len(labels)), labels]))


def reliability_bins(
    probs: np.ndarray, labels: np.ndarray, bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width confidence bin: example count, mean confidence and accuracy (0 where
    a bin is empty)."""
    probs = np.asarray(probs, np.float64)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    safe = np.maximum(count, 1)
    mean_confidence = np.bincount(which, confidence, minlength=bins) / safe
    accuracy = np.bincount(which, correct, minlength=bins) / safe
    return count, mean_confidence, accuracy


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the support-weighted gap between confidence and accuracy over equal-width bins."""
    count, confidence, accuracy = reliability_bins(probs, labels, bins)
    return float(np.sum(count * np.abs(confidence - accuracy)) / count.sum())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising validation NLL, searched on ``log T`` within bounds."""
    from scipy.optimize import minimize_scalar

    logits, labels = _check(logits, labels)
    low, high = np.log(TEMPERATURE_BOUNDS)
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, float(np.exp(log_t))),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def calibrate_temperature(
    logits: np.ndarray, labels: np.ndarray, bins: int = 15, seed: int = 0
) -> TemperatureFit:
    """Fits ``T`` on all of ``logits`` and estimates its effect by two-fold cross-fitting.

    Args:
        logits: validation logits ``(N, C)`` of the model that will be deployed.
        labels: integer labels ``(N,)`` (or soft labels ``(N, C)``, reduced by argmax).
        bins: confidence bins for the expected calibration error.
        seed: seed of the random two-fold split.
    """
    logits, labels = _check(logits, labels)
    order = np.random.default_rng(seed).permutation(len(labels))
    folds = (order[: len(order) // 2], order[len(order) // 2 :])
    before, after = np.zeros_like(logits), np.zeros_like(logits)
    for fit_on, score_on in (folds, folds[::-1]):
        t = fit_temperature(logits[fit_on], labels[fit_on])
        before[score_on] = logits[score_on]
        after[score_on] = logits[score_on] / t
    return TemperatureFit(
        temperature=fit_temperature(logits, labels),
        n=len(labels),
        ece_before=expected_calibration_error(softmax(before), labels, bins),
        ece_after=expected_calibration_error(softmax(after), labels, bins),
        nll_before=negative_log_likelihood(before, labels, 1.0),
        nll_after=negative_log_likelihood(after, labels, 1.0),
        bins=bins,
    )


def reliability_diagram(
    logits: np.ndarray, labels: np.ndarray, temperature: float, path: str | Path, bins: int = 15
) -> Path:
    """Saves a reliability diagram (accuracy per confidence bin, before and after ``T``) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logits, labels = _check(logits, labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    figure, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for axis, t, title in ((axes[0], 1.0, "before"), (axes[1], temperature, "after")):
        probs = softmax(logits, t)
        _, _, accuracy = reliability_bins(probs, labels, bins)
        axis.bar(centres, accuracy, width=1 / bins, edgecolor="black", label="accuracy")
        axis.plot([0, 1], [0, 1], "k--", label="perfect calibration")
        ece = expected_calibration_error(probs, labels, bins)
        axis.set_title(f"{title}: T = {t:.3g}, ECE = {ece:.3f}")
        axis.set_xlabel("confidence")
        axis.legend(loc="upper left")
    axes[0].set_ylabel("accuracy")
    figure.tight_layout()
    return write_figure(path, figure, format="png", dpi=100)
