"""Face features: head, eyes, brows, frown lines, nose and mouth, drawn from an identity and an
expression onto a :class:`~.canvas.FaceCanvas`.

``side`` is -1 for the feature on the image's left and +1 for the one on its right.
"""

from __future__ import annotations

import numpy as np

from .canvas import (
    LASH,
    MOUTH_INSIDE,
    PUPIL,
    TEETH,
    WHITE_OF_EYE,
    FaceCanvas,
    band,
    curve,
    mix,
    shade,
)
from .expressions import Expression
from .identities import Identity

SIDES = (-1, 1)


def draw_face(identity: Identity, expression: Expression, side: int) -> np.ndarray:
    """Draws one face on a ``side × side`` layer; returns premultiplied RGBA ``uint8``."""
    canvas = FaceCanvas(side, identity.yaw)
    draw_head(canvas, identity)
    for feature_side in SIDES:
        draw_eye(canvas, identity, expression, feature_side)
        draw_brow(canvas, identity, expression, feature_side)
    draw_frown_lines(canvas, identity, expression)
    draw_nose(canvas, identity, expression)
    draw_mouth(canvas, identity, expression)
    return canvas.image


def draw_head(canvas: FaceCanvas, identity: Identity) -> None:
    """Shoulders, neck, long hair behind, ears, the head, cheeks and the hair cap."""
    width, skin = identity.width, identity.skin
    canvas.ellipse((0, 1.85), (width * 2.1, 0.8), identity.cloth, feature=False)
    neck = np.array(
        [(-0.36 * width, 0.5), (0.36 * width, 0.5), (0.4 * width, 1.3), (-0.4 * width, 1.3)]
    )
    canvas.polygon(neck, shade(skin, 0.82), feature=False)
    if identity.hair_style == 2:
        canvas.ellipse((0, 0.1), (width * 1.25, 1.22), identity.hair, feature=False)
    for side in SIDES:
        canvas.ellipse((side * width * 0.97, -0.02), (0.1, 0.18), shade(skin, 0.9), feature=False)
    canvas.ellipse((0, 0), (width, 1.0), skin, feature=False)
    cheeks = mix(skin, identity.lips, 0.12)
    canvas.ellipse((0, 0.35), (width * 0.55, 0.25), cheeks, feature=False)
    if identity.hair_style:
        top = 1.06 + identity.hair_line
        canvas.ellipse(
            (0, identity.hair_line),
            (width * 1.04, top),
            identity.hair,
            angle=identity.hair_angle,
            arc=(180, 360),
            feature=False,
        )


_EYE_ANGLES = np.linspace(0, np.pi, 12)
_EYE_COS, _EYE_SIN = np.cos(_EYE_ANGLES), np.sin(_EYE_ANGLES)


