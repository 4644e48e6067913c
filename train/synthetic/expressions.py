"""Expression geometry: what each of the eight classes does to a face, and its random draw.

An :class:`Expression` holds the movable parts in head units (head half-height = 1). Each class
is a cartoon extreme (:data:`EXPRESSIONS`); :func:`sample_expression` draws it at 85–100 %
intensity with a little jitter, mirroring one-sided expressions at random.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from affectlite.edge_app.labels import LABELS, NUM_CLASSES


@dataclass(frozen=True)
class Expression:
    """Expression geometry in head units (head half-height = 1); the defaults are neutral."""

    brow_raise: float = 0.0  # both brows up (+) or down (-)
    brow_inner: float = 0.0  # inner brow ends up (+, sad/fear) or down (-, anger V)
    brow_squeeze: float = 0.0  # inner ends drawn together
    brow_arch: float = 0.0  # extra arch in the middle of the brow (surprise)
    eye_upper: float = 1.0  # upper-lid opening relative to relaxed
    eye_lower: float = 1.0  # lower-lid opening (cheeks push it up when smiling)
    lid_slant: float = 0.0  # upper lid lowered at the inner (+, anger) or outer (-, sad) corner
    mouth_width: float = 1.0
    mouth_open: float = 0.0
    corner_left: float = 0.0  # mouth corner lift (+ up) on the image's left side
    corner_right: float = 0.0
    upper_lip: float = 0.0  # upper-lip raise (disgust)
    lip_skew: float = 0.0  # upper-lip raise leaning to the image's right (+) or left (-)
    lip_press: float = 0.0  # 0 relaxed .. 1 pressed thin
    nose_wrinkle: float = 0.0
    cheek: float = 0.0  # nasolabial folds and raised cheeks
    teeth: float = 0.0  # > 0.5 shows the upper teeth when the mouth opens


CLASS_EXPRESSIONS: dict[str, Expression] = {
    "neutral": Expression(),
    "happy": Expression(
        brow_raise=0.03,
        eye_upper=0.8,
        eye_lower=0.3,
        mouth_width=1.35,
        mouth_open=0.16,
        corner_left=0.3,
        corner_right=0.3,
        cheek=1.0,
        teeth=1.0,
    ),
    "sad": Expression(
        brow_inner=0.2,
        brow_squeeze=0.05,
        eye_upper=0.65,
        lid_slant=-0.6,
        mouth_width=0.95,
        corner_left=-0.24,
        corner_right=-0.24,
        lip_press=0.3,
    ),
    "surprise": Expression(
        brow_raise=0.24,
        brow_arch=0.07,
        eye_upper=2.0,
        eye_lower=1.4,
        mouth_width=0.5,
        mouth_open=0.46,
    ),
    "fear": Expression(
        brow_raise=0.13,
        brow_inner=0.14,
        brow_squeeze=0.08,
        eye_upper=2.0,
        eye_lower=1.4,
        mouth_width=1.4,
        mouth_open=0.2,
        corner_left=-0.06,
        corner_right=-0.06,
        teeth=1.0,
    ),
    "disgust": Expression(
        brow_raise=-0.07,
        brow_inner=-0.04,
        brow_squeeze=0.04,
        eye_upper=0.55,
        eye_lower=0.5,
        corner_left=-0.1,
        corner_right=-0.1,
        upper_lip=0.16,
        lip_skew=0.9,
        nose_wrinkle=1.0,
        cheek=0.6,
        teeth=1.0,
    ),
    "anger": Expression(
        brow_raise=-0.05,
        brow_inner=-0.16,
        brow_squeeze=0.09,
        eye_upper=0.55,
        eye_lower=0.8,
        lid_slant=1.0,
        mouth_width=0.85,
        corner_left=-0.04,
        corner_right=-0.04,
        lip_press=1.0,
    ),
    "contempt": Expression(
        eye_upper=0.9,
        mouth_width=1.05,
        corner_left=-0.02,
        corner_right=0.3,
        lip_press=0.5,
    ),
}
"""Full-intensity expression of each class, by label name."""

EXPRESSIONS: tuple[Expression, ...] = tuple(CLASS_EXPRESSIONS[name] for name in LABELS)
"""Full-intensity expression for each class, in the kit's LABELS order."""

JITTER_SD = {  # standard deviation of the per-face noise added to a drawn expression
    "eye_upper": 0.06,
    "eye_lower": 0.06,
    "mouth_width": 0.04,
    "mouth_open": 0.01,
    "corner_left": 0.01,
    "corner_right": 0.01,
    "brow_raise": 0.01,
    "brow_inner": 0.01,
    "cheek": 0.08,
    "lip_press": 0.08,
}
NON_NEGATIVE = {
    "mouth_open",
    "upper_lip",
    "lip_press",
    "nose_wrinkle",
    "cheek",
    "teeth",
    "eye_upper",
    "eye_lower",
    "mouth_width",
    "brow_squeeze",
    "brow_arch",
}
FIELD_NAMES = tuple(field.name for field in dataclasses.fields(Expression))
_NEUTRAL_VALUES = np.array([getattr(Expression(), name) for name in FIELD_NAMES])
_JITTER_VALUES = np.array([JITTER_SD.get(name, 0.0) for name in FIELD_NAMES])
_FLOOR_VALUES = np.array([0.0 if name in NON_NEGATIVE else -np.inf for name in FIELD_NAMES])


def mirrored(expression: Expression) -> Expression:
    """The expression seen in a mirror: mouth corners and the lip skew swap sides."""
    return dataclasses.replace(
        expression,
        corner_left=expression.corner_right,
        corner_right=expression.corner_left,
        lip_skew=-expression.lip_skew,
    )


def is_one_sided(expression: Expression) -> bool:
    """True for expressions that differ from their mirror image (contempt, disgust's lip)."""
    return expression.corner_left != expression.corner_right or bool(expression.lip_skew)


def sample_expression(label: int, rng: np.random.Generator) -> Expression:
    """Draws class ``label``'s expression at a random intensity (0.85..1) with small jitter.

    One-sided expressions (contempt, disgust's lip) are mirrored at random.
    """
    if not 0 <= label < NUM_CLASSES:
        raise ValueError(f"label must be in 0..{NUM_CLASSES - 1}, got {label!r}")
    target = EXPRESSIONS[label]
    if is_one_sided(target) and rng.random() < 0.5:
        target = mirrored(target)
    goal = np.array([getattr(target, name) for name in FIELD_NAMES])
    intensity = rng.uniform(0.85, 1.0)
    values = (
        _NEUTRAL_VALUES
        + intensity * (goal - _NEUTRAL_VALUES)
        + rng.standard_normal(len(goal)) * _JITTER_VALUES
    )
    values = dict(zip(FIELD_NAMES, np.maximum(values, _FLOOR_VALUES).tolist(), strict=True))
    if target.teeth:
        values["teeth"] = float(rng.random() < 0.7)
    return Expression(**values)
