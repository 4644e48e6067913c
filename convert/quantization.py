"""Quantization as one config object, applied to a TFLite converter in one place.

A table of modes drives validation: each mode names the input/output types it allows, and an
option a mode does not support is rejected by name with the valid choices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from affectlite.errors import InputError

log = logging.getLogger(__name__)

MIN_CALIBRATION_IMAGES = 16
"""Fewer representative images than this cannot give stable int8 ranges: refused."""
RECOMMENDED_CALIBRATION_IMAGES = 300
"""Below this many representative images a warning is logged."""


@dataclass(frozen=True)
class ModeSpec:
    """One conversion mode: what it does and which input/output types it accepts."""

    name: str
    io_types: tuple[str, ...]
    needs_representative: bool
    description: str


MODES: dict[str, ModeSpec] = {
    spec.name: spec
    for spec in (
        ModeSpec("float32", ("float32",), False, "no quantization (reference)"),
        ModeSpec("float16", ("float32",), False, "float16 weights, float compute"),
        ModeSpec("dynamic", ("float32",), False, "int8 weights, float activations"),
        ModeSpec(
            "int8",
            ("int8", "uint8", "float32"),
            True,
            "full-integer int8 weights and activations (calibrated)",
        ),
    )
}
FLOAT_LAYER_IO = ("int8", "float32")
"""Input/output types possible when some layers are kept in float (the debugger's path)."""


class CalibrationDataError(InputError):
    """The representative (calibration) data is empty, too small or mis-shaped."""


def check_representative(images: Any) -> np.ndarray:
    """Validates calibration images and returns them as an array ``(N, S, S, 3)``.

    Accepts ``uint8`` pixels (the device contract) or floats. Warns when there are fewer than
    :data:`RECOMMENDED_CALIBRATION_IMAGES` or when the pixels look scaled to 0..1, which the
    models (raw 0..255 input) would be calibrated wrongly for.

    Raises:
        CalibrationDataError: for an empty set, fewer than :data:`MIN_CALIBRATION_IMAGES`,
            a shape other than ``(N, S, S, 3)`` or a non-numeric dtype.
    """
    images = getattr(images, "images", images)
    if images is None:
        raise CalibrationDataError(
            "int8 needs representative images: pass --representative DIR (from `affectlite "
            "calibrate`) or --data PATH --format F to draw them from the training split."
        )
    images = np.asarray(images)
    if images.size == 0:
        raise CalibrationDataError(f"The representative set is empty (shape {images.shape}).")
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
        raise CalibrationDataError(
            f"Representative images must have shape (N, S, S, 3), got {images.shape}."
        )
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise CalibrationDataError(
            f"Representative images must be uint8 pixels (or float), got dtype {images.dtype}."
        )
    if len(images) < MIN_CALIBRATION_IMAGES:
        raise CalibrationDataError(
            f"Only {len(images)} representative images; int8 calibration needs at least "
            f"{MIN_CALIBRATION_IMAGES} (about {RECOMMENDED_CALIBRATION_IMAGES} recommended)."
        )
    if len(images) < RECOMMENDED_CALIBRATION_IMAGES:
        log.warning(
            "Only %d representative images; about %d give more reliable int8 ranges.",
            len(images),
            RECOMMENDED_CALIBRATION_IMAGES,
        )
    if float(images.max()) <= 1.0:
        log.warning(
            "Representative pixels lie in 0..%.3g: they look scaled to 0..1, but models take raw "
            "0..255 RGB. Calibrating on them will give wrong int8 ranges.",
            float(images.max()),
        )
    return images


def check_input_size(images: np.ndarray, input_size: int) -> None:
    """Raises :class:`CalibrationDataError` unless the images are ``input_size`` square."""
    if images.shape[1:3] != (input_size, input_size):
        raise CalibrationDataError(
            f"Representative images are {images.shape[1]}×{images.shape[2]} but the model takes "
            f"{input_size}×{input_size}; rebuild the set with --input-size {input_size}."
        )


def _choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise InputError(f"{what} {value!r} is not supported; choose from {', '.join(choices)}.")
    return value


def check_options(mode: str, io: str | None = None, float_layers: tuple[str, ...] = ()) -> str:
    """Validates a mode and its options against :data:`MODES`; returns the io type to use
    (the mode's first when ``io`` is None).

    Raises:
        ValueError: naming the option a mode does not support and the valid choices.
    """
    spec = MODES.get(mode)
    if spec is None:
        raise InputError(f"Unknown mode {mode!r}; choose from {', '.join(MODES)}.")
    io = _choice(io or spec.io_types[0], spec.io_types, f"--io for mode {mode}:")
    if float_layers:
        if mode != "int8":
            raise InputError(f"--float-layers applies to mode int8 only, not {mode}.")
        _choice(io, FLOAT_LAYER_IO, "--io together with --float-layers:")
    return io


@dataclass(frozen=True)
class QuantizationConfig:
    """How to quantize: a mode, its input/output type and, for int8, calibration data.

    Build it with the named constructors rather than directly.

    Attributes:
        mode: a key of :data:`MODES`.
        io: input/output tensor type of the converted model.
        representative: calibration images ``(N, S, S, 3)`` (int8 only).
        float_layers: layer names kept in float (int8 only; see ``converter.convert_model``).
    """

    mode: str
    io: str = "float32"
    representative: np.ndarray | None = field(default=None, repr=False, compare=False)
    float_layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "float_layers", tuple(self.float_layers))
        check_options(self.mode, self.io, self.float_layers)
        representative = getattr(self.representative, "images", self.representative)
        if MODES[self.mode].needs_representative:
            object.__setattr__(self, "representative", check_representative(representative))
        elif representative is not None:
            raise InputError(f"Mode {self.mode} takes no representative data; only int8 does.")

    @classmethod
    def for_float32(cls) -> QuantizationConfig:
        return cls("float32")

    @classmethod
    def for_float16(cls) -> QuantizationConfig:
        return cls("float16")

    @classmethod
    def for_int8(
        cls, representative: Any, io: str = "int8", float_layers: tuple[str, ...] = ()
    ) -> QuantizationConfig:
        """Full-integer int8 calibrated on ``representative`` (a ``RepresentativeSet`` or array)."""
        return cls("int8", io, representative, tuple(float_layers))

    @classmethod
    def from_options(
        cls,
        mode: str,
        io: str | None = None,
        representative: Any = None,
        float_layers: tuple[str, ...] = (),
    ) -> QuantizationConfig:
        """Builds a config from CLI options; ``io=None`` takes the mode's first io type."""
        io = check_options(mode, io, tuple(float_layers))
        return cls(mode, io, representative, tuple(float_layers))

    def representative_dataset(self):
        """The converter's calibration generator: one float32 image per step."""
        images = self.representative

        def generate():
            for image in images:
                yield [np.asarray(image, np.float32)[None]]

        return generate

    def apply(self, converter) -> None:
        """Sets ``converter``'s optimizations, op sets, types and calibration for this mode.

        Only TFLite builtin ops are allowed, so no op silently becomes a Flex (TensorFlow) op.
        """
        import tensorflow as tf

        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if self.mode == "float32":
            return
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if self.mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif self.mode == "int8":
            converter.representative_dataset = self.representative_dataset()
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            io_type = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[self.io]
            converter.inference_input_type = io_type
            converter.inference_output_type = io_type

    def summary(self) -> dict[str, Any]:
        """The config as JSON-ready data (without the images)."""
        data = {"mode": self.mode, "io": self.io, "description": MODES[self.mode].description}
        if self.representative is not None:
            data["representative_images"] = int(len(self.representative))
        if self.float_layers:
            data["float_layers"] = list(self.float_layers)
        return data
