"""The face-crop policy, decode and colour handling shared by training, calibration and the device.

Images are ``uint8`` RGB arrays of shape ``(H, W, 3)`` everywhere in the kit. Normalisation is
*not* done here: every affectlite model takes raw RGB pixels in 0..255 and normalises inside the
graph, so the int8 model's input is the camera's pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from affectlite.errors import InputError

Box = tuple[float, float, float, float]
"""A face box as ``(x, y, width, height)`` in pixels of the full image."""

MIN_SIDE = 8
"""Images or face boxes smaller than this (pixels) carry no usable expression."""


class ImageError(InputError):
    """An image could not be decoded or has no usable pixels."""


@dataclass(frozen=True)
class CropPolicy:
    """How a detected face box becomes the classifier's input.

    Attributes:
        margin: fraction of the box's longer side added around it (0.2 adds 10 % on each side).
        square: grow the shorter side so the crop is square and faces keep their aspect ratio.
        pad_value: grey level used where the expanded box leaves the image.
    """

    margin: float = 0.2
    square: bool = True
    pad_value: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CropPolicy:
        return cls(**{k: data[k] for k in ("margin", "square", "pad_value") if k in data})


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Converts grey, grey+alpha, RGBA, 16-bit or float images to ``uint8`` RGB.

    Raises:
        ImageError: for shapes that are not an image.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (2, 3, 4)):
        raise ImageError(f"Expected an H×W or H×W×{{1,2,3,4}} image, got shape {image.shape}.")
    if image.size == 0:
        raise ImageError(f"Empty image of shape {image.shape}.")
    image = _to_uint8(image)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 2:
        return np.repeat(image[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.floating):
        finite = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        return np.clip(finite * scale, 0, 255).astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        return np.clip(image, 0, 255).astype(np.uint8)
    raise ImageError(f"Unsupported image dtype {image.dtype}.")


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decodes encoded image bytes (JPEG, PNG, …) to ``uint8`` RGB, applying EXIF rotation.

    OpenCV's ``IMREAD_COLOR`` turns grey, alpha, 16-bit and CMYK sources into 8-bit colour.

    Raises:
        ImageError: naming ``name`` when the bytes are not a decodable image.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    except cv2.error:  # some decoders assert on a corrupt header instead of returning None
        bgr = None
    if bgr is None:
        raise ImageError(f"{name}: not a readable image (corrupt, truncated or not an image file).")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path) -> np.ndarray:
    """Reads an image file as ``uint8`` RGB.

    Raises:
        ImageError: naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error.strerror or error}).") from error
    return decode_image(data, str(path))


def expand_box(box: Box, policy: CropPolicy) -> tuple[int, int, int, int]:
    """Returns the integer crop window ``(x0, y0, x1, y1)`` for a face box under ``policy``.

    The window may extend past the image; :func:`crop_face` pads those parts.

    Raises:
        ImageError: for a box with non-finite values or a side under one pixel.
    """
    x, y, w, h = (float(v) for v in box)
    if not all(np.isfinite([x, y, w, h])) or w < 1 or h < 1:
        raise ImageError(f"Invalid face box {box!r}: need finite x, y and width, height ≥ 1.")
    cx, cy = x + w / 2, y + h / 2
    if policy.square:
        w = h = max(w, h)
    w, h = w * (1 + policy.margin), h * (1 + policy.margin)
    if not all(np.isfinite([cx, cy, w, h])):
        raise ImageError(f"Invalid face box {box!r}: coordinates overflow.")
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    return x0, y0, x0 + max(1, int(round(w))), y0 + max(1, int(round(h)))


def crop_face(
    image: np.ndarray, box: Box | None, size: int, policy: CropPolicy = CropPolicy()
) -> np.ndarray:
    """Crops one face and resizes it to the classifier's ``size × size`` RGB input.

    Args:
        image: the full frame, any layout :func:`to_rgb` accepts.
        box: the face as ``(x, y, w, h)``; ``None`` means the image already is a face crop
            (FER2013, RAF-DB aligned), which is then only padded to a square.
        size: the model's input side in pixels.
        policy: margin, squareness and padding.

    Returns:
        ``uint8`` array of shape ``(size, size, 3)``.
    """
    if size < 1:
        raise ValueError(f"Crop size must be positive, got {size}.")
    rgb = to_rgb(image)
    height, width = rgb.shape[:2]
    if box is None:
        x0, y0, x1, y1 = 0, 0, width, height
        if policy.square:
            x0, y0, x1, y1 = expand_box((0, 0, width, height), CropPolicy(0.0, True))
    else:
        x0, y0, x1, y1 = expand_box(box, policy)
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise ImageError(f"Face box {box!r} lies outside the {width}×{height} image.")
    if max(x1 - x0, y1 - y0) > 4 * max(width, height):  # a bad box; padding it would exhaust memory
        raise ImageError(f"Face box {box!r} is far larger than the {width}×{height} image.")
    window = rgb[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)]
    pads = (max(-y0, 0), max(y1 - height, 0), max(-x0, 0), max(x1 - width, 0))
    if any(pads):
        value = (policy.pad_value,) * 3
        window = cv2.copyMakeBorder(window, *pads, cv2.BORDER_CONSTANT, value=value)
    shrinking = window.shape[0] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(window, (size, size), interpolation=interpolation)
