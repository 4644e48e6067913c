"""Scene composition: face layers posed on cluttered backgrounds, camera effects, and the
datasets and frames built from them.

A face layer is drawn at 2–3× resolution, area-downsampled and warped into the frame
(premultiplied alpha), so any output size looks clean. :func:`make_dataset` renders each face
in a larger frame and crops it with the device's
:func:`~affectlite.edge_app.preprocess.crop_face`, so training sees exactly the device crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from affectlite.edge_app.labels import NUM_CLASSES
from affectlite.edge_app.preprocess import Box, CropPolicy, crop_face

from .canvas import (
    FACE_BOX_BOTTOM,
    FACE_BOX_FRACTION,
    FACE_BOX_TOP,
    HEAD_CENTRE_Y,
    HEAD_UNIT,
    MIN_DRAWING_SIDE,
    to_colour,
)
from .expressions import sample_expression
from .features import draw_face
from .identities import sample_identity


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


def face_layer(label: int, rng: np.random.Generator, side: int) -> np.ndarray:
    """A premultiplied RGBA face layer of ``side`` pixels for class ``label``.

    It is drawn at an integer multiple of ``side`` of at least :data:`MIN_DRAWING_SIDE` pixels:
    the supersampling keeps thin lines clean, and integer area resizing is cheap.
    """
    drawing_side = side * -(-MIN_DRAWING_SIDE // side)
    layer = draw_face(sample_identity(rng), sample_expression(label, rng), drawing_side)
    if drawing_side != side:
        layer = cv2.resize(layer, (side, side), interpolation=cv2.INTER_AREA)
    return layer


def place_face(frame: np.ndarray, layer: np.ndarray, centre, pose: Pose) -> Box:
    """Composites an RGBA face layer onto ``frame`` (in place), head centre at ``centre``;
    returns the face box ``(x, y, w, h)`` in the frame."""
    side = layer.shape[0]
    anchor = np.array([side / 2, HEAD_CENTRE_Y * side])
    rotation = cv2.getRotationMatrix2D((0.0, 0.0), pose.angle, 1.0)[:, :2]
    linear = rotation @ np.diag([pose.scale * pose.squash, pose.scale])
    offset = np.asarray(centre, np.float64) - linear @ anchor
    matrix = np.hstack([linear, offset[:, None]])
    height, width = frame.shape[:2]
    face = cv2.warpAffine(layer, matrix, (width, height), flags=cv2.INTER_LINEAR)
    alpha = face[:, :, 3:].astype(np.float32) * np.float32(1 / 255)
    frame[:] = (frame * (1 - alpha) + face[:, :, :3] + 0.5).astype(np.uint8)
    unit = HEAD_UNIT * side
    box_centre = anchor + (0, unit * (FACE_BOX_TOP + FACE_BOX_BOTTOM) / 2)
    semi_axes = np.diag([unit * 0.82, unit * (FACE_BOX_BOTTOM - FACE_BOX_TOP) / 2])
    half = np.linalg.norm(linear @ semi_axes, axis=1)
    cx, cy = matrix @ np.append(box_centre, 1.0)
    return (float(cx - half[0]), float(cy - half[1]), float(2 * half[0]), float(2 * half[1]))


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random cluttered backdrop: blotchy colour texture plus shapes and lines."""
    coarse = rng.uniform(30, 225, (rng.integers(2, 7), rng.integers(2, 7), 3)).astype(np.uint8)
    frame = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    scale = max(width, height)
    for _ in range(rng.integers(3, 12)):
        _draw_clutter(frame, rng, width, height, scale)
    return frame


def _draw_clutter(frame: np.ndarray, rng: np.random.Generator, width, height, scale) -> None:
    """One random rectangle, circle, line or ellipse."""
    colour = to_colour(rng.uniform(0, 255, 3))
    x, y = (int(v) for v in rng.uniform(0, 1, 2) * (width, height))
    size = int(rng.uniform(0.05, 0.4) * scale)
    kind = rng.integers(4)
    if kind == 0:
        corner = (x + size, y + int(size * rng.uniform(0.3, 2)))
        cv2.rectangle(frame, (x, y), corner, colour, -1)
    elif kind == 1:
        cv2.circle(frame, (x, y), size // 2, colour, -1, cv2.LINE_AA)
    elif kind == 2:
        end = (x + int(rng.normal(0, size)), y + int(rng.normal(0, size)))
        cv2.line(frame, (x, y), end, colour, max(1, size // 10), cv2.LINE_AA)
    else:
        angle = rng.uniform(0, 180)
        cv2.ellipse(frame, (x, y), (size // 2, size // 5), angle, 0, 360, colour, -1, cv2.LINE_AA)


def camera_effects(frame: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
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
    frame, box = _posed_face(label, rng, size, canvas)
    return camera_effects(frame, rng, size / 128), box


def _posed_face(
    label: int, rng: np.random.Generator, size: int, canvas: int
) -> tuple[np.ndarray, Box]:
    """:func:`render_face` before the camera effects."""
    layer = face_layer(label, rng, size)
    pose = sample_pose(rng)
    frame = background(rng, canvas, canvas)
    centre = np.array([canvas / 2, canvas / 2]) + np.array(pose.shift) * size
    return frame, place_face(frame, layer, centre, pose)


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
    crop_side = (1 + policy.margin) * FACE_BOX_FRACTION  # crop side / face layer side
    face_side = max(16, int(round(1.1 * size / crop_side)))
    canvas = int(round(face_side * 0.9))
    images = np.empty((n, size, size, 3), np.uint8)
    for i, label in enumerate(labels):
        frame, box = _posed_face(int(label), rng, face_side, canvas)
        crop = crop_face(frame, box, size, policy)
        images[i] = camera_effects(crop, rng, size / crop_side / 128)
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
        side = int(round(face_height / FACE_BOX_FRACTION))
        layer = face_layer(label, rng, side)
        pose = sample_pose(rng)
        centre = _free_spot(rng, width, height, face_height, [box for box, _ in placed])
        if centre is None:
            raise ValueError(
                f"cannot place {faces} faces of up to {high} px in a "
                f"{width}×{height} frame; use fewer or smaller faces"
            )
        box = place_face(frame, layer, centre - (0, HEAD_UNIT * side * 0.125), pose)
        placed.append((_clip(box, width, height), label))
    return camera_effects(frame, rng, (low + high) / 2 / 128 * 0.5), placed


def _free_spot(
    rng: np.random.Generator, width: int, height: int, face_height: float, boxes: list[Box]
) -> np.ndarray | None:
    """A random head centre whose face keeps clear of ``boxes`` (50 tries), else ``None``."""
    for _attempt in range(50):
        centre = rng.uniform(
            (0.4 * face_height, 0.45 * face_height),
            (width - 0.4 * face_height, height - 0.55 * face_height),
        )
        if all(_apart(centre, face_height, box) for box in boxes):
            return centre
    return None


def _apart(centre: np.ndarray, face_height: float, box: Box) -> bool:
    x, y, w, h = box
    gap = (face_height + max(w, h)) * 0.6
    return bool(np.linalg.norm(centre - (x + w / 2, y + h / 2)) > gap)


def _clip(box: Box, width: int, height: int) -> Box:
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
    x1, y1 = min(box[0] + box[2], float(width)), min(box[1] + box[3], float(height))
    return (x0, y0, x1 - x0, y1 - y0)
