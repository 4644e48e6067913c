"""The face-crop policy, decode and colour handling shared by training, calibration and the device.

Images are ``uint8`` RGB arrays of shape ``(H, W, 3)`` everywhere in the kit. Normalisation is
*not* done here: every affectlite model takes raw RGB pixels in 0..255 and normalises inside the
graph, so the int8 model's input is the camera's pixels.
"""

from __future__ import annotations

import math
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from affectlite.errors import InputError

from .names import shown

Box = tuple[float, float, float, float]
"""A face box as ``(x, y, width, height)`` in pixels of the full image."""

MIN_SIDE = 8
"""Images or face boxes smaller than this (pixels) carry no usable expression."""

MAX_STILL_PIXELS = 40_000_000
"""Stills whose header claims more pixels are refused before decoding: 40 MP decodes to
120 MB of RGB, which a 1 GB Raspberry Pi still affords; a 20000×20000 PNG (2.5 GB) it does not."""

MAX_FRAME_PIXELS = 3840 * 2160
"""Video and camera frames over 4K are refused from the container before any frame is decoded:
a 4K frame is 25 MB of RGB; an 8000×8000 video took 2 GB through the decoder."""

STILL_MAGIC = (b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF87a", b"GIF89a", b"II*\0", b"MM\0*")
"""How a still file starts (JPEG, PNG, BMP, GIF, TIFF; WebP is ``RIFF....WEBP``)."""

HEIF_BRANDS = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"hevc": "HEIC",
    b"hevx": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}
"""ISO-BMFF ``ftyp`` brands of HEIF stills (HEIC, AVIF): photos, though they share MP4's box."""

REDUCED_PIXELS = 8_000_000
"""Larger stills are decoded at 1/2, 1/4 or 1/8 scale (JPEG natively) to at most about this."""

_REDUCED = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


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
        raise ImageError(f"{shown(path)}: cannot read ({error.strerror or error}).") from error
    return decode_image(data, shown(path))


@dataclass(frozen=True)
class Still:
    """A still image as read by :func:`read_still`.

    Attributes:
        rgb: the decoded ``uint8`` RGB pixels.
        size: ``(width, height)`` the file's header declares.
        reduction: 1, 2, 4 or 8: the file's pixels per decoded pixel along each side; multiply
            coordinates in ``rgb`` by it to get the file's.
    """

    rgb: np.ndarray
    size: tuple[int, int]
    reduction: int = 1

    @property
    def upright_size(self) -> tuple[int, int]:
        """``(width, height)`` of the upright picture in the file's pixels: :attr:`size`,
        swapped when EXIF rotation turned the picture by 90°."""
        width, height = self.size
        turned = (width > height) != (self.rgb.shape[1] > self.rgb.shape[0])
        return (height, width) if turned else (width, height)


def read_still(path: str | Path, max_pixels: float = MAX_STILL_PIXELS) -> Still:
    """Reads a still image for the device, with a memory limit: the one reader for image files
    on the device (folder sources, single photos, the app's Open photo).

    The format is read from the file's first bytes, never its name, and the size from its
    header (PNG, JPEG, BMP, GIF, WebP, TIFF, HEIC/AVIF) before any decoding; an image over
    ``max_pixels`` is refused, and one over :data:`REDUCED_PIXELS` is decoded at 1/2, 1/4 or 1/8
    scale (JPEG decodes directly at that scale). A GIF is a still: its first frame. EXIF
    rotation is applied.

    Raises:
        ImageError: naming the file when it is unreadable, of an unknown format, over the
            limit, without a decoder here (HEIC), or not decodable.
        InputError: for a ``max_pixels`` that is not a finite number of at least 1.
    """
    if not (math.isfinite(max_pixels) and max_pixels >= 1):
        raise InputError(f"max_pixels must be a finite number of at least 1, got {max_pixels}.")
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            start = handle.read(32)
            handle.seek(0)
            size = header_size(handle)
            if size is None:
                raise ImageError(
                    f"{shown(path)}: cannot read the image size from its header (corrupt, "
                    "truncated or not a PNG, JPEG, BMP, GIF, WebP, TIFF or AVIF file)."
                )
            width, height = size
            if width * height > max_pixels:
                raise ImageError(
                    f"{shown(path)}: refused, {width}×{height} px is over the device limit of "
                    f"{max_pixels:,.0f} pixels (raise --max-pixels, or downscale the image)."
                )
            _check_decoder(path, start)
            handle.seek(0)
            data = handle.read()
    except OSError as error:
        raise ImageError(f"{shown(path)}: cannot read ({error.strerror or error}).") from error
    reduction = next((r for r in (1, 2, 4, 8) if width * height <= REDUCED_PIXELS * r * r), 8)
    if reduction == 1:
        return Still(decode_image(data, shown(path)), size)
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[reduction])
    except cv2.error:
        bgr = None
    if bgr is None:
        raise ImageError(
            f"{shown(path)}: not a readable image (corrupt, truncated or not an image file)."
        )
    return Still(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size, reduction)


