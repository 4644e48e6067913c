"""The emotion classifier on the device: a bundle's ``.tflite`` run through LiteRT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from affectlite.errors import InputError

from .bundle import Bundle
from .labels import LABELS
from .runtime import RuntimeInfo, load_interpreter

TIE_STEP = 1e-5
"""Logit offset per place in a bundle's tie-break order: far below an int8 output step (~0.01-0.1),
so it reorders exact ties only, and far below anything a softmax probability shows."""


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float32."""
    scaled = np.asarray(logits, dtype=np.float32) / np.float32(temperature)
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def quantize(values: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    """``values`` in an input tensor's dtype, by its scale and zero point (``details``: the
    interpreter's input details)."""
    dtype = np.dtype(details["dtype"])
    if dtype == np.float32:
        return values.astype(np.float32)
    scale, zero_point = details["quantization"]
    if dtype == np.uint8 and scale == 1.0 and zero_point == 0:
        return values.astype(np.uint8)
    info = np.iinfo(dtype)
    scaled = np.round(values.astype(np.float32) / (scale or 1.0) + zero_point)
    return np.clip(scaled, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    """An output tensor's ``values`` in float32 (``details``: its output details)."""
    if values.dtype == np.float32:
        return values
    scale, zero_point = details["quantization"]
    return (values.astype(np.float32) - zero_point) * np.float32(scale)


def _tie_offsets(labels: tuple[str, ...], tie_break: tuple[str, ...] | None) -> np.ndarray:
    """Per-class logit offsets that make the first label of ``tie_break`` win an exact tie.

    int8 logits come in steps of the output scale, so two classes often tie exactly, and an
    argmax then always picks the lower index (neutral before contempt). Without ``tie_break``
    that index order stays.
    """
    if not tie_break:
        return np.zeros(len(labels), np.float32)
    if sorted(tie_break) != sorted(labels):
        raise InputError(f"tie_break {list(tie_break)} must list the labels {list(labels)} once.")
    rank = {label: place for place, label in enumerate(tie_break)}
    return np.array([(len(labels) - 1 - rank[label]) * TIE_STEP for label in labels], np.float32)


class EmotionClassifier:
    """Classifies ``uint8`` RGB face crops; handles int8/uint8 quantisation and batching.

    Build it once and reuse it: creating an interpreter costs far more than one inference.
    """

    def __init__(
        self,
        model_path: str | Path | bytes,
        labels: tuple[str, ...] = LABELS,
        temperature: float = 1.0,
        num_threads: int | None = None,
        tie_break: tuple[str, ...] | None = None,
    ) -> None:
        self.interpreter, self.runtime = load_interpreter(model_path, num_threads)
        self.labels = tuple(labels)
        self.temperature = float(temperature)
        self._tie_offsets = _tie_offsets(self.labels, tie_break)
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.input_size = int(self._input["shape"][1])
        self.batch_size = int(self._input["shape"][0])
        classes = int(self._output["shape"][-1])
        if classes != len(self.labels):
            raise InputError(
                f"Model has {classes} outputs but {len(self.labels)} labels were given."
            )

    @classmethod
    def from_bundle(cls, bundle: Bundle, num_threads: int | None = None) -> EmotionClassifier:
        """Builds the classifier of a verified bundle with its labels, temperature and
        tie-break order."""
        model = bundle.model_bytes("classifier")  # the verified bytes, never the path again
        return cls(model, bundle.labels, bundle.temperature, num_threads, bundle.tie_break)

    @property
    def runtime_info(self) -> RuntimeInfo:
        return self.runtime

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    def logits(self, crops: np.ndarray) -> np.ndarray:
        """Dequantised logits for a batch of crops of shape ``(N, S, S, 3)``, with exact ties
        ordered by the tie-break (see :func:`_tie_offsets`)."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        expected = (self.input_size, self.input_size, 3)
        if crops.ndim != 4 or crops.shape[1:] != expected:
            raise ValueError(f"Expected crops of shape (N, {expected}), got {crops.shape}.")
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        self._ensure_batch(len(crops))
        self.interpreter.set_tensor(self._input["index"], quantize(crops, self._input))
        self.interpreter.invoke()
        logits = dequantize(self.interpreter.get_tensor(self._output["index"]), self._output)
        return logits + self._tie_offsets

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, C)`` after the bundle's temperature."""
        return softmax(self.logits(crops), self.temperature)

    def _ensure_batch(self, n: int) -> None:
        if n == self.batch_size:
            return
        self.interpreter.resize_tensor_input(
            self._input["index"], [n, self.input_size, self.input_size, 3]
        )
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.batch_size = n
