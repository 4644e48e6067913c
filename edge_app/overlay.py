"""Drawing results onto frames: face boxes, captions, probability bars, "no face".

Pure functions on ``uint8`` arrays with OpenCV's drawing primitives; nothing here imports Kivy,
so the same code annotates the app's preview, its snapshots, ``predict``'s pictures and the
Python API's. Frames are RGB unless ``bgr=True`` (OpenCV's order, for ``cv2.imwrite``), and
come back in the order they went in. :func:`annotate` never changes its input frame.

Layout: the caption sits above its box (below it, or inside its top edge, when the frame ends
there), and the bar panel beside the face, wherever it covers the fewest faces and captions,
so the face itself stays visible; every panel is clamped into the frame, never cut off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import cv2
import numpy as np

from .labels import LABELS
from .tracking import UNCERTAIN

Colour = tuple[int, int, int]
Rect = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)``: corners in frame pixels, ``x1``/``y1`` exclusive."""

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
ERROR_COLOUR: Colour = (160, 0, 0)
STAGES = ("detect", "crop", "classify", "post", "total")
FONT = cv2.FONT_HERSHEY_SIMPLEX
NO_FACE = "no face"


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
    palette), in RGB."""
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


def latency_text(timings_ms: Mapping[str, float]) -> str:
    """The per-stage latency, e.g. ``"detect 3.1 ms | classify 5.0 ms | total 9.0 ms"``."""
    return " | ".join(f"{s} {timings_ms[s]:.1f} ms" for s in STAGES if s in timings_ms)


def stats_text(fps: float | None, timings_ms: Mapping[str, float]) -> str:
    """One line: throughput and the per-stage latency, e.g. ``"14.8 FPS | detect 3.1 ms ..."``."""
    rate = f"{fps:.1f} FPS" if fps is not None else "-- FPS"
    latency = latency_text(timings_ms)
    return f"{rate} | {latency}" if latency else rate


def clip_box(box: Sequence[float], width: int, height: int) -> Rect | None:
    """The box ``(x, y, w, h)`` as integer corners ``(x0, y0, x1, y1)`` inside the frame, or
    ``None`` when nothing of it is visible."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width - 1, round(x + w)), min(height - 1, round(y + h))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def overlap(a: Rect, b: Rect) -> int:
    """The area two rectangles share, in pixels."""
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def place(
    size: tuple[int, int], origins: Sequence[tuple[int, int]], frame: np.ndarray, avoid: list[Rect]
) -> Rect:
    """A ``size`` rectangle at the first of ``origins`` that lies inside the frame and covers
    nothing in ``avoid``; else, clamped into the frame, the one that covers the least."""
    height, width = frame.shape[:2]
    w, h = size
    best: tuple[int, int, Rect] | None = None
    for rank, (x, y) in enumerate(origins):
        inside = 0 <= x and 0 <= y and x + w <= width and y + h <= height
        x = int(min(max(0, x), max(0, width - w)))
        y = int(min(max(0, y), max(0, height - h)))
        rect = (x, y, x + w, y + h)
        covered = sum(overlap(rect, other) for other in avoid)
        if inside and covered == 0:
            return rect
        cost = (covered, rank)
        if best is None or cost < best[:2]:
            best = (*cost, rect)
    assert best is not None, "place needs at least one origin"
    return best[2]


def text_panel_size(text: str, scale: float) -> tuple[int, int]:
    """``(width, height)`` of :func:`draw_text_panel`'s panel for ``text``."""
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, scale, _thickness(scale))
    pad = _pad(scale)
    return text_w + 2 * pad, text_h + baseline + 2 * pad


def _thickness(scale: float) -> int:
    return max(1, round(scale * 2))


def _pad(scale: float) -> int:
    return max(2, round(4 * scale))


def draw_text_panel(
    frame: np.ndarray, text: str, origin: tuple[int, int], scale: float, colour: Colour
) -> tuple[int, int]:
    """Writes ``text`` on a filled background whose top-left corner is ``origin`` (clamped
    into the frame); returns the panel's ``(width, height)``. Draws in place."""
    panel_w, panel_h = text_panel_size(text, scale)
    x0, y0, x1, y1 = place((panel_w, panel_h), [origin], frame, [])
    _write(frame, text, (x0, y0, x1, y1), scale, colour)
    return panel_w, panel_h


