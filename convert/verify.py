"""Does the converted model still classify like the Keras one? Metrics, agreement and a gate.

The float model runs in Keras; the converted model runs exactly as on the device, through
``edge_app.classifier.EmotionClassifier`` on LiteRT (quantising the uint8 crops itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affectlite.edge_app.classifier import EmotionClassifier
from affectlite.edge_app.labels import LABELS
from affectlite.errors import GateRefused, InputError
from affectlite.progress import batched
from affectlite.train.metrics import classification_report

SUMMARY_KEYS = ("accuracy", "balanced_accuracy", "macro_f1")


class GateError(GateRefused):
    """The converted model lost too much against the float model."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


WEAK_MARGIN = 0.05
"""A float model whose balanced accuracy is under 1/K + this is refused (``--allow-weak``)."""


@dataclass(frozen=True)
class Gate:
    """Acceptance thresholds for a converted model.

    Attributes:
        max_drop: largest allowed loss of balanced accuracy, in percentage points.
        min_agreement: smallest allowed share of images where float and converted top-1 agree.
        allow_weak: accept a float model whose balanced accuracy is within
            :data:`WEAK_MARGIN` of chance (1/K over the K classes present).
    """

    max_drop: float = 1.0
    min_agreement: float = 0.95
    allow_weak: bool = False

    def __post_init__(self) -> None:
        if self.max_drop < 0:
            raise InputError(f"max_drop must be ≥ 0 points, got {self.max_drop}.")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise InputError(f"min_agreement must lie in 0..1, got {self.min_agreement}.")

    def failures(self, report: dict[str, Any]) -> list[str]:
        """Why ``report`` (from :func:`compare_logits`) fails, in words; empty if it passes."""
        reasons = []
        weak = weakness(report)
        if weak and not self.allow_weak:
            reasons.append(weak)
        drop = report["balanced_accuracy_drop_points"]
        if drop > self.max_drop:
            reasons.append(
                f"balanced accuracy {100 * report['converted']['balanced_accuracy']:.2f} % vs "
                f"float {100 * report['float']['balanced_accuracy']:.2f} % (drop {drop:.2f} "
                f"points > {self.max_drop:g} allowed)"
            )
        if report["agreement"] < self.min_agreement:
            reasons.append(
                f"top-1 agreement with the float model {report['agreement']:.3f} < "
                f"{self.min_agreement:g}"
            )
        return reasons

    def passes(self, report: dict[str, Any]) -> str:
        """What a passing ``report`` met, in words: each threshold beside its value."""
        floor = chance_floor(report)
        weak = " (weak: allowed by --allow-weak)" if weakness(report) else ""
        return (
            f"float balanced accuracy {report['float']['balanced_accuracy']:.3f} vs chance + "
            f"{WEAK_MARGIN:g} = {floor:.3f}{weak}; drop "
            f"{report['balanced_accuracy_drop_points']:.2f} ≤ {self.max_drop:g} points; "
            f"agreement {report['agreement']:.3f} ≥ {self.min_agreement:g}"
        )

    def check(self, report: dict[str, Any]) -> None:
        """Raises :class:`GateError` with the numbers when ``report`` fails the gate."""
        reasons = self.failures(report)
        if not reasons:
            return
        if reasons == [weakness(report)]:
            raise GateError(
                f"The float model is too weak to convert ({report['n']} images): {reasons[0]}. "
                "Train it longer or check the data and labels; pass --allow-weak to convert it "
                "anyway.",
                report,
            )
        raise GateError(
            f"The converted model ({report.get('mode', '?')}) fails the gate on "
            f"{report['n']} images: " + "; ".join(reasons) + ". Check the representative "
            "set (same crop and 0..255 pixels as training), try --debug / --float-layers, "
            "or pass --force to write the bundle anyway.",
            report,
        )


def chance_floor(report: dict[str, Any]) -> float:
    """1/K + :data:`WEAK_MARGIN`, K the classes present in the verification labels."""
    return 1 / max(1, report.get("classes", len(LABELS))) + WEAK_MARGIN


