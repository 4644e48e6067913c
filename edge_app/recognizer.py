"""The Python API: emotions of the faces in a photo, in three lines::

    from affectlite import EmotionRecognizer
    recognizer = EmotionRecognizer()             # the shipped default bundle
    faces = recognizer.predict("photo.jpg")      # or an RGB uint8 array

Each face is a :class:`~.pipeline.FaceResult` (``box``, ``label``, ``confidence``,
``probabilities``, ``uncertain``, ``score``), the same record ``affectlite run`` and
``affectlite predict`` write as JSON. Photos are independent: no tracking or smoothing. One
recognizer is safe to share between threads (its pipeline runs one photo at a time).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from affectlite.errors import InputError

from . import overlay
from .bundle import Bundle, load_bundle, resolve_bundle
from .pipeline import FaceResult, FrameResult, Pipeline, PipelineConfig
from .preprocess import Still, read_still


class EmotionRecognizer:
    """Finds the faces in photos and classifies their emotions; build it once, reuse it.

    Args:
        bundle: a bundle folder, a loaded :class:`~.bundle.Bundle`, or ``None``/``"default"``
            for the shipped default bundle.
        config: detector, face and threshold settings (:class:`~.pipeline.PipelineConfig`).
    """

    def __init__(
        self, bundle: str | Path | Bundle | None = None, config: PipelineConfig | None = None
    ) -> None:
        if not isinstance(bundle, Bundle):
            bundle = load_bundle(resolve_bundle(bundle))
        self.bundle = bundle
        self.pipeline = Pipeline(bundle, config)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.pipeline.labels

    def predict(self, image: str | Path | np.ndarray) -> list[FaceResult]:
        """The faces of one photo (a file path or an ``(H, W, 3)`` RGB ``uint8`` array),
        largest first; boxes in the photo's own pixels, clipped to the photo."""
        photo = load_photo(image)
        faces = self.pipeline.process(photo.rgb, still=True).faces
        return [face.scaled(photo.reduction).inside(*photo.upright_size) for face in faces]

    def annotate(
        self, image: str | Path | np.ndarray, faces: list[FaceResult], bgr: bool = False
    ) -> np.ndarray:
        """A copy of the photo with each face's box, label and probability bars, or "no face"
        (at the decoded size: a file over 8 MP is drawn reduced, as :func:`read_still` decodes
        it). RGB, like an array passed to :meth:`predict`; ``bgr=True`` returns OpenCV's BGR
        order instead, ready for ``cv2.imwrite``."""
        photo = load_photo(image)
        result = FrameResult(0.0, [face.scaled(1 / photo.reduction) for face in faces], {})
        picture = overlay.annotate(photo.rgb, result, labels=self.labels)
        return cv2.cvtColor(picture, cv2.COLOR_RGB2BGR, dst=picture) if bgr else picture


def load_photo(image: str | Path | np.ndarray) -> Still:
    """A photo as ``uint8`` RGB: files go through the device's bounded still reader
    (EXIF-rotated; over 40 MP refused from the header, over 8 MP decoded reduced).

    Raises:
        ImageError: naming a file that is missing, too large or cannot be decoded.
        InputError: for an array that is not ``(H, W, 3)`` ``uint8`` with at least one pixel.
    """
    if isinstance(image, str | Path):
        return read_still(image)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or array.size == 0:
        raise InputError(
            "Expected a file path or a non-empty RGB uint8 array of shape (H, W, 3), got "
            f"{array.dtype} {array.shape} (convert with np.asarray(image.convert('RGB')) for "
            "PIL images)."
        )
    return Still(array, (array.shape[1], array.shape[0]))