def _check_decoder(path: Path, start: bytes) -> None:
    """Refuses a HEIF still (HEIC, AVIF) that this OpenCV has no decoder for."""
    brand = heif_brand(start)
    if brand and not cv2.haveImageReader(str(path)):
        raise ImageError(
            f"{shown(path)}: a {brand} photo, and OpenCV {cv2.__version__} here has no {brand} "
            "decoder; convert it to JPEG or PNG."
        )


def media_kind(path: str | Path) -> str:
    """What a file holds, from its first bytes, never its name: ``"still"`` (JPEG, PNG, BMP,
    GIF, WebP, TIFF, HEIC, AVIF) or ``"video"`` (anything else; OpenCV's FFmpeg probes it).

    Raises:
        ImageError: naming the file when it cannot be read.
    """
    try:
        with open(path, "rb") as handle:
            start = handle.read(32)
    except OSError as error:
        raise ImageError(f"{shown(path)}: cannot read ({error.strerror or error}).") from error
    return "still" if _still_start(start) or heif_brand(start) else "video"


def _still_start(start: bytes) -> bool:
    return start.startswith(STILL_MAGIC) or (start[:4] == b"RIFF" and start[8:12] == b"WEBP")


def heif_brand(start: bytes) -> str | None:
    """``"HEIC"``, ``"AVIF"`` or ``"HEIF"`` for an ISO-BMFF ``ftyp`` naming a HEIF still brand
    (major or compatible), else ``None`` (an MP4 or MOV video)."""
    if start[4:8] != b"ftyp":
        return None
    size = int.from_bytes(start[:4], "big")
    brands = [start[8:12]] + [start[i : i + 4] for i in range(16, min(size, len(start)), 4)]
    kinds = [HEIF_BRANDS[brand] for brand in brands if brand in HEIF_BRANDS]
    return "AVIF" if "AVIF" in kinds else (kinds[0] if kinds else None)