def draw_eye(canvas: FaceCanvas, identity: Identity, expression: Expression, side: int) -> None:
    """The eye white, iris and pupil between the lids, lashes, crease and (smiling) eye bag."""
    eye_width = identity.eye_size
    cx, cy = side * identity.eye_spacing, identity.eye_y + side * identity.eye_tilt
    xs = cx - _EYE_COS * eye_width
    inner = (1 + side * _EYE_COS) / 2  # 1 at the corner nearest the nose
    slant_weight = inner if expression.lid_slant > 0 else 1 - inner
    lid_height = (
        _EYE_SIN**0.9 * eye_width * 0.5 * expression.eye_upper
        - abs(expression.lid_slant) * slant_weight * eye_width * 0.35
    )
    lower_lid = np.stack([xs, cy + _EYE_SIN * eye_width * 0.35 * expression.eye_lower], 1)
    upper_lid = np.stack([xs, cy - np.maximum(lid_height, -_EYE_SIN * eye_width * 0.2)], 1)
    canvas.polygon(np.vstack([upper_lid, lower_lid[::-1]]), WHITE_OF_EYE)
    iris_radius = eye_width * 0.48
    gaze_x, gaze_y = identity.gaze
    centre = (cx + gaze_x * eye_width * 0.35, cy + gaze_y * eye_width * 0.5)
    canvas.ellipse(centre, (iris_radius, iris_radius), identity.iris)
    canvas.ellipse(centre, (iris_radius * 0.5, iris_radius * 0.5), PUPIL)
    reach = eye_width * 1.2  # skin drawn over the iris beyond the lids
    above = [(cx + eye_width, cy - reach), (cx - eye_width, cy - reach)]
    below = [(cx + eye_width, cy + reach), (cx - eye_width, cy + reach)]
    canvas.polygon(np.vstack([upper_lid, above]), identity.skin)
    canvas.polygon(np.vstack([lower_lid, below]), identity.skin)
    crease = upper_lid + (0, -0.05 - 0.02 * expression.eye_upper)
    canvas.polyline(crease, shade(identity.skin, 0.82), 0.018)
    canvas.polyline(upper_lid, LASH, 0.042)
    canvas.polyline(lower_lid, shade(identity.skin, 0.7), 0.018)
    if expression.cheek > 0.05:
        bag = lower_lid[2:-2] + (0, 0.06)
        colour = mix(identity.skin, shade(identity.skin, 0.65), min(expression.cheek, 1.0))
        canvas.polyline(bag, colour, 0.02)


_BROW_TAPER = np.linspace(0.55, 0.35, 8)[:, None] * (0, 1)  # half-thickness, inner to outer


def draw_brow(canvas: FaceCanvas, identity: Identity, expression: Expression, side: int) -> None:
    """One eyebrow: a tapered band along a curve set by raise, inner tilt, squeeze and arch."""
    eye_width = identity.eye_size
    base = identity.eye_y - identity.brow_gap - expression.brow_raise
    inner = (
        side * (identity.eye_spacing - eye_width * 0.95 - expression.brow_squeeze),
        base - expression.brow_inner,
    )
    outer = (
        side * (identity.eye_spacing + eye_width * 1.3),
        base + 0.02 + 0.3 * expression.brow_inner,
    )
    middle_y = base - identity.brow_arch - expression.brow_arch - 0.02 - expression.brow_inner * 0.3
    middle = (side * (identity.eye_spacing + eye_width * 0.2), middle_y)
    centre_line = curve(inner, middle, outer)
    half_thickness = identity.brow_thickness * _BROW_TAPER
    outline = np.vstack([centre_line - half_thickness, (centre_line + half_thickness)[::-1]])
    canvas.polygon(outline, identity.brow)


def draw_frown_lines(canvas: FaceCanvas, identity: Identity, expression: Expression) -> None:
    """Vertical lines between strongly lowered inner brows (anger)."""
    if expression.brow_inner < -0.09:
        y = identity.eye_y - identity.brow_gap - expression.brow_raise
        for x in (-0.035, 0.035):
            line = np.array([(x, y - 0.02), (x * 1.4, y + 0.1)])
            canvas.polyline(line, shade(identity.skin, 0.6), 0.022)


