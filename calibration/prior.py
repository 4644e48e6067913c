"""Logit adjustment: trade a little accuracy for recall of rare expressions.

Expression datasets are skewed (FER+: 36 % neutral, 0.6 % contempt), and a model trained on them
learns the skew as a prior. Subtracting ``tau × log(prior)`` from the logits (Menon et al.,
"Long-tail learning via logit adjustment", 2021) removes that prior in proportion to ``tau``:
0 keeps the model as trained, 1 targets balanced error. ``tau`` is chosen on held-out training
data, never on the split that is reported, and is folded into the classifier's last bias, so the
converted model carries it and the device needs nothing new.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from affectlite.train.metrics import classification_report

TAUS = tuple(np.round(np.arange(0.0, 1.01, 0.05), 2))
MAX_LOSS = 0.015
"""Largest drop in held-out accuracy, and in macro-F1, accepted for balance (1.5 points)."""


@dataclass(frozen=True)
class LogitAdjustment:
    """The chosen ``tau``, the per-class bias it adds, and held-out scores before and after."""

    tau: float
    bias: tuple[float, ...]
    prior: tuple[float, ...]
    n: int
    before: dict
    after: dict

    def to_dict(self) -> dict:
        return asdict(self)


def _scores(report: dict) -> dict:
    return {key: round(report[key], 4) for key in ("accuracy", "balanced_accuracy", "macro_f1")}


def fit_logit_adjustment(
    logits: np.ndarray,
    labels: np.ndarray,
    prior: np.ndarray,
    max_loss: float = MAX_LOSS,
) -> LogitAdjustment:
    """Chooses ``tau`` with the best held-out balanced accuracy among those that keep accuracy
    and macro-F1 each within ``max_loss`` of the unadjusted model's.

    Args:
        logits: held-out float logits, ``(N, classes)``.
        labels: their true class indices.
        prior: training class frequencies (any positive scale; normalised here).

    Raises:
        ValueError: if shapes disagree or a class has no training examples.
    """
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
    prior = np.asarray(prior, np.float64)
    if logits.ndim != 2 or len(logits) != len(labels) or logits.shape[1] != len(prior):
        raise ValueError(
            f"logits {logits.shape}, labels {labels.shape} and prior {prior.shape} disagree."
        )
    if (prior <= 0).any():
        raise ValueError("Every class needs training examples for a logit adjustment.")
    log_prior = np.log(prior / prior.sum())
    names = [str(k) for k in range(len(prior))]
    reports = {tau: classification_report(labels, logits - tau * log_prior, names) for tau in TAUS}
    floors = {key: reports[0.0][key] - max_loss for key in ("accuracy", "macro_f1")}
    allowed = [t for t in TAUS if all(reports[t][key] >= floor for key, floor in floors.items())]
    tau = max(allowed, key=lambda t: (reports[t]["balanced_accuracy"], -t))
    return LogitAdjustment(
        tau=float(tau),
        bias=tuple(float(b) for b in -tau * log_prior),
        prior=tuple(float(p) for p in prior / prior.sum()),
        n=len(labels),
        before=_scores(reports[0.0]),
        after=_scores(reports[tau]),
    )


def rarest_first(counts: dict[str, int], labels: tuple[str, ...]) -> tuple[str, ...]:
    """``labels`` ordered by training count, rarest first (ties keep label order): the order in
    which the device breaks exact ties of int8 logits. At a tie the model cannot tell the
    classes apart, and balanced accuracy weighs a hit by one over the class's size, so the rarer
    class is the better bet, in the same direction as the logit adjustment.
    """
    missing = [label for label in labels if label not in counts]
    if missing:
        raise ValueError(f"No training count for {', '.join(missing)}.")
    return tuple(sorted(labels, key=lambda label: (counts[label], labels.index(label))))


def fold_into_model(model, adjustment: LogitAdjustment, layer: str = "logits") -> None:
    """Adds the adjustment's bias to the Keras model's final Dense layer, in place."""
    dense = model.get_layer(layer)
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, bias + np.asarray(adjustment.bias, bias.dtype)])
