"""Drawing results onto frames: face boxes, labels, probability bars and a stats strip.

Pure functions on ``uint8`` RGB arrays with OpenCV's drawing primitives; nothing here imports
Kivy, so the same code annotates the app's preview, its snapshots and the headless runner's
debug output. :func:`annotate` never changes its input frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import cv2
import numpy as np

from .labels import LABELS
from .tracking import UNCERTAIN

Colour = tuple[int, int, int]

# One colour per emotion (RGB), distinct from each other and from skin tones.
PALETTE: dict[str, Colour] = {
    "neutral": (200, 200, 200),
    "happy": (255, 215, 0),
    "sad": (30, 144, 255),
    "surprise": (255, 105, 180),
    "fear": (148, 0, 211),
    "disgust": (50, 205, 50),
    "anger": (255, 40, 40),
    "contempt": (255, 140, 0),
    UNCERTAIN: (0, 255, 255),
}
UNKNOWN_COLOUR: Colour = (255, 255, 255)
TEXT_COLOUR: Colour = (255, 255, 255)
PANEL_COLOUR: Colour = (0, 0, 0)
STAGES = ("detect", "crop", "classify", "post", "total")
FONT = cv2.FONT_HERSHEY_SIMPLEX


class FaceLike(Protocol):
    """What the overlay reads from a face result (``pipeline.FaceResult``)."""

    box: tuple[float, float, float, float]
    label: str
    confidence: float
    probabilities: dict[str, float]
    uncertain: bool


class FrameLike(Protocol):
    """What the overlay reads from a frame result (``pipeline.FrameResult``)."""

    faces: Sequence[FaceLike]
    timings_ms: Mapping[str, float]
    error: str | None


def label_colour(label: str) -> Colour:
    """The box colour of an emotion label (cyan for "uncertain", white for a label outside the
    palette)."""
    return PALETTE.get(label, UNKNOWN_COLOUR)


def text_scale(frame_height: int) -> float:
    """An OpenCV font scale that stays readable from 240p to 1080p."""
    return max(0.35, frame_height / 900.0)


def line_thickness(frame_height: int) -> int:
    """Box line thickness in pixels for a frame of this height."""
    return max(2, round(frame_height / 240))


def face_caption(face: FaceLike) -> str:
    """``"happy 87%"``, or ``"uncertain (happy 31%)"`` naming the leading class when the
    smoothed confidence is below the threshold."""
    if face.uncertain and face.probabilities:
        best = max(face.probabilities, key=face.probabilities.__getitem__)
        return f"{UNCERTAIN} ({best} {face.probabilities[best]:.0%})"
    return f"{face.label} {face.confidence:.0%}"


def stats_text(fps: float | None, timings_ms: Mapping[str, float]) -> str:
    """One line: throughput and the per-stage latency, e.g. ``"14.8 FPS | detect 3.1 ms ..."``."""
    parts = [f"{fps:.1f} FPS" if fps is not None else "-- FPS"]
    parts += [f"{stage} {timings_ms[stage]:.1f} ms" for stage in STAGES if stage in timings_ms]
    return " | ".join(parts)


def clip_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int] | None:
    """The box ``(x, y, w, h)`` as integer corners ``(x0, y0, x1, y1)`` inside the frame, or
    ``None`` when nothing of it is visible."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width - 1, round(x + w)), min(height - 1, round(y + h))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def draw_text_panel(
    frame: np.ndarray, text: str, origin: tuple[int, int], scale: float, colour: Colour
) -> tuple[int, int]:
    """Writes ``text`` on a filled background whose top-left corner is ``origin`` (clamped
    into the frame); returns the panel's ``(width, height)``. Draws in place."""
    thickness = max(1, round(scale * 2))
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    pad = max(2, round(4 * scale))
    panel_w, panel_h = text_w + 2 * pad, text_h + baseline + 2 * pad
    height, width = frame.shape[:2]
    x = int(min(max(0, origin[0]), max(0, width - panel_w)))
    y = int(min(max(0, origin[1]), max(0, height - panel_h)))
    cv2.rectangle(frame, (x, y), (x + panel_w, y + panel_h), colour, cv2.FILLED)
    cv2.putText(
        frame, text, (x + pad, y + pad + text_h), FONT, scale, TEXT_COLOUR, thickness, cv2.LINE_AA
    )
    return panel_w, panel_h