def ink(background: Colour) -> Colour:
    """Black text on a light background (happy's yellow, neutral's grey), white on a dark
    one."""
    red, green, blue = background
    return (0, 0, 0) if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else TEXT_COLOUR


def _write(frame: np.ndarray, text: str, rect: Rect, scale: float, colour: Colour) -> None:
    x0, y0, x1, y1 = rect
    pad = _pad(scale)
    baseline = cv2.getTextSize(text, FONT, scale, _thickness(scale))[1]
    cv2.rectangle(frame, (x0, y0), (x1 - 1, y1 - 1), colour, cv2.FILLED)
    origin = (x0 + pad, y1 - pad - baseline)
    cv2.putText(frame, text, origin, FONT, scale, ink(colour), _thickness(scale), cv2.LINE_AA)


def bars_scale(frame_height: int) -> float:
    """The font scale of the bar panel's names and percentages."""
    return text_scale(frame_height) * 0.7


def bars_size(frame_height: int, labels: Sequence[str] = LABELS) -> tuple[int, int]:
    """``(width, height)`` of :func:`draw_probability_bars`'s panel on a frame this tall."""
    name_w, bar_w, pct_w, row, pad = _bar_columns(bars_scale(frame_height), labels)
    return pad + name_w + pad + bar_w + pad + pct_w + pad, row * len(labels) + 2 * pad


def _bar_columns(scale: float, labels: Sequence[str]) -> tuple[int, int, int, int, int]:
    """Name, bar and percentage widths, the row height and the padding of the bar panel."""
    name_w = max(cv2.getTextSize(name, FONT, scale, 1)[0][0] for name in labels)
    pct_w = cv2.getTextSize("100%", FONT, scale, 1)[0][0]
    (_, text_h), baseline = cv2.getTextSize("Mg", FONT, scale, 1)
    pad = max(2, round(5 * scale))
    return name_w, max(name_w, 4 * pad), pct_w, text_h + baseline + pad, pad