def weakness(report: dict[str, Any]) -> str:
    """Why the float model of ``report`` is near chance, in words; empty when it is not."""
    score = report["float"]["balanced_accuracy"]
    floor = chance_floor(report)
    if score >= floor:
        return ""
    text = (
        f"the float model's balanced accuracy {score:.3f} is below chance + {WEAK_MARGIN:g} = "
        f"{floor:.3f} (1/{report.get('classes', len(LABELS))} classes)"
    )
    confusion = report.get("confusion", {}).get("float")
    if confusion is not None:
        predicted = np.asarray(confusion).sum(axis=0)
        if predicted.max() == predicted.sum() > 0:
            label = LABELS[int(predicted.argmax())]
            text += f"; it predicts {label} for all {predicted.sum()} faces"
    return text


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    """Mean KL(p ‖ q) in nats between the softmax distributions of two logit arrays."""
    log_p, log_q = _log_softmax(p_logits), _log_softmax(q_logits)
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=1)))


def float_logits(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The Keras model's logits for ``uint8`` crops."""
    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(np.asarray(batch, np.float32)), np.float32)

    return batched(predict, np.asarray(images), batch_size, "verify: float model")


def converted_logits(
    tflite_path: str | Path,
    images: np.ndarray,
    labels: tuple[str, ...] = LABELS,
    batch_size: int = 64,
    tie_break: tuple[str, ...] | None = None,
) -> np.ndarray:
    """The ``.tflite`` model's dequantised logits, run as on the device (``tie_break`` as the
    bundle will record it)."""
    classifier = EmotionClassifier(tflite_path, labels, tie_break=tie_break)
    return batched(classifier.logits, np.asarray(images), batch_size, "verify: converted model")


def compare_logits(
    reference: np.ndarray,
    converted: np.ndarray,
    labels: np.ndarray,
    label_names: tuple[str, ...] = LABELS,
) -> dict[str, Any]:
    """Metrics of both models, their top-1 agreement and mean KL(reference ‖ converted)."""
    reference, converted = np.asarray(reference), np.asarray(converted)
    if reference.shape != converted.shape:
        raise ValueError(f"Logit shapes differ: {reference.shape} vs {converted.shape}.")
    reports = {
        name: classification_report(labels, logits, label_names)
        for name, logits in (("float", reference), ("converted", converted))
    }
    summary = {name: {k: report[k] for k in SUMMARY_KEYS} for name, report in reports.items()}
    return {
        "n": int(len(reference)),
        "classes": len(reports["float"]["classes_evaluated"]),
        **summary,
        "balanced_accuracy_drop_points": 100
        * (summary["float"]["balanced_accuracy"] - summary["converted"]["balanced_accuracy"]),
        "agreement": float(np.mean(reference.argmax(axis=1) == converted.argmax(axis=1))),
        "kl_divergence": kl_divergence(reference, converted),
        "confusion": {name: report["confusion"] for name, report in reports.items()},
        "per_class_recall": {
            name: {label: round(v["recall"], 4) for label, v in report["per_class"].items()}
            for name, report in reports.items()
        },
    }


def verify(
    model,
    tflite_path: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    label_names: tuple[str, ...] = LABELS,
) -> dict[str, Any]:
    """Runs the Keras model and the converted model on labelled crops and compares them.

    Args:
        model: the float Keras model.
        tflite_path: the converted model.
        images: ``uint8 (N, S, S, 3)`` crops (e.g. the validation split).
        labels: integer labels ``(N,)`` (or soft labels ``(N, C)``).
        label_names: class names in output order.

    Returns:
        JSON-ready dict: ``n``, ``float`` and ``converted`` (accuracy, balanced_accuracy,
        macro_f1), ``balanced_accuracy_drop_points``, ``agreement``, ``kl_divergence``, and
        ``per_class_recall`` and ``confusion`` (rows true, columns predicted), each keyed
        ``float`` / ``converted``.
    """
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"Verification needs crops (N, S, S, 3) with N ≥ 1, got {images.shape}.")
    return compare_logits(
        float_logits(model, images),
        converted_logits(tflite_path, images, label_names),
        labels,
        label_names,
    )