def draw_probability_bars(
    frame: np.ndarray,
    probabilities: Mapping[str, float],
    origin: tuple[int, int],
    width: int,
    labels: Sequence[str] = LABELS,
) -> None:
    """A small bar chart: one row per label (in ``labels`` order), bar length = probability.
    ``origin`` is the chart's top-left corner; draws in place."""
    scale = text_scale(frame.shape[0]) * 0.7
    thickness = 1
    row = cv2.getTextSize("Mg", FONT, scale, thickness)[0][1] + max(3, round(6 * scale))
    name_w = max(cv2.getTextSize(name[:4], FONT, scale, thickness)[0][0] for name in labels)
    chart_h = row * len(labels) + 4
    height, frame_w = frame.shape[:2]
    x = int(min(max(0, origin[0]), max(0, frame_w - width)))
    y = int(min(max(0, origin[1]), max(0, height - chart_h)))
    panel = frame[y : y + chart_h, x : x + width]
    panel[:] = (panel.astype(np.uint16) // 3).astype(np.uint8)  # darken, keep the face visible
    bar_x0, bar_max = x + name_w + 6, max(1, width - name_w - 10)
    for i, name in enumerate(labels):
        top = y + 2 + i * row
        cv2.putText(
            frame,
            name[:4],
            (x + 3, top + row - 3),
            FONT,
            scale,
            TEXT_COLOUR,
            thickness,
            cv2.LINE_AA,
        )
        length = round(float(np.clip(probabilities.get(name, 0.0), 0.0, 1.0)) * bar_max)
        if length > 0:
            cv2.rectangle(
                frame,
                (bar_x0, top + 2),
                (bar_x0 + length, top + row - 2),
                label_colour(name),
                cv2.FILLED,
            )


def draw_face(frame: np.ndarray, face: FaceLike, labels: Sequence[str] = LABELS) -> None:
    """Box in the label's colour, caption above it and the probability chart below it;
    draws in place."""
    height, width = frame.shape[:2]
    corners = clip_box(face.box, width, height)
    if corners is None:
        return
    x0, y0, x1, y1 = corners
    colour = label_colour(face.label)
    cv2.rectangle(frame, (x0, y0), (x1, y1), colour, line_thickness(height))
    scale = text_scale(height)
    caption_h = cv2.getTextSize("Mg", FONT, scale, 1)[0][1] * 2 + 4
    draw_text_panel(frame, face_caption(face), (x0, y0 - caption_h - 2), scale, colour)
    chart_w = int(np.clip(x1 - x0, 90, max(90, width // 3)))
    draw_probability_bars(frame, face.probabilities, (x0, y1 + 4), chart_w, labels)


def annotate(
    frame: np.ndarray,
    result: FrameLike | None,
    fps: float | None = None,
    labels: Sequence[str] = LABELS,
    stats: bool = True,
) -> np.ndarray:
    """A copy of ``frame`` with every face drawn and, when ``stats``, the FPS/latency strip at
    the top left (plus the result's error, if any, below it)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 RGB frame (H, W, 3), got {frame.dtype} {frame.shape}.")
    out = np.ascontiguousarray(frame).copy()
    if result is None:
        return out
    for face in result.faces:
        draw_face(out, face, labels)
    if not stats:
        return out
    scale = text_scale(out.shape[0]) * 0.8
    stats = stats_text(fps, result.timings_ms)
    _, strip_h = draw_text_panel(out, stats, (0, 0), scale, PANEL_COLOUR)
    if result.error:
        draw_text_panel(out, result.error, (0, strip_h + 2), scale, (160, 0, 0))
    return out


def fit_rect(
    content_size: tuple[int, int], area_pos: tuple[float, float], area_size: tuple[float, float]
) -> tuple[float, float, float, float]:
    """Where content of ``(width, height)`` goes when scaled to fit inside an area, centred,
    keeping its aspect ratio (letterboxing): ``(x, y, width, height)`` in the area's
    coordinates. Used to place the preview texture in its widget."""
    content_w, content_h = content_size
    area_w, area_h = area_size
    if content_w <= 0 or content_h <= 0:
        raise ValueError(f"content_size must be positive, got {content_size}.")
    scale = min(area_w / content_w, area_h / content_h)
    width, height = content_w * scale, content_h * scale
    return area_pos[0] + (area_w - width) / 2, area_pos[1] + (area_h - height) / 2, width, height
