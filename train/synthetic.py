"""Synthetic expressive faces: the kit's embedded default dataset (NumPy + OpenCV only).

Every face is drawn by the same function from a random identity (face shape, skin tone, hair,
feature sizes and spacing), a random pose, lighting, blur, noise and a cluttered background; the
class changes only the expression geometry (brows, eyelids, mouth, nose wrinkle, cheek folds).
Expressions are cartoon extremes at 85–100 % intensity, with thick lines and large features, and
the nuisance (roll ±10°, blur, noise, lighting) is moderate, so the eight classes stay clearly
separable at 48 px. Accuracy on this data says the pipeline works, not that a model reads real
faces: print :data:`SYNTHETIC_NOTE` beside it.

Faces are drawn anti-aliased as a premultiplied RGBA layer at 2–3× resolution, area-downsampled
and warped into the frame, so any output size (32..224 px and beyond) looks clean.
:func:`make_dataset` renders each face in a larger frame and crops it with the device's
:func:`~affectlite.edge_app.preprocess.crop_face`, so training sees exactly the device crop.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from affectlite.edge_app.labels import LABELS, NUM_CLASSES
from affectlite.edge_app.preprocess import Box, CropPolicy, crop_face

SYNTHETIC_NOTE = "synthetic"
"""Print this beside any accuracy measured on synthetic faces."""

_SHIFT = 4  # cv2 sub-pixel bits for drawing coordinates
_ONE = 1 << _SHIFT
_DETAIL = 160  # minimum internal side (pixels) a face layer is drawn at
_UNIT = 0.3  # head half-height as a fraction of the face layer side
_CENTRE_Y = 0.45  # head centre height as a fraction of the face layer side
_BOX_TOP, _BOX_BOTTOM = -0.75, 1.0  # face box (brow line to chin) in head units
_BOX_FRACTION = (_BOX_BOTTOM - _BOX_TOP) * _UNIT  # face box height / face layer side


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


_TARGETS: dict[str, Expression] = {
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
EXPRESSIONS: tuple[Expression, ...] = tuple(_TARGETS[name] for name in LABELS)
"""Full-intensity expression for each class, in the kit's LABELS order."""

_Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Identity:
    """Who is drawn: proportions in head units, colours as RGB int tuples."""

    width: float
    eye_y: float
    eye_spacing: float
    eye_size: float
    eye_tilt: float
    gaze: tuple[float, float]
    brow_gap: float
    brow_thickness: float
    brow_arch: float
    nose_y: float
    mouth_y: float
    mouth_half_width: float
    lip_height: float
    hair_style: int  # 0 bald, 1 short cap, 2 long
    hair_line: float
    hair_angle: float
    skin: _Colour
    hair: _Colour
    brow: _Colour
    lips: _Colour
    iris: _Colour
    cloth: _Colour
    yaw: float  # horizontal shift of the features (head turned)


_SKINS = np.array([(250, 220, 195), (235, 190, 155), (200, 150, 110), (150, 100, 70), (95, 62, 45)])
_HAIRS = np.array(
    [(25, 20, 18), (70, 45, 30), (130, 90, 50), (210, 180, 120), (150, 60, 30), (170, 170, 170)]
)
_IRISES = np.array([(60, 40, 25), (90, 120, 160), (80, 110, 70), (40, 30, 25)])


