"""Property tests: the shared preprocessing never fails with anything but ImageError/ValueError.

Whatever array, dtype, box or bytes reach ``to_rgb``, ``crop_face`` or ``decode_image`` (a
corrupt dataset row, a detector glitch, a truncated download), they either return a valid
``uint8`` RGB image or raise ``ImageError``/``ValueError`` that training and the device can
catch and count. OpenCV errors, ``OverflowError`` or out-of-memory failures are bugs.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from affectlite.edge_app.preprocess import CropPolicy, ImageError, crop_face, decode_image, to_rgb
from affectlite.train.datasets import MIN_FACE_SIDE, Sample, load_image

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DTYPES = st.sampled_from(
    [
        np.uint8,
        np.uint16,
        np.int8,
        np.int32,
        np.int64,
        np.float16,
        np.float32,
        np.float64,
        np.bool_,
        np.complex64,
    ]
)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12)
ARRAYS = DTYPES.flatmap(lambda dtype: hnp.arrays(dtype, SHAPES))
FACE_ARRAYS = DTYPES.flatmap(
    lambda dtype: hnp.arrays(
        dtype,
        st.tuples(
            st.integers(0, 40), st.integers(0, 40), st.sampled_from([(), (1,), (2,), (3,), (4,)])
        ).map(lambda t: t[:2] + t[2]),
    )
)
COORDS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-100, 100),
    st.integers(-100, 100),
    st.floats(1e6, 1e308),
)
BOXES = st.one_of(st.none(), st.tuples(COORDS, COORDS, COORDS, COORDS))
POLICIES = st.builds(
    CropPolicy, margin=st.floats(0, 2), square=st.booleans(), pad_value=st.integers(0, 255)
)


def _check_rgb(image: np.ndarray, shape: tuple[int, ...] | None = None) -> None:
    assert isinstance(image, np.ndarray)
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3
    if shape is not None:
        assert image.shape == shape


@FUZZ
@given(ARRAYS)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_to_rgb_returns_uint8_rgb_or_raises_value_error(image):
    try:
        result = to_rgb(image)
    except ValueError:  # ImageError is a ValueError
        return
    _check_rgb(result)
    assert result.shape[:2] == (image.shape[0], image.shape[1])


@FUZZ
@given(FACE_ARRAYS, BOXES, st.integers(1, 48), POLICIES)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_crop_face_returns_size_square_or_raises_value_error(image, box, size, policy):
    try:
        result = crop_face(image, box, size, policy)
    except ValueError:
        return
    _check_rgb(result, (size, size, 3))


def _encoded(format_: str, image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(format_, image)
    assert ok
    return data.tobytes()


ENCODED = st.builds(
    _encoded,
    st.sampled_from([".png", ".jpg", ".bmp", ".webp", ".tiff"]),
    hnp.arrays(
        np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24), st.sampled_from([1, 3]))
    ),
)


def _mutate(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    buffer = bytearray(data[: max(cut, 0) or len(data)])
    for position, value in flips:
        if buffer:
            buffer[position % len(buffer)] = value
    return bytes(buffer)


CORRUPT = st.builds(
    _mutate,
    ENCODED,
    st.integers(0, 400),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
)


@FUZZ
@given(st.one_of(st.binary(max_size=256), ENCODED, CORRUPT))
def test_decode_image_returns_rgb_or_raises_image_error(data):
    try:
        result = decode_image(data, "fuzz.bin")
    except ValueError as error:
        assert "fuzz.bin" in str(error)
        return
    _check_rgb(result)


@FUZZ
@given(st.one_of(st.binary(max_size=256), ENCODED, CORRUPT))
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on corrupt TIFF tags
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_load_image_on_corrupt_files_returns_rgb_or_raises_image_error(tmp_path_factory, data):
    """The training loader adds a header check (Pillow) before OpenCV; it must hold up too."""
    path = tmp_path_factory.mktemp("fuzz") / "face.img"
    path.write_bytes(data)
    try:
        image = load_image(Sample("face.img", 0, str(path)))
    except ImageError as error:
        assert str(path) in str(error)
        return
    _check_rgb(image)
    assert min(image.shape[:2]) >= MIN_FACE_SIDE


def test_decode_image_turns_opencv_header_assertions_into_image_error():
    """Found by the fuzz test: a BMP header with a huge width made OpenCV raise cv2.error."""
    bmp = b"BM" + bytes(15) + b"\x01" + bytes(3) + b"\x01\x01" + bytes(5) + b"\x18" + bytes(21)
    with pytest.raises(ImageError, match="bad.bmp: not a readable image"):
        decode_image(bmp, "bad.bmp")
