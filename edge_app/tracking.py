"""Per-face tracking and smoothing so that labels on screen are steady and honest.

Faces are matched across frames by box overlap (IoU, greedy, best pairs first). Each track keeps
an exponential moving average of its class probabilities; the displayed label changes only when
another class leads the shown one by a margin (hysteresis), and a face whose smoothed confidence
is below the threshold is shown as "uncertain" until it clears the threshold plus the margin.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from affectlite.errors import InputError

from .preprocess import Box

UNCERTAIN = "uncertain"


SMOOTHING = 0.6
"""Default weight of the past in the per-face moving average (tracker, pipeline, app)."""


@dataclass(frozen=True)
class TrackerConfig:
    """Tracking and smoothing settings.

    Attributes:
        smoothing: weight of the past in the moving average (0 = no smoothing, < 1).
        threshold: smoothed confidence below which a face is shown as uncertain.
        hysteresis: margin a new class must lead by to replace the shown label, and the margin
            above ``threshold`` needed to leave the uncertain state.
        iou_threshold: least box overlap for a detection to continue a track.
        max_missed: frames a track survives without a matching detection.
    """

    smoothing: float = SMOOTHING
    threshold: float = 0.4
    hysteresis: float = 0.1
    iou_threshold: float = 0.3
    max_missed: int = 5

    def __post_init__(self) -> None:
        checks = {
            "smoothing": 0.0 <= self.smoothing < 1.0,
            "threshold": 0.0 <= self.threshold <= 1.0,
            "hysteresis": 0.0 <= self.hysteresis < 1.0,
            "iou_threshold": 0.0 < self.iou_threshold <= 1.0,
            "max_missed": self.max_missed >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise InputError(f"Invalid tracker setting {name}={getattr(self, name)!r}.")


@dataclass(eq=False)
class Track:
    """One face followed across frames (compared by identity)."""

    track_id: int
    box: Box
    probabilities: np.ndarray
    label_index: int
    uncertain: bool
    missed: int = 0
    age: int = 1

    @property
    def confidence(self) -> float:
        """Smoothed probability of the shown (held) class."""
        return float(self.probabilities[self.label_index])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection-over-union of ``(N, 4)`` and ``(M, 4)`` x, y, w, h boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax0, ay0, aw, ah = (a[:, i, None] for i in range(4))
    bx0, by0, bw, bh = (b[None, :, i] for i in range(4))
    iw = np.clip(np.minimum(ax0 + aw, bx0 + bw) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay0 + ah, by0 + bh) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs ``(row, col)`` taken best-overlap first, each row and column at most once."""
    pairs, rows, cols = [], set(), set()
    for flat in np.argsort(-iou, axis=None):
        row, col = np.unravel_index(flat, iou.shape)
        if iou[row, col] < threshold:
            break
        if row not in rows and col not in cols:
            pairs.append((int(row), int(col)))
            rows.add(row)
            cols.add(col)
    return pairs


@dataclass
class FaceTracker:
    """Follows faces across frames and smooths their class probabilities."""

    config: TrackerConfig = field(default_factory=TrackerConfig)
    tracks: list[Track] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1), repr=False)

    def reset(self) -> None:
        """Forgets every track (e.g. when the source changes)."""
        self.tracks.clear()

    def update(self, boxes: list[Box], probabilities: np.ndarray) -> list[Track]:
        """Feeds one frame's faces; returns their tracks in the order of ``boxes``.

        Args:
            boxes: this frame's face boxes.
            probabilities: ``(len(boxes), C)`` class probabilities from the classifier.
        """
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if len(probabilities) != len(boxes):
            raise ValueError(f"{len(boxes)} boxes but {len(probabilities)} probability rows.")
        iou = iou_matrix([t.box for t in self.tracks], boxes)
        matched = dict((col, row) for row, col in greedy_match(iou, self.config.iou_threshold))
        results = []
        for i, (box, probs) in enumerate(zip(boxes, probabilities, strict=True)):
            if i in matched:
                track = self.tracks[matched[i]]
                self._follow(track, box, probs)
            else:
                track = self._start(box, probs)
            results.append(track)
        for track in self.tracks:
            if track not in results:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.config.max_missed]
        self.tracks.extend(t for t in results if t not in self.tracks)
        return results

    def _start(self, box: Box, probs: np.ndarray) -> Track:
        label = int(np.argmax(probs))
        uncertain = float(probs[label]) < self.config.threshold
        return Track(next(self._ids), tuple(box), probs.copy(), label, uncertain)

    def _follow(self, track: Track, box: Box, probs: np.ndarray) -> None:
        alpha = self.config.smoothing
        track.probabilities = alpha * track.probabilities + (1.0 - alpha) * probs
        track.box, track.missed, track.age = tuple(box), 0, track.age + 1
        best = int(np.argmax(track.probabilities))
        margin = self.config.hysteresis
        if track.probabilities[best] - track.probabilities[track.label_index] > margin:
            track.label_index = best
        confidence = track.confidence
        if track.uncertain:
            track.uncertain = confidence < self.config.threshold + margin
        else:
            track.uncertain = confidence < self.config.threshold
