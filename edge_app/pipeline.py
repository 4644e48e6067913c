"""One frame in, faces with smoothed emotions out: detect → crop → classify → track.

The :class:`Pipeline` builds its detector and classifier once and is then called per frame; it
is what the Kivy app and the headless runner share. It keeps tracking state, so use one pipeline
per video stream. One pipeline is safe to share between threads: a lock serialises its frames
(a LiteRT interpreter must never run two inferences at once).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from affectlite.errors import InputError

from .bundle import Bundle
from .classifier import EmotionClassifier
from .detector import DETECTORS, Detection, FaceDetector, HaarDetector, make_detector
from .preprocess import Box, ImageError, box_inside, crop_face
from .tracking import SMOOTHING, UNCERTAIN, FaceTracker, TrackerConfig

STAGES = ("detect", "crop", "classify", "post", "total")


@dataclass
class FaceResult:
    """One face in a frame.

    Attributes:
        track_id: stable id of this face across frames; ``None`` for a photo (no tracking).
        box: ``(x, y, w, h)`` in frame pixels, inside the frame.
        label: the displayed emotion, or ``"uncertain"``.
        confidence: probability of the shown emotion (smoothed across video frames).
        probabilities: probability per label (smoothed across video frames).
        uncertain: the confidence is below the threshold.
        score: the face detector's confidence.
        error: why the face could not be classified (the model gave non-finite outputs); the
            face is then ``uncertain`` with confidence and probabilities 0, never a label.
    """

    track_id: int | None
    box: Box
    label: str
    confidence: float
    probabilities: dict[str, float]
    uncertain: bool
    score: float = 1.0
    error: str | None = None

    @classmethod
    def failed(cls, detection: Detection, labels: tuple[str, ...], error: str) -> FaceResult:
        """A face the classifier could not classify: no label, no confidence."""
        zeros = dict.fromkeys(labels, 0.0)
        return cls(None, detection.box, UNCERTAIN, 0.0, zeros, True, detection.score, error)

    def scaled(self, factor: float) -> FaceResult:
        """The same face with its box multiplied by ``factor`` (decoded → file pixels)."""
        if factor == 1:
            return self
        return replace(self, box=tuple(v * factor for v in self.box))

    def inside(self, width: float, height: float) -> FaceResult:
        """The same face with its box clipped to a ``width × height`` picture."""
        return replace(self, box=box_inside(self.box, width, height))

    def to_dict(self) -> dict:
        """The face as JSON, the one schema of ``run``, ``predict`` and the API."""
        return {
            "track_id": self.track_id,
            "box": [round(float(v), 1) for v in self.box],
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "uncertain": self.uncertain,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "score": round(self.score, 4),
        } | ({"error": self.error} if self.error else {})


NON_FINITE = "the classifier gave non-finite outputs (NaN or infinity) for this face"


@dataclass
class FrameResult:
    """Everything found in one frame, or the error that stopped it.

    Attributes:
        timestamp: Unix time of the frame.
        faces: the faces, largest first.
        timings_ms: milliseconds per stage (``STAGES``); empty for an error.
        error: what went wrong (e.g. camera lost), else ``None``.
    """

    timestamp: float
    faces: list[FaceResult]
    timings_ms: dict[str, float]
    error: str | None = None

    @classmethod
    def failure(cls, message: str, timestamp: float | None = None) -> FrameResult:
        """A result carrying only an error message."""
        return cls(time.time() if timestamp is None else timestamp, [], {}, message)

    def to_dict(self) -> dict:
        return {
            "timestamp": round(self.timestamp, 6),
            "faces": [face.to_dict() for face in self.faces],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "error": self.error,
        }


@dataclass
class PipelineConfig:
    """Settings of the device pipeline (the CLI and the app's settings fill it).

    Attributes:
        num_threads: interpreter threads (``None``: ``AFFECTLITE_THREADS`` or up to 4).
        detector: ``"blazeface"``, ``"haar"`` or a BlazeFace ``.tflite`` path.
        max_faces: most faces classified per frame (the largest).
        detect_width: frames wider than this are downscaled for detection (``None``: never).
        smoothing: weight of the past in the probability average (0 = none).
        threshold: smoothed confidence below which a face is shown as uncertain.
        hysteresis: lead a new label needs over the shown one before it is shown.
        min_face: faces narrower or shorter than this (frame pixels) are skipped.
        score_threshold: least detector score for a face.
        nms_threshold: box overlap above which detections are merged.
        iou_threshold: least box overlap to continue a track.
        max_missed: frames a track survives without its face.
    """

    num_threads: int | None = None
    detector: str = "blazeface"
    max_faces: int = 5
    detect_width: int | None = 320
    smoothing: float = SMOOTHING
    threshold: float = 0.4
    hysteresis: float = 0.1
    min_face: int = 24
    score_threshold: float = 0.5
    nms_threshold: float = 0.3
    iou_threshold: float = 0.3
    max_missed: int = 5

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS and not str(self.detector).endswith(".tflite"):
            raise InputError(
                f"detector must be one of {DETECTORS} or a .tflite, got {self.detector!r}."
            )
        if self.max_faces < 1:
            raise InputError(f"max_faces must be at least 1, got {self.max_faces}.")
        if self.detect_width is not None and self.detect_width < 64:
            raise InputError(f"detect_width must be at least 64 or None, got {self.detect_width}.")
        if self.min_face < 1:
            raise InputError(f"min_face must be at least 1 pixel, got {self.min_face}.")
        if self.num_threads is not None and self.num_threads < 1:
            raise InputError(f"num_threads must be at least 1, got {self.num_threads}.")
        self.tracker_config()

    def tracker_config(self) -> TrackerConfig:
        return TrackerConfig(
            self.smoothing, self.threshold, self.hysteresis, self.iou_threshold, self.max_missed
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def detect_faces(
    detector: FaceDetector | HaarDetector,
    frame: np.ndarray,
    detect_width: int | None,
    min_face: int,
    detect_frame: np.ndarray | None = None,
) -> list[Detection]:
    """Faces of ``frame`` in its pixels, largest first, as the device finds them: detected on
    ``detect_frame`` or on the frame downscaled to ``detect_width``, faces under ``min_face``
    pixels dropped."""
    height, width = frame.shape[:2]
    small = detect_frame
    if small is None:
        small = frame
        if detect_width and width > detect_width:
            new_size = (detect_width, max(1, round(height * detect_width / width)))
            small = cv2.resize(frame, new_size, interpolation=cv2.INTER_AREA)
    sx, sy = width / small.shape[1], height / small.shape[0]
    detections = [d.scaled(sx, sy) for d in detector.detect(small)]
    return [d for d in detections if d.box[2] >= min_face and d.box[3] >= min_face]


class Pipeline:
    """Detects, crops, classifies (one batch for all faces) and tracks the faces of frames."""

    def __init__(self, bundle: Bundle, config: PipelineConfig | None = None) -> None:
        self.bundle = bundle
        self.config = config or PipelineConfig()
        self.detector = make_detector(
            self.config.detector,
            bundle,
            num_threads=self.config.num_threads,
            score_threshold=self.config.score_threshold,
            nms_threshold=self.config.nms_threshold,
            max_faces=self.config.max_faces,
        )
        self.classifier = EmotionClassifier.from_bundle(bundle, self.config.num_threads)
        self.tracker = FaceTracker(self.config.tracker_config())
        self.labels = self.classifier.labels
        self.crop_size, self.crop_policy = bundle.input_size, bundle.crop_policy
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forgets tracked faces (call when switching sources)."""
        with self._lock:
            self.tracker.reset()

    def process(
        self,
        frame_rgb: np.ndarray,
        detect_frame: np.ndarray | None = None,
        timestamp: float | None = None,
        still: bool = False,
    ) -> FrameResult:
        """Runs every stage on one ``uint8`` RGB frame.

        Args:
            frame_rgb: the full frame; crops are taken from it at full resolution.
            detect_frame: a smaller RGB view of the same frame to detect on (picamera2's lores
                stream); by default the frame is downscaled to ``detect_width``.
            timestamp: Unix time of the frame (default: now).
            still: the frame is a photo on its own: its faces are neither tracked nor smoothed
                (``track_id`` is ``None``) and the tracks of a video are left untouched.

        Raises:
            ImageError: for a frame that is not a non-empty ``uint8`` RGB image.
        """
        with self._lock:
            return self._process(frame_rgb, detect_frame, timestamp, still)

    def _process(
        self,
        frame_rgb: np.ndarray,
        detect_frame: np.ndarray | None,
        timestamp: float | None,
        still: bool,
    ) -> FrameResult:
        if frame_rgb.size == 0:
            raise ImageError(f"Empty frame of shape {frame_rgb.shape}.")
        timestamp = time.time() if timestamp is None else timestamp
        start = time.perf_counter()
        detections = self._detect(frame_rgb, detect_frame)
        detect_ms = _ms(start)

        mark = time.perf_counter()
        kept, crops = [], []
        for detection in detections:
            try:
                crops.append(crop_face(frame_rgb, detection.box, self.crop_size, self.crop_policy))
            except ImageError:  # The box lies wholly outside the frame: nothing to classify.
                continue
            kept.append(detection)
        crop_ms = _ms(mark)

        mark = time.perf_counter()
        if crops:
            probabilities = self.classifier.predict(np.stack(crops))
        else:
            probabilities = np.zeros((0, len(self.labels)), np.float32)
        classify_ms = _ms(mark)

        mark = time.perf_counter()
        finite = np.isfinite(probabilities).all(axis=1)
        good = [detection for detection, ok in zip(kept, finite, strict=True) if ok]
        classified = iter(self._faces(good, probabilities[finite], still))  # never tracks a NaN
        faces = [  # in detection order, largest first, failed faces in their place
            next(classified) if ok else FaceResult.failed(detection, self.labels, NON_FINITE)
            for detection, ok in zip(kept, finite, strict=True)
        ]
        faces = [face.inside(frame_rgb.shape[1], frame_rgb.shape[0]) for face in faces]
        timings = {
            "detect": detect_ms,
            "crop": crop_ms,
            "classify": classify_ms,
            "post": _ms(mark),
            "total": _ms(start),
        }
        return FrameResult(timestamp, faces, timings)

    def _detect(self, frame: np.ndarray, detect_frame: np.ndarray | None) -> list[Detection]:
        config = self.config
        return detect_faces(
            self.detector, frame, config.detect_width, config.min_face, detect_frame
        )

    def _faces(
        self, detections: list[Detection], probabilities: np.ndarray, still: bool
    ) -> list[FaceResult]:
        if still:
            least = self.config.threshold
            states = [(None, p, int(np.argmax(p)), float(p.max()) < least) for p in probabilities]
        else:
            tracks = self.tracker.update([d.box for d in detections], probabilities)
            states = [(t.track_id, t.probabilities, t.label_index, t.uncertain) for t in tracks]
        faces = []
        for detection, (track_id, probs, index, uncertain) in zip(detections, states, strict=True):
            faces.append(
                FaceResult(
                    track_id=track_id,
                    box=detection.box,
                    label=UNCERTAIN if uncertain else self.labels[index],
                    confidence=float(probs[index]),
                    probabilities=dict(zip(self.labels, map(float, probs), strict=True)),
                    uncertain=uncertain,
                    score=detection.score,
                )
            )
        return faces