def draw_nose(canvas: FaceCanvas, identity: Identity, expression: Expression) -> None:
    """Nose ridge, nostrils, tip, nasolabial folds and (disgust) wrinkles."""
    skin = identity.skin
    nose_y = identity.nose_y - 0.03 * expression.nose_wrinkle
    flare = 1 + 0.3 * expression.nose_wrinkle
    corner_lifts = (expression.corner_left, expression.corner_right)
    for side in SIDES:
        ridge = curve(
            (side * 0.05, identity.eye_y + 0.1),
            (side * 0.07, nose_y - 0.1),
            (side * 0.1 * flare, nose_y),
        )
        canvas.polyline(ridge, shade(skin, 0.85), 0.016)
        canvas.ellipse((side * 0.055 * flare, nose_y + 0.01), (0.038, 0.02), shade(skin, 0.45))
        lift = corner_lifts[side > 0]
        depth = float(np.clip(0.15 + expression.cheek + 2 * max(lift, 0.0), 0, 1))
        mouth_corner = (
            side * (identity.mouth_half_width * expression.mouth_width + 0.05),
            identity.mouth_y - lift * 0.6,
        )
        fold = curve(
            (side * 0.13 * flare, nose_y - 0.04), (side * 0.24, nose_y + 0.02), mouth_corner
        )
        canvas.polyline(fold, mix(skin, shade(skin, 0.6), depth), 0.02)
    tip = curve((-0.06, nose_y + 0.03), (0, nose_y + 0.06), (0.06, nose_y + 0.03), 5)
    canvas.polyline(tip, shade(skin, 0.7), 0.016)
    if expression.nose_wrinkle > 0.05:
        colour = mix(skin, shade(skin, 0.5), min(expression.nose_wrinkle, 1.0))
        for row in range(3):
            y = identity.eye_y + 0.03 + 0.05 * row
            canvas.polyline(curve((-0.08, y), (0, y - 0.03), (0.08, y), 5), colour, 0.024)
        for side in SIDES:  # bunny lines from the nose wings toward the eyes
            line = np.array([(side * 0.1, nose_y - 0.08), (side * 0.16, nose_y - 0.2)])
            canvas.polyline(line, colour, 0.022)


_MOUTH_T = np.linspace(-1, 1, 15)  # -1 at the image's left mouth corner, +1 at its right
_LIP_BULGE = np.sqrt(1 - _MOUTH_T**2)
_OPENING_PROFILE = (1 - _MOUTH_T**2) ** 0.6
_LIP_RAISE_PROFILE = (1 - _MOUTH_T**2) ** 0.7


def draw_mouth(canvas: FaceCanvas, identity: Identity, expression: Expression) -> None:
    """Lips, the open mouth with teeth, the lip line and a one-sided smirk's dimple."""
    t = _MOUTH_T
    half_width = min(identity.mouth_half_width * expression.mouth_width, identity.width * 0.6)
    lift = np.where(t < 0, expression.corner_left, expression.corner_right) * t**2
    xs = t * half_width * (1 + 0.6 * np.abs(lift))  # lifted corners are pulled outward
    middle = identity.mouth_y - lift
    opening = expression.mouth_open * _OPENING_PROFILE
    lip_raise = (
        expression.upper_lip * _LIP_RAISE_PROFILE * np.clip(1 + expression.lip_skew * t, 0.15, None)
    )
    upper = middle - 0.4 * opening - lip_raise
    lower = middle + 0.6 * opening
    thinning = 1 - 0.75 * min(expression.lip_press, 1.0)
    upper_lip_edge = upper - identity.lip_height * 0.75 * thinning * _LIP_BULGE
    lower_lip_edge = lower + identity.lip_height * thinning * _LIP_BULGE
    canvas.polygon(band(xs, upper_lip_edge, lower_lip_edge), identity.lips)
    if (lower - upper).max() > 0.015:
        canvas.polygon(band(xs, upper, lower), MOUTH_INSIDE)
        if expression.teeth > 0.5:
            teeth_edge = np.minimum(lower, upper + 0.07)
            canvas.polygon(band(xs[2:-2], upper[2:-2], teeth_edge[2:-2]), TEETH)
    press = min(expression.lip_press, 1.0)
    canvas.polyline(
        np.stack([xs, upper], 1), shade(identity.lips, 0.4 - 0.2 * press), 0.034 + 0.02 * press
    )
    lowest = min(expression.corner_left, expression.corner_right)
    for side, corner in ((-1, expression.corner_left), (1, expression.corner_right)):
        if corner - lowest > 0.12:  # one-sided smirk: a dimple
            x = side * (half_width * (1 + 0.6 * corner) + 0.03)
            y = identity.mouth_y - corner - 0.02
            dimple = curve((x, y - 0.05), (x + side * 0.03, y), (x, y + 0.05), 5)
            canvas.polyline(dimple, shade(identity.skin, 0.55), 0.024)