def header_size(handle: BinaryIO) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG, JPEG, BMP, GIF, WebP, TIFF or HEIF (HEIC, AVIF) header,
    read without decoding; ``None`` when the header is not one of these or is damaged."""
    start = handle.read(32)
    try:
        if start[:6] in (b"GIF87a", b"GIF89a"):
            return _gif_size(handle)
        if heif_brand(start):
            return _heif_size(handle)
        if start.startswith(b"\x89PNG\r\n\x1a\n") and start[12:16] == b"IHDR":
            return _positive(*struct.unpack(">II", start[16:24]))
        if start.startswith(b"\xff\xd8"):
            handle.seek(2)
            return _jpeg_size(handle)
        if start.startswith(b"BM"):
            return _bmp_size(start)
        if start.startswith(b"RIFF") and start[8:12] == b"WEBP":
            return _webp_size(start)
        if start[:4] in (b"II*\0", b"MM\0*"):
            return _tiff_size(handle, "<" if start[:2] == b"II" else ">")
    except (struct.error, ValueError, OSError):
        return None
    return None


def _gif_size(handle: BinaryIO) -> tuple[int, int] | None:
    """The larger of the logical screen and the first frame: either may set the decoded size."""
    handle.seek(6)
    width, height, flags = struct.unpack("<HHB2x", handle.read(7))
    if flags & 0x80:  # a global colour table
        handle.seek(3 << ((flags & 7) + 1), 1)
    while True:
        block = handle.read(1)
        if block == b",":  # image descriptor
            _, _, frame_w, frame_h = struct.unpack("<HHHH", handle.read(8))
            return _positive(max(width, frame_w), max(height, frame_h))
        if block != b"!":  # an extension; anything else ends the walk
            return None
        handle.read(1)
        while (length := handle.read(1)) not in (b"", b"\0"):
            handle.seek(length[0], 1)
        if not length:
            return None


def _heif_size(handle: BinaryIO) -> tuple[int, int] | None:
    """The largest ``ispe`` (image spatial extents) box in the first 1 MiB."""
    handle.seek(0)
    data = handle.read(1 << 20)
    sizes = []
    at = data.find(b"ispe")
    while 0 <= at <= len(data) - 16:
        sizes.append(struct.unpack(">II", data[at + 8 : at + 16]))
        at = data.find(b"ispe", at + 4)
    return _positive(*max(sizes, key=lambda s: s[0] * s[1])) if sizes else None


def _positive(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if width > 0 and height > 0 else None


def _jpeg_size(handle: BinaryIO) -> tuple[int, int] | None:
    """Walks the JPEG segments to the first start-of-frame marker."""
    while True:
        byte = handle.read(1)
        if byte != b"\xff":
            return None
        marker = handle.read(1)
        while marker == b"\xff":  # fill bytes
            marker = handle.read(1)
        if not marker or marker in (b"\xd9", b"\xda"):  # end of image, start of scan
            return None
        if 0xD0 <= marker[0] <= 0xD8 or marker[0] == 0x01:  # markers without a length
            continue
        (length,) = struct.unpack(">H", handle.read(2))
        if length < 2:
            return None
        if 0xC0 <= marker[0] <= 0xCF and marker[0] not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">xHH", handle.read(5))
            return _positive(width, height)
        handle.seek(length - 2, 1)


def _bmp_size(start: bytes) -> tuple[int, int] | None:
    (header,) = struct.unpack("<I", start[14:18])
    if header == 12:  # BITMAPCOREHEADER
        return _positive(*struct.unpack("<HH", start[18:22]))
    width, height = struct.unpack("<ii", start[18:26])
    return _positive(width, abs(height))


def _webp_size(start: bytes) -> tuple[int, int] | None:
    chunk = start[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", start[26:30])
        return _positive(width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        (bits,) = struct.unpack("<I", start[21:25])
        return _positive((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        width = int.from_bytes(start[24:27], "little") + 1
        height = int.from_bytes(start[27:30], "little") + 1
        return _positive(width, height)
    return None


def _tiff_size(handle: BinaryIO, order: str) -> tuple[int, int] | None:
    """Width and length from the first image file directory."""
    handle.seek(4)
    (offset,) = struct.unpack(order + "I", handle.read(4))
    handle.seek(offset)
    (count,) = struct.unpack(order + "H", handle.read(2))
    found: dict[int, int] = {}
    for _ in range(count):
        tag, kind, _, value = struct.unpack(order + "HHI4s", handle.read(12))
        if tag in (256, 257) and kind in (3, 4):
            found[tag] = struct.unpack(order + ("H2x" if kind == 3 else "I"), value)[0]
    if 256 not in found or 257 not in found:
        return None
    return _positive(found[256], found[257])


def box_inside(box: Box, width: float, height: float) -> Box:
    """The part of the box ``(x, y, w, h)`` inside a ``width × height`` image (``w`` or ``h``
    is 0 when nothing of it is)."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x1, y1 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    return x0, y0, x1 - x0, y1 - y0


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