_IDENTITY_RANGES = {  # (low, high) of each uniformly drawn proportion
    "skin_mix": (0, 0.4),  # toward a second skin tone
    "skin_gain": (0.92, 1.05),
    "hair_gain": (0.8, 1.15),
    "lip_skin": (0.5, 0.65),
    "lip_red": (0.3, 0.45),
    "iris_gain": (0.8, 1.2),
    "width": (0.72, 0.86),
    "eye_y": (-0.17, -0.09),
    "eye_spacing": (0.4, 0.46),  # × width
    "eye_size": (0.15, 0.18),
    "eye_tilt": (-0.015, 0.015),
    "gaze_x": (-0.25, 0.25),
    "gaze_y": (-0.1, 0.1),
    "brow_gap": (0.15, 0.19),
    "brow_thickness": (0.08, 0.11),
    "brow_arch": (0.0, 0.04),
    "nose_y": (0.2, 0.26),
    "mouth_y": (0.5, 0.56),
    "mouth_half_width": (0.33, 0.38),  # × width
    "lip_height": (0.05, 0.07),
    "hair_line": (-0.62, -0.48),
    "hair_angle": (-10, 10),
    "yaw": (-0.06, 0.06),
}
_RANGE_LOW, _RANGE_HIGH = np.array(list(_IDENTITY_RANGES.values()), np.float64).T


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draws a random face identity."""
    drawn = _RANGE_LOW + (_RANGE_HIGH - _RANGE_LOW) * rng.random(len(_RANGE_LOW))
    v = dict(zip(_IDENTITY_RANGES, drawn.tolist(), strict=True))
    pick = rng.integers((len(_SKINS) - 1, len(_SKINS), len(_HAIRS), len(_IRISES)))
    skin = _SKINS[pick[0]]
    skin = (skin + (_SKINS[pick[1]] - skin) * v["skin_mix"]) * v["skin_gain"]
    hair = _HAIRS[pick[2]] * v["hair_gain"]
    brow = np.minimum(hair * 0.75, skin * 0.5)  # brows always stand out from the skin
    lips = skin * v["lip_skin"] + np.array([150, 50, 60]) * v["lip_red"]
    width = v["width"]
    return Identity(
        width=width,
        eye_y=v["eye_y"],
        eye_spacing=width * v["eye_spacing"],
        eye_size=v["eye_size"],
        eye_tilt=v["eye_tilt"],
        gaze=(v["gaze_x"], v["gaze_y"]),
        brow_gap=v["brow_gap"],
        brow_thickness=v["brow_thickness"],
        brow_arch=v["brow_arch"],
        nose_y=v["nose_y"],
        mouth_y=v["mouth_y"],
        mouth_half_width=width * v["mouth_half_width"],
        lip_height=v["lip_height"],
        hair_style=int(rng.choice(3, p=(0.15, 0.5, 0.35))),
        hair_line=v["hair_line"],
        hair_angle=v["hair_angle"],
        skin=_col(skin),
        hair=_col(hair),
        brow=_col(brow),
        lips=_col(lips),
        iris=_col(_IRISES[pick[3]] * v["iris_gain"]),
        cloth=_col(rng.uniform(20, 235, 3)),
        yaw=v["yaw"],
    )


_JITTER = {
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
_NON_NEGATIVE = {
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
_FIELDS = tuple(field.name for field in dataclasses.fields(Expression))
_NEUTRAL = np.array([getattr(Expression(), name) for name in _FIELDS])
_JITTER_SD = np.array([_JITTER.get(name, 0.0) for name in _FIELDS])
_FLOOR = np.array([0.0 if name in _NON_NEGATIVE else -np.inf for name in _FIELDS])


def sample_expression(label: int, rng: np.random.Generator) -> Expression:
    """Draws class ``label``'s expression at a random intensity (0.85..1) with small jitter.

    One-sided expressions (contempt, disgust's lip) are mirrored at random.
    """
    if not 0 <= label < NUM_CLASSES:
        raise ValueError(f"label must be in 0..{NUM_CLASSES - 1}, got {label!r}")
    target = EXPRESSIONS[label]
    if (target.corner_left != target.corner_right or target.lip_skew) and rng.random() < 0.5:
        target = dataclasses.replace(
            target,
            corner_left=target.corner_right,
            corner_right=target.corner_left,
            lip_skew=-target.lip_skew,
        )
    goal = np.array([getattr(target, name) for name in _FIELDS])
    intensity = rng.uniform(0.85, 1.0)
    values = _NEUTRAL + intensity * (goal - _NEUTRAL) + rng.standard_normal(len(goal)) * _JITTER_SD
    values = dict(zip(_FIELDS, np.maximum(values, _FLOOR).tolist(), strict=True))
    if target.teeth:
        values["teeth"] = float(rng.random() < 0.7)
    return Expression(**values)


class _Canvas:
    """Draws in head units onto a square RGBA face layer (alpha 255 wherever drawn)."""

    def __init__(self, side: int, yaw: float):
        self.image = np.zeros((side, side, 4), np.uint8)
        self.unit = _UNIT * side
        self.scale = self.unit * _ONE
        self.face_origin = np.array([side / 2, _CENTRE_Y * side]) * _ONE
        self.feature_origin = self.face_origin + (yaw * self.scale, 0.0)

    def pts(self, xy: np.ndarray, feature: bool = True) -> np.ndarray:
        origin = self.feature_origin if feature else self.face_origin
        return np.rint(np.asarray(xy) * self.scale + origin).astype(np.int32)

    def px(self, length: float) -> int:
        return max(1, int(round(length * self.unit)))

    def poly(self, xy: np.ndarray, colour: _Colour, feature: bool = True) -> None:
        cv2.fillPoly(self.image, [self.pts(xy, feature)], (*colour, 255), cv2.LINE_AA, _SHIFT)

    def line(self, xy: np.ndarray, colour: _Colour, thickness: float) -> None:
        thick = self.px(thickness)
        cv2.polylines(self.image, [self.pts(xy)], False, (*colour, 255), thick, cv2.LINE_AA, _SHIFT)

    def ellipse(
        self, centre, axes, colour: _Colour, angle: float = 0.0, arc=(0, 360), feature=True
    ) -> None:
        x, y = self.pts(centre, feature).tolist()
        a = (int(round(axes[0] * self.scale)), int(round(axes[1] * self.scale)))
        cv2.ellipse(self.image, (x, y), a, angle, *arc, (*colour, 255), -1, cv2.LINE_AA, _SHIFT)


def _col(colour) -> _Colour:
    return tuple(int(v) for v in np.clip(colour, 0, 255))


def _shade(colour: _Colour, factor: float) -> _Colour:
    return tuple(min(int(v * factor), 255) for v in colour)


def _mix(a: _Colour, b: _Colour, t: float) -> _Colour:
    return tuple(int(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def _bezier_weights(n: int) -> np.ndarray:
    t = np.linspace(0, 1, n)
    return np.stack([(1 - t) ** 2, 2 * (1 - t) * t, t**2], 1)


_BEZIER = {n: _bezier_weights(n) for n in (5, 8)}


def _curve(p0, p1, p2, n: int = 8) -> np.ndarray:
    """Quadratic Bézier from p0 to p2 pulled toward p1, as ``n`` points."""
    return _BEZIER[n] @ np.array([p0, p1, p2], np.float64)


def draw_face(identity: Identity, expression: Expression, side: int) -> np.ndarray:
    """Draws one face on a ``side × side`` layer; returns premultiplied RGBA ``uint8``."""
    c = _Canvas(side, identity.yaw)
    _draw_head(c, identity)
    for s in (-1, 1):
        _draw_eye(c, identity, expression, s)
        _draw_brow(c, identity, expression, s)
    _draw_frown(c, identity, expression)
    _draw_nose(c, identity, expression)
    _draw_mouth(c, identity, expression)
    return c.image


def _draw_head(c: _Canvas, idt: Identity) -> None:
    w, skin = idt.width, idt.skin
    c.ellipse((0, 1.85), (w * 2.1, 0.8), idt.cloth, feature=False)
    neck = np.array([(-0.36 * w, 0.5), (0.36 * w, 0.5), (0.4 * w, 1.3), (-0.4 * w, 1.3)])
    c.poly(neck, _shade(skin, 0.82), feature=False)
    if idt.hair_style == 2:
        c.ellipse((0, 0.1), (w * 1.25, 1.22), idt.hair, feature=False)
    for s in (-1, 1):
        c.ellipse((s * w * 0.97, -0.02), (0.1, 0.18), _shade(skin, 0.9), feature=False)
    c.ellipse((0, 0), (w, 1.0), skin, feature=False)
    c.ellipse((0, 0.35), (w * 0.55, 0.25), _mix(skin, idt.lips, 0.12), feature=False)  # cheeks
    if idt.hair_style:
        top = 1.06 + idt.hair_line
        c.ellipse(
            (0, idt.hair_line),
            (w * 1.04, top),
            idt.hair,
            angle=idt.hair_angle,
            arc=(180, 360),
            feature=False,
        )


_THETA = np.linspace(0, np.pi, 12)
_COS, _SIN = np.cos(_THETA), np.sin(_THETA)
_WHITE, _PUPIL, _LASH, _MOUTH, _TEETH = (
    (238, 234, 228),
    (15, 12, 12),
    (25, 18, 16),
    (60, 16, 22),
    (240, 237, 228),
)


def _draw_eye(c: _Canvas, idt: Identity, ex: Expression, s: int) -> None:
    ew = idt.eye_size
    cx, cy = s * idt.eye_spacing, idt.eye_y + s * idt.eye_tilt
    xs = cx - _COS * ew
    inner = (1 + s * _COS) / 2  # 1 at the corner nearest the nose
    weight = inner if ex.lid_slant > 0 else 1 - inner
    height = _SIN**0.9 * ew * 0.5 * ex.eye_upper - abs(ex.lid_slant) * weight * ew * 0.35
    lower = np.stack([xs, cy + _SIN * ew * 0.35 * ex.eye_lower], 1)
    upper = np.stack([xs, cy - np.maximum(height, -_SIN * ew * 0.2)], 1)
    c.poly(np.vstack([upper, lower[::-1]]), _WHITE)
    iris_r = ew * 0.48
    centre = (cx + idt.gaze[0] * ew * 0.35, cy + idt.gaze[1] * ew * 0.5)
    c.ellipse(centre, (iris_r, iris_r), idt.iris)
    c.ellipse(centre, (iris_r * 0.5, iris_r * 0.5), _PUPIL)
    reach = ew * 1.2
    c.poly(np.vstack([upper, [(cx + ew, cy - reach), (cx - ew, cy - reach)]]), idt.skin)
    c.poly(np.vstack([lower, [(cx + ew, cy + reach), (cx - ew, cy + reach)]]), idt.skin)
    c.line(upper + (0, -0.05 - 0.02 * ex.eye_upper), _shade(idt.skin, 0.82), 0.018)  # crease
    c.line(upper, _LASH, 0.042)
    c.line(lower, _shade(idt.skin, 0.7), 0.018)
    if ex.cheek > 0.05:
        bag = lower[2:-2] + (0, 0.06)
        c.line(bag, _mix(idt.skin, _shade(idt.skin, 0.65), min(ex.cheek, 1.0)), 0.02)


_BROW_TAPER = np.linspace(0.55, 0.35, 8)[:, None] * (0, 1)  # brow half-thickness along it


def _draw_brow(c: _Canvas, idt: Identity, ex: Expression, s: int) -> None:
    ew, base = idt.eye_size, idt.eye_y - idt.brow_gap - ex.brow_raise
    inner = (s * (idt.eye_spacing - ew * 0.95 - ex.brow_squeeze), base - ex.brow_inner)
    outer = (s * (idt.eye_spacing + ew * 1.3), base + 0.02 + 0.3 * ex.brow_inner)
    mid_y = base - idt.brow_arch - ex.brow_arch - 0.02 - ex.brow_inner * 0.3
    centre = _curve(inner, (s * (idt.eye_spacing + ew * 0.2), mid_y), outer)
    half = idt.brow_thickness * _BROW_TAPER
    c.poly(np.vstack([centre - half, (centre + half)[::-1]]), idt.brow)


def _draw_frown(c: _Canvas, idt: Identity, ex: Expression) -> None:
    """Vertical lines between strongly lowered inner brows (anger)."""
    if ex.brow_inner < -0.09:
        y = idt.eye_y - idt.brow_gap - ex.brow_raise
        for x in (-0.035, 0.035):
            c.line(np.array([(x, y - 0.02), (x * 1.4, y + 0.1)]), _shade(idt.skin, 0.6), 0.022)


def _draw_nose(c: _Canvas, idt: Identity, ex: Expression) -> None:
    ny, dark = idt.nose_y - 0.03 * ex.nose_wrinkle, _shade(idt.skin, 0.7)
    flare = 1 + 0.3 * ex.nose_wrinkle
    corners = (ex.corner_left, ex.corner_right)
    for s in (-1, 1):
        c.line(
            _curve((s * 0.05, idt.eye_y + 0.1), (s * 0.07, ny - 0.1), (s * 0.1 * flare, ny)),
            _shade(idt.skin, 0.85),
            0.016,
        )
        c.ellipse((s * 0.055 * flare, ny + 0.01), (0.038, 0.02), _shade(idt.skin, 0.45))
        lift = corners[s > 0]
        depth = float(np.clip(0.15 + ex.cheek + 2 * max(lift, 0.0), 0, 1))
        corner = (s * (idt.mouth_half_width * ex.mouth_width + 0.05), idt.mouth_y - lift * 0.6)
        fold = _curve((s * 0.13 * flare, ny - 0.04), (s * 0.24, ny + 0.02), corner)
        c.line(fold, _mix(idt.skin, _shade(idt.skin, 0.6), depth), 0.02)
    c.line(_curve((-0.06, ny + 0.03), (0, ny + 0.06), (0.06, ny + 0.03), 5), dark, 0.016)
    if ex.nose_wrinkle > 0.05:
        colour = _mix(idt.skin, _shade(idt.skin, 0.5), min(ex.nose_wrinkle, 1.0))
        for k in range(3):
            y = idt.eye_y + 0.03 + 0.05 * k
            c.line(_curve((-0.08, y), (0, y - 0.03), (0.08, y), 5), colour, 0.024)
        for s in (-1, 1):  # bunny lines from the nose wings toward the eyes
            c.line(np.array([(s * 0.1, ny - 0.08), (s * 0.16, ny - 0.2)]), colour, 0.022)


_T = np.linspace(-1, 1, 15)
_BULGE = np.sqrt(1 - _T**2)
_OPEN = (1 - _T**2) ** 0.6
_RAISE = (1 - _T**2) ** 0.7


def _band(xs: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Closed outline between two curves sampled at the same ``xs``."""
    return np.concatenate([np.stack([xs, top], 1), np.stack([xs, bottom], 1)[::-1]])


def _draw_mouth(c: _Canvas, idt: Identity, ex: Expression) -> None:
    half_width = min(idt.mouth_half_width * ex.mouth_width, idt.width * 0.6)
    lift = np.where(_T < 0, ex.corner_left, ex.corner_right) * _T**2
    xs = _T * half_width * (1 + 0.6 * np.abs(lift))  # lifted corners are pulled outward
    mid = idt.mouth_y - lift
    opening = ex.mouth_open * _OPEN
    raise_ = ex.upper_lip * _RAISE * np.clip(1 + ex.lip_skew * _T, 0.15, None)
    upper = mid - 0.4 * opening - raise_
    lower = mid + 0.6 * opening
    thin = 1 - 0.75 * min(ex.lip_press, 1.0)
    up_lip = upper - idt.lip_height * 0.75 * thin * _BULGE
    low_lip = lower + idt.lip_height * thin * _BULGE
    c.poly(_band(xs, up_lip, low_lip), idt.lips)
    if (lower - upper).max() > 0.015:
        c.poly(_band(xs, upper, lower), _MOUTH)
        if ex.teeth > 0.5:
            edge = np.minimum(lower, upper + 0.07)
            c.poly(_band(xs[2:-2], upper[2:-2], edge[2:-2]), _TEETH)
    line = _shade(idt.lips, 0.4 - 0.2 * min(ex.lip_press, 1.0))
    c.line(np.stack([xs, upper], 1), line, 0.034 + 0.02 * min(ex.lip_press, 1.0))
    for s, corner in ((-1, ex.corner_left), (1, ex.corner_right)):
        if corner - min(ex.corner_left, ex.corner_right) > 0.12:  # one-sided smirk: a dimple
            x, y = s * (half_width * (1 + 0.6 * corner) + 0.03), idt.mouth_y - corner - 0.02
            dimple = _curve((x, y - 0.05), (x + s * 0.03, y), (x, y + 0.05), 5)
            c.line(dimple, _shade(idt.skin, 0.55), 0.024)


@dataclass(frozen=True)
class Pose:
    """Placement of a face layer in the frame."""

    angle: float  # in-plane rotation, degrees
    scale: float
    squash: float  # horizontal scale for slight yaw
    shift: tuple[float, float]  # as a fraction of the face layer side


def sample_pose(rng: np.random.Generator) -> Pose:
    """Draws a random head pose: up to ±10° roll, ±8 % scale, mild yaw squash."""
    angle, scale, squash, dx, dy = rng.uniform(
        (-10, 0.92, 0.88, -0.04, -0.04), (10, 1.08, 1, 0.04, 0.04)
    )
    return Pose(angle, scale, squash, (dx, dy))


def _layer(label: int, rng: np.random.Generator, side: int) -> np.ndarray:
    """A premultiplied RGBA face layer of ``side`` pixels, drawn at an integer multiple
    ≥ ``_DETAIL`` px: the supersampling keeps thin lines clean, integer area resizing is cheap.
    """
    detail = side * -(-_DETAIL // side)
    layer = draw_face(sample_identity(rng), sample_expression(label, rng), detail)
    if detail != side:
        layer = cv2.resize(layer, (side, side), interpolation=cv2.INTER_AREA)
    return layer


def _place(frame: np.ndarray, layer: np.ndarray, centre, pose: Pose) -> Box:
    """Composites an RGBA face layer onto ``frame`` (in place), head centre at ``centre``."""
    side = layer.shape[0]
    anchor = np.array([side / 2, _CENTRE_Y * side])
    rotation = cv2.getRotationMatrix2D((0.0, 0.0), pose.angle, 1.0)[:, :2]
    linear = rotation @ np.diag([pose.scale * pose.squash, pose.scale])
    offset = np.asarray(centre, np.float64) - linear @ anchor
    matrix = np.hstack([linear, offset[:, None]])
    height, width = frame.shape[:2]
    face = cv2.warpAffine(layer, matrix, (width, height), flags=cv2.INTER_LINEAR)
    a = face[:, :, 3:].astype(np.float32) * np.float32(1 / 255)
    frame[:] = (frame * (1 - a) + face[:, :, :3] + 0.5).astype(np.uint8)
    unit = _UNIT * side
    box_centre = anchor + (0, unit * (_BOX_TOP + _BOX_BOTTOM) / 2)
    semi = np.diag([unit * 0.82, unit * (_BOX_BOTTOM - _BOX_TOP) / 2])
    half = np.linalg.norm(linear @ semi, axis=1)
    cx, cy = matrix @ np.append(box_centre, 1.0)
    return (float(cx - half[0]), float(cy - half[1]), float(2 * half[0]), float(2 * half[1]))


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random cluttered backdrop: blotchy colour texture plus shapes and lines."""
    coarse = rng.uniform(30, 225, (rng.integers(2, 7), rng.integers(2, 7), 3)).astype(np.uint8)
    frame = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    scale = max(width, height)
    for _ in range(rng.integers(3, 12)):
        colour = _col(rng.uniform(0, 255, 3))
        x, y = (int(v) for v in rng.uniform(0, 1, 2) * (width, height))
        size = int(rng.uniform(0.05, 0.4) * scale)
        kind = rng.integers(4)
        if kind == 0:
            cv2.rectangle(
                frame, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2))), colour, -1
            )
        elif kind == 1:
            cv2.circle(frame, (x, y), size // 2, colour, -1, cv2.LINE_AA)
        elif kind == 2:
            end = (x + int(rng.normal(0, size)), y + int(rng.normal(0, size)))
            cv2.line(frame, (x, y), end, colour, max(1, size // 10), cv2.LINE_AA)
        else:
            cv2.ellipse(
                frame,
                (x, y),
                (size // 2, size // 5),
                rng.uniform(0, 180),
                0,
                360,
                colour,
                -1,
                cv2.LINE_AA,
            )
    return frame


def _camera(frame: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Lighting gradient, colour cast, mild blur and sensor noise; ``scale`` = px per face-px.

    Kept moderate so 2-px features (lids, lip lines) survive at 48 px.
    """
    height, width = frame.shape[:2]
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-9
    slope = direction * rng.uniform(0, 0.6) / max(height, width)
    xs = (np.arange(width, dtype=np.float32) - width / 2) * np.float32(slope[0])
    ys = (np.arange(height, dtype=np.float32) - height / 2) * np.float32(slope[1])
    cast = (rng.uniform(0.9, 1.1, 3) * rng.uniform(0.75, 1.1)).astype(np.float32)
    gain = (1 + xs[None, :, None] + ys[:, None, None]) * cast
    out = frame * gain
    sigma = rng.uniform(0, 0.8) * scale
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(rng.uniform(0, 5))
    return np.clip(out, 0, 255).astype(np.uint8)


def render_face(
    label: int, rng: np.random.Generator, size: int = 112, canvas: int | None = None
) -> tuple[np.ndarray, Box]:
    """Renders one face of class ``label`` on a cluttered background.

    Args:
        label: index into LABELS.
        rng: the only source of randomness (same state, same image).
        size: side of the square the head and shoulders are drawn in (pixels); the face box
            is about half of it.
        canvas: side of the returned image (default ``size``); the face is centred in it.

    Returns:
        ``uint8`` RGB image ``(canvas, canvas, 3)`` and the face box ``(x, y, w, h)`` in it.
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    canvas = size if canvas is None else canvas
    if canvas < size // 2:
        raise ValueError(f"canvas must be at least size/2 = {size // 2} pixels, got {canvas}")
    frame, box = _frame(label, rng, size, canvas)
    return _camera(frame, rng, size / 128), box


def _frame(label: int, rng: np.random.Generator, size: int, canvas: int) -> tuple[np.ndarray, Box]:
    """:func:`render_face` before the camera effects."""
    layer = _layer(label, rng, size)
    pose = sample_pose(rng)
    frame = background(rng, canvas, canvas)
    centre = np.array([canvas / 2, canvas / 2]) + np.array(pose.shift) * size
    return frame, _place(frame, layer, centre, pose)


def make_dataset(
    n: int, size: int = 112, seed: int = 0, balanced: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic face crops as the device would see them, with their labels.

    Each face is rendered in a larger frame and cropped with ``crop_face(frame, box, size,
    CropPolicy())``; the camera effects are applied to the crop (same look, fewer pixels).

    Returns:
        images ``uint8 (n, size, size, 3)`` and labels ``int64 (n,)``; identical for a seed.
    """
    if n < 0 or size < 8:
        raise ValueError(f"need n ≥ 0 and size ≥ 8, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    if balanced:
        labels = rng.permutation(np.arange(n) % NUM_CLASSES)
    else:
        labels = rng.integers(0, NUM_CLASSES, n)
    policy = CropPolicy()
    crop_side = (1 + policy.margin) * _BOX_FRACTION  # crop side / face layer side
    face_side = max(16, int(round(1.1 * size / crop_side)))
    canvas = int(round(face_side * 0.9))
    images = np.empty((n, size, size, 3), np.uint8)
    for i, label in enumerate(labels):
        frame, box = _frame(int(label), rng, face_side, canvas)
        crop = crop_face(frame, box, size, policy)
        images[i] = _camera(crop, rng, size / crop_side / 128)
    return images, labels.astype(np.int64)


def make_scene(
    rng: np.random.Generator,
    width: int = 640,
    height: int = 480,
    faces: int = 1,
    size_range: tuple[int, int] = (80, 200),
) -> tuple[np.ndarray, list[tuple[Box, int]]]:
    """A camera-like frame with ``faces`` non-overlapping faces of random classes.

    ``size_range`` bounds the face box height in pixels. Returns the ``uint8`` RGB frame and
    ``[(box, label), ...]`` with every box inside the frame.

    Raises:
        ValueError: if the faces cannot be placed without overlap.
    """
    low, high = size_range
    if not 16 <= low <= high or high > min(width, height) * 0.8:
        raise ValueError(
            f"size_range must satisfy 16 ≤ low ≤ high ≤ 0.8·min(width, height), "
            f"got {size_range} for a {width}×{height} frame"
        )
    frame = background(rng, height, width)
    placed: list[tuple[Box, int]] = []
    for _ in range(faces):
        label, face_height = int(rng.integers(NUM_CLASSES)), rng.uniform(low, high)
        side = int(round(face_height / _BOX_FRACTION))
        layer = _layer(label, rng, side)
        pose = sample_pose(rng)
        for _attempt in range(50):
            centre = rng.uniform(
                (0.4 * face_height, 0.45 * face_height),
                (width - 0.4 * face_height, height - 0.55 * face_height),
            )
            if all(_apart(centre, face_height, box) for box, _ in placed):
                break
        else:
            raise ValueError(
                f"cannot place {faces} faces of up to {high} px in a "
                f"{width}×{height} frame; use fewer or smaller faces"
            )
        box = _place(frame, layer, centre - (0, _UNIT * side * 0.125), pose)
        placed.append((_clip(box, width, height), label))
    return _camera(frame, rng, (low + high) / 2 / 128 * 0.5), placed


def _apart(centre: np.ndarray, face_height: float, box: Box) -> bool:
    x, y, w, h = box
    gap = (face_height + max(w, h)) * 0.6
    return bool(np.linalg.norm(centre - (x + w / 2, y + h / 2)) > gap)


def _clip(box: Box, width: int, height: int) -> Box:
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
    x1, y1 = min(box[0] + box[2], float(width)), min(box[1] + box[3], float(height))
    return (x0, y0, x1 - x0, y1 - y0)
