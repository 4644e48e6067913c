"""Drawing primitives: a face layer drawn in head units, colours and curves.

A face is drawn on a square RGBA layer with anti-aliased OpenCV primitives at sub-pixel
precision. Coordinates are in head units: the head's half-height is 1, the origin is the head
centre, and features (eyes, brows, nose, mouth) are shifted sideways by the head's yaw.
"""

from __future__ import annotations

import cv2
import numpy as np

Colour = tuple[int, int, int]

SUBPIXEL_BITS = 4  # cv2's fractional bits for drawing coordinates
SUBPIXEL_ONE = 1 << SUBPIXEL_BITS
MIN_DRAWING_SIDE = 160  # a face layer is drawn at least this large, then downsampled
HEAD_UNIT = 0.3  # head half-height as a fraction of the face layer side
HEAD_CENTRE_Y = 0.45  # head centre height as a fraction of the face layer side
FACE_BOX_TOP, FACE_BOX_BOTTOM = -0.75, 1.0  # face box (brow line to chin) in head units
FACE_BOX_FRACTION = (FACE_BOX_BOTTOM - FACE_BOX_TOP) * HEAD_UNIT
"""Face box height as a fraction of the face layer side."""

WHITE_OF_EYE: Colour = (238, 234, 228)
PUPIL: Colour = (15, 12, 12)
LASH: Colour = (25, 18, 16)
MOUTH_INSIDE: Colour = (60, 16, 22)
TEETH: Colour = (240, 237, 228)


class FaceCanvas:
    """Draws in head units onto a square RGBA face layer (alpha 255 wherever drawn)."""

    def __init__(self, side: int, yaw: float):
        self.image = np.zeros((side, side, 4), np.uint8)
        self.unit = HEAD_UNIT * side
        self.scale = self.unit * SUBPIXEL_ONE
        self.face_origin = np.array([side / 2, HEAD_CENTRE_Y * side]) * SUBPIXEL_ONE
        self.feature_origin = self.face_origin + (yaw * self.scale, 0.0)

    def points(self, xy: np.ndarray, feature: bool = True) -> np.ndarray:
        """Head-unit points as cv2's fixed-point pixel coordinates."""
        origin = self.feature_origin if feature else self.face_origin
        return np.rint(np.asarray(xy) * self.scale + origin).astype(np.int32)

    def pixels(self, length: float) -> int:
        """A head-unit length in whole pixels (at least 1)."""
        return max(1, int(round(length * self.unit)))

    def polygon(self, xy: np.ndarray, colour: Colour, feature: bool = True) -> None:
        """A filled polygon."""
        corners = [self.points(xy, feature)]
        cv2.fillPoly(self.image, corners, (*colour, 255), cv2.LINE_AA, SUBPIXEL_BITS)

    def polyline(self, xy: np.ndarray, colour: Colour, thickness: float) -> None:
        """An open line through ``xy``, ``thickness`` in head units."""
        cv2.polylines(
            self.image,
            [self.points(xy)],
            False,
            (*colour, 255),
            self.pixels(thickness),
            cv2.LINE_AA,
            SUBPIXEL_BITS,
        )

    def ellipse(
        self,
        centre: tuple[float, float],
        axes: tuple[float, float],
        colour: Colour,
        angle: float = 0.0,
        arc: tuple[float, float] = (0, 360),
        feature: bool = True,
    ) -> None:
        """A filled ellipse (or sector of one, ``arc`` in degrees)."""
        x, y = self.points(centre, feature).tolist()
        half_axes = (int(round(axes[0] * self.scale)), int(round(axes[1] * self.scale)))
        cv2.ellipse(
            self.image,
            (x, y),
            half_axes,
            angle,
            *arc,
            (*colour, 255),
            -1,
            cv2.LINE_AA,
            SUBPIXEL_BITS,
        )


def to_colour(values) -> Colour:
    """Any three numbers as an RGB colour, clipped to 0..255."""
    return tuple(int(v) for v in np.clip(values, 0, 255))


def shade(colour: Colour, factor: float) -> Colour:
    """The colour darkened (factor < 1) or lightened (> 1)."""
    return tuple(min(int(v * factor), 255) for v in colour)


def mix(first: Colour, second: Colour, amount: float) -> Colour:
    """The colour ``amount`` of the way from ``first`` to ``second``."""
    return tuple(int(a + (b - a) * amount) for a, b in zip(first, second, strict=True))


def _bezier_weights(n: int) -> np.ndarray:
    t = np.linspace(0, 1, n)
    return np.stack([(1 - t) ** 2, 2 * (1 - t) * t, t**2], 1)


_BEZIER_WEIGHTS = {n: _bezier_weights(n) for n in (5, 8)}


def curve(start, control, end, n: int = 8) -> np.ndarray:
    """Quadratic Bézier from ``start`` to ``end`` pulled toward ``control``, as ``n`` points."""
    return _BEZIER_WEIGHTS[n] @ np.array([start, control, end], np.float64)


def band(xs: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Closed outline between two curves sampled at the same ``xs``."""
    return np.concatenate([np.stack([xs, top], 1), np.stack([xs, bottom], 1)[::-1]])