def draw_probability_bars(
    frame: np.ndarray,
    probabilities: Mapping[str, float],
    origin: tuple[int, int],
    labels: Sequence[str] = LABELS,
) -> Rect:
    """A bar chart on a darkened panel whose top-left corner is ``origin`` (clamped into the
    frame): one row per label in ``labels`` order, its full name, a bar as long as its
    probability and the percentage. Returns the panel's rectangle; draws in place."""
    scale = bars_scale(frame.shape[0])
    name_w, bar_w, pct_w, row, pad = _bar_columns(scale, labels)
    x0, y0, x1, y1 = place(bars_size(frame.shape[0], labels), [origin], frame, [])
    panel = frame[y0:y1, x0:x1]
    panel[:] = (panel.astype(np.uint16) // 4).astype(np.uint8)  # dark, the scene still shows
    bar_x = x0 + pad + name_w + pad
    for i, name in enumerate(labels):
        top = y0 + pad + i * row
        text_y = top + row - pad // 2 - cv2.getTextSize("Mg", FONT, scale, 1)[1]
        value = float(np.clip(probabilities.get(name, 0.0), 0.0, 1.0))
        cv2.putText(frame, name, (x0 + pad, text_y), FONT, scale, TEXT_COLOUR, 1, cv2.LINE_AA)
        length = round(value * bar_w)
        if length > 0:
            corner = (bar_x + length - 1, top + row - pad // 2 - 2)
            cv2.rectangle(frame, (bar_x, top + 1), corner, label_colour(name), cv2.FILLED)
        percent = f"{value:.0%}"
        right = x1 - pad - cv2.getTextSize(percent, FONT, scale, 1)[0][0]
        cv2.putText(frame, percent, (right, text_y), FONT, scale, TEXT_COLOUR, 1, cv2.LINE_AA)
    return x0, y0, x1, y1


def draw_face(
    frame: np.ndarray,
    face: FaceLike,
    labels: Sequence[str] = LABELS,
    avoid: list[Rect] | None = None,
    bars: bool = True,
) -> list[Rect]:
    """Draws the face's box in its label's colour, its bar panel (when ``bars``) beside it and
    its caption next to the box, placed off the rectangles in ``avoid`` (the faces' boxes,
    panels already drawn) where the frame has room; the caption is drawn last, on top.
    Returns the rectangles drawn over; draws in place."""
    height, width = frame.shape[:2]
    corners = clip_box(face.box, width, height)
    if corners is None:
        return []
    x0, y0, x1, y1 = corners
    avoid = list(avoid or [])
    colour = label_colour(face.label)
    cv2.rectangle(frame, (x0, y0), (x1, y1), colour, line_thickness(height))
    drawn = []
    if bars:
        w, h = bars_size(height, labels)
        gap = line_thickness(height) + 2
        caption_h = text_panel_size("Mg", text_scale(height))[1]
        origins = [
            (x1 + gap, y0),
            (x0 - gap - w, y0),
            (x1 + gap, y1 - h),
            (x0 - gap - w, y1 - h),
            (x0, y1 + gap),
            (x1 - w, y1 + gap),
            (x0, y0 - caption_h - h),
        ]
        rect = place((w, h), origins, frame, avoid)
        drawn.append(draw_probability_bars(frame, face.probabilities, rect[:2], labels))
    scale = text_scale(height)
    caption = face_caption(face)
    w, h = text_panel_size(caption, scale)
    others = [rect for rect in avoid if rect != corners] + drawn
    origins = [(x0, y0 - h), (x0, y1 + 1), (x0, y0)]  # above; below; inside the top edge
    drawn.append(place((w, h), origins, frame, others))
    _write(frame, caption, drawn[-1], scale, colour)  # last: nothing hides the caption
    return drawn


def annotate(
    frame: np.ndarray,
    result: FrameLike | None,
    fps: float | None = None,
    labels: Sequence[str] = LABELS,
    stats: bool = False,
    bars: bool = True,
    bgr: bool = False,
) -> np.ndarray:
    """A copy of ``frame`` with every face drawn (box, caption, and its probability bars
    unless ``bars`` is False), "no face" at the top left when the result has none, the
    result's error instead when it carries one, and, when ``stats``, the FPS/latency strip in
    the corner farthest from the faces.

    Colour order: ``frame`` is RGB, or BGR (OpenCV's, ready for ``cv2.imwrite``) when ``bgr``
    is True; the copy comes back in the same order.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"Expected a uint8 RGB or BGR frame (H, W, 3), got {frame.dtype} {frame.shape}."
        )
    out = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(frame).copy()
    if result is not None:
        draw_result(out, result, fps, labels, stats, bars)
    return cv2.cvtColor(out, cv2.COLOR_RGB2BGR) if bgr else out


def draw_result(
    out: np.ndarray,
    result: FrameLike,
    fps: float | None,
    labels: Sequence[str],
    stats: bool = False,
    bars: bool = True,
) -> None:
    """Draws on ``out`` itself (RGB) what :func:`annotate` draws on its copy."""
    height, width = out.shape[:2]
    boxes = [clip_box(face.box, width, height) for face in result.faces]
    drawn: list[Rect] = [box for box in boxes if box is not None]
    for face in result.faces:
        drawn += draw_face(out, face, labels, drawn, bars)
    scale = text_scale(height)
    if result.error or not result.faces:
        message = result.error or NO_FACE
        colour = ERROR_COLOUR if result.error else PANEL_COLOUR
        rect = place(text_panel_size(message, scale), [(0, 0)], out, [])
        _write(out, message, rect, scale, colour)
        drawn.append(rect)
    if stats:
        scale *= 0.8
        text = stats_text(fps, result.timings_ms)
        w, h = text_panel_size(text, scale)
        corners = [(width - w, height - h), (0, height - h), (width - w, 0), (0, 0)]
        _write(out, text, place((w, h), corners, out, drawn), scale, PANEL_COLOUR)


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
