"""Keras model → TFLite through a SavedModel export, with int8 debugging and selective float layers.

Keras 3 converts most reliably through ``model.export(dir)`` (a SavedModel serving signature)
and ``tf.lite.TFLiteConverter.from_saved_model``. Only TFLite builtin ops are allowed, so a layer
that needs TensorFlow (Flex) ops fails conversion with the op's name instead of producing a
model that LiteRT on the device cannot run.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.runtime import load_interpreter
from affectlite.errors import AffectliteError, InputError
from affectlite.files import write_bytes
from affectlite.quiet import native_stderr

from .quantization import QuantizationConfig, check_input_size

log = logging.getLogger(__name__)

TFLITE_FILE = "classifier.tflite"
_UNSUPPORTED_OP = re.compile(r"""'tf\.(\w+)' op is neither a custom op nor a flex op""")
_OP_LOCATION = re.compile(r'fused\["(\w+):", "([^"@]+)@')


class ConversionError(AffectliteError, RuntimeError):
    """The model could not be converted to a TFLite model the device can run."""


class UnknownLayerError(InputError):
    """A ``--float-layers`` name matches no quantized layer."""


LEGACY_H5_REFUSED = (
    "legacy HDF5 (.h5) model file refused: loading one can run code it carries. Re-save the "
    "model as .keras where it was trained, or pass --allow-legacy-h5 if you trust this file."
)


def load_keras_model(path: str | Path, allow_legacy_h5: bool = False):
    """Loads a ``.keras`` model in Keras's safe mode (the kit's custom layers registered first).

    Args:
        path: the ``.keras`` file (or ``.h5``, with ``allow_legacy_h5``).
        allow_legacy_h5: accept a legacy HDF5 model file.

    Raises:
        FileNotFoundError: naming the path when it does not exist.
        InputError: (a ValueError) for a ``.h5`` file without ``allow_legacy_h5``.
        ValueError: when the file is not a loadable Keras model.
    """
    import keras

    import affectlite.train.model  # noqa: F401  (registers CaffePreprocess for deserialisation)

    path = Path(path)
    if not path.is_file():
        raise InputError(f"Model not found: {path} (expected a .keras file from training).")
    if path.suffix not in (".keras", ".h5"):
        raise InputError(f"{path}: expected a Keras model file ending in .keras (or .h5).")
    if path.suffix == ".h5" and not allow_legacy_h5:
        raise InputError(f"{path}: {LEGACY_H5_REFUSED}")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, OSError or zipfile errors.
        raise InputError(f"{path}: not a loadable Keras model ({error}).") from error


def model_input_size(model) -> int:
    """The square input side of an image model taking ``(N, S, S, 3)``."""
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2] or shape[1] is None:
        raise InputError(f"Expected a model input of shape (N, S, S, 3), got {shape}.")
    return int(shape[1])


def check_model(model, labels: tuple[str, ...] = LABELS) -> int:
    """Checks input and output shapes against the label set; returns the input size.

    Raises:
        ValueError: when the model's output count differs from ``len(labels)``.
    """
    size = model_input_size(model)
    outputs = tuple(model.output_shape)
    if outputs[-1] != len(labels):
        raise InputError(
            f"Model {model.name!r} outputs {outputs[-1]} classes but the label set has "
            f"{len(labels)} ({', '.join(labels)}); convert a model trained on these labels."
        )
    return size


def _converter(model, workdir: Path, config: QuantizationConfig):
    import tensorflow as tf

    saved_model = workdir / "saved_model"
    model.export(str(saved_model), format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    config.apply(converter)
    return converter


def _explain(error: Exception) -> str:
    text = str(error)
    ops = sorted(set(_UNSUPPORTED_OP.findall(text)))
    if not ops:
        return f"TFLite conversion failed: {text.strip()[:2000]}"
    where = {op: node for op, node in _OP_LOCATION.findall(text) if op in ops}
    named = ", ".join(f"{op} (at {where[op]})" if op in where else op for op in ops)
    return (
        f"TFLite conversion failed: the model uses TensorFlow ops with no TFLite builtin kernel: "
        f"{named}. Flex (select TF) ops are refused because LiteRT on the device cannot run "
        "them; replace the layer that uses them with builtin-friendly operations."
    )


def convert_model(model, config: QuantizationConfig, workdir: str | Path) -> Path:
    """Converts a Keras model and writes ``workdir/classifier.tflite`` atomically.

    Args:
        model: a Keras model taking RGB 0..255 and returning logits.
        config: the quantization to apply.
        workdir: a folder for the SavedModel export and the ``.tflite``.

    Returns:
        The ``.tflite`` path.

    Raises:
        ConversionError: naming any op that has no TFLite builtin kernel, or the converter's
            own message.
        CalibrationDataError: if the representative images do not fit the model's input.
    """
    workdir = Path(workdir)
    if config.representative is not None:
        check_input_size(config.representative, model_input_size(model))
    start = time.perf_counter()
    try:
        with native_stderr():  # the converter prints "fully_quantize: 0, …" on fd 2
            converter = _converter(model, workdir, config)
            if config.float_layers:
                data = _selectively_quantized(converter, config, _output_layer(model))
            else:
                data = converter.convert()
    except (ConversionError, UnknownLayerError):
        raise
    except Exception as error:  # The converter raises ConverterError, ValueError, RuntimeError.
        raise ConversionError(_explain(error)) from error
    path = write_bytes(workdir / TFLITE_FILE, data)
    log.info(
        "Converted (%s, io %s) in %.1f s: %s, %.2f MB",
        config.mode,
        config.io,
        time.perf_counter() - start,
        path,
        path.stat().st_size / 1e6,
    )
    return path


@dataclass(frozen=True)
class LayerError:
    """Quantization error of one quantized tensor, from the quantization debugger.

    ``rmse_over_scale`` is the root-mean-square error in units of the tensor's quantization
    step: about 0.29 (``1/sqrt(12)``) is ideal rounding noise; much more flags a layer whose
    range or distribution int8 represents badly.
    """

    tensor: str
    op: str
    rmse_over_scale: float
    mean_error: float
    max_abs_error: float
    scale: float
    layer: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _debug_options(config: QuantizationConfig, float_nodes: list[str] | None = None):
    import tensorflow as tf

    return tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=float_nodes or None, fully_quantize=config.io != "float32"
    )


def _debugger(converter, config: QuantizationConfig):
    import tensorflow as tf

    return tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=config.representative_dataset(),
        debug_options=_debug_options(config),
    )


def _restore_name(name: str, names: set[str]) -> str:
    if name in names:
        return name
    restored = [
        n for n in names if len(n) == len(name) + 1 and n.startswith(name) and n[-1].isdigit()
    ]
    return restored[0] if len(restored) == 1 else name


def _output_layer(model) -> str:
    """The Keras name of a single-output model's last layer: export names its tensor only
    ``StatefulPartitionedCall…:0``, so the debugger lists it under this name instead."""
    return model.layers[-1].name if len(model.outputs) == 1 else ""


def _layer_errors(debugger, output_layer: str = "") -> list[LayerError]:
    debugger.run()
    table = io.StringIO()
    debugger.layer_statistics_dump(table)
    table.seek(0)
    # The dump strips one trailing digit from every tensor name (meant for a suffix the debug
    # model adds), which also mangles names that end in a digit ("…:0" → "…:"). Names are
    # restored from the plain quantized model, whose names --float-layers must match.
    interpreter, _ = load_interpreter(debugger.get_nondebug_quantized_model(), num_threads=1)
    names = {detail["name"] for detail in interpreter.get_tensor_details()}
    outputs = {detail["name"] for detail in interpreter.get_output_details()}
    rows = []
    for row in csv.DictReader(table):
        scale = float(row["scale"])
        rmse = float(np.sqrt(float(row["mean_squared_error"])))
        rows.append(
            LayerError(
                tensor=_restore_name(row["tensor_name"], names),
                op=row["op_name"],
                rmse_over_scale=rmse / scale if scale > 0 else float("inf"),
                mean_error=float(row["mean_error"]),
                max_abs_error=float(row["max_abs_error"]),
                scale=scale,
            )
        )
    tensors = [row.tensor for row in rows]
    rows = [
        replace(
            row,
            layer=output_layer
            if output_layer and row.tensor in outputs
            else _layer_name(row.tensor, tensors),
        )
        for row in rows
    ]
    return sorted(rows, key=lambda row: row.rmse_over_scale, reverse=True)


def _layer_name(tensor: str, tensors: list[str]) -> str:
    """A short name that ``--float-layers`` resolves to ``tensor`` alone: the Keras layer
    that produced it (``conv2_block1_0_conv``), else the tensor name itself."""
    path = tensor.split(";")[-1].split("/")
    for name in (re.sub(r"_\d+$", "", path[-2]), path[-2]) if len(path) > 1 else ():
        if resolve_layers((name,), tensors) == [tensor]:
            return name
    return tensor


def quantization_errors(model, config: QuantizationConfig, workdir: str | Path) -> list[LayerError]:
    """Per-layer int8 error of ``model`` under ``config`` (worst first), on its calibration data.

    Uses ``tf.lite.experimental.QuantizationDebugger``, which runs float and quantized versions of
    every layer side by side on the representative images.
    """
    if config.mode != "int8":
        raise InputError(f"Per-layer quantization error applies to mode int8, not {config.mode}.")
    start = time.perf_counter()
    with native_stderr():
        debugger = _debugger(_converter(model, Path(workdir), config), config)
        errors = _layer_errors(debugger, _output_layer(model))
    log.info("Quantization debugger: %d layers in %.1f s", len(errors), time.perf_counter() - start)
    return errors


def resolve_layers(
    names: tuple[str, ...], tensors: list[str], aliases: dict[str, str] | None = None
) -> list[str]:
    """Maps user layer names to the converted model's tensor names.

    A name matches a tensor when it equals the full tensor name (as the debugger lists it), one
    of its ``/``- or ``;``-separated parts (ignoring the ``_1`` suffix that export adds), or an
    alias (the output layer's Keras name).

    Raises:
        UnknownLayerError: naming a layer that matches no tensor, with examples of valid names.
    """
    resolved = []
    for name in names:
        pattern = re.compile(rf"{re.escape(name)}(_\d+)?")
        hits = [
            tensor
            for tensor in tensors
            if tensor == name
            or (aliases or {}).get(name) == tensor
            or any(pattern.fullmatch(part) for part in re.split(r"[/;]", tensor))
        ]
        if not hits:
            examples = ", ".join(tensors[:5])
            raise UnknownLayerError(
                f"--float-layers {name!r} matches no quantized layer; run with --debug to list "
                f"them (e.g. {examples})."
            )
        resolved.extend(hit for hit in hits if hit not in resolved)
    return resolved


def _selectively_quantized(converter, config: QuantizationConfig, output_layer: str) -> bytes:
    debugger = _debugger(converter, config)
    errors = _layer_errors(debugger, output_layer)
    aliases = {error.layer: error.tensor for error in errors}
    nodes = resolve_layers(config.float_layers, [error.tensor for error in errors], aliases)
    log.info("Keeping %d tensors in float: %s", len(nodes), "; ".join(nodes))
    debugger.options = _debug_options(config, nodes)
    return debugger.get_nondebug_quantized_model()
