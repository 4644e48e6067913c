"""Android only: the LiteRT Java interpreter through pyjnius, and the runtime CAMERA permission.

On Android there is no ``ai_edge_litert`` wheel, so models run on LiteRT's Java
``org.tensorflow.lite.Interpreter`` from the Maven artefact ``com.google.ai.edge.litert:litert``
(1.4.x; ``android.gradle_dependencies`` in ``buildozer.spec``). :class:`Interpreter` wraps it in
the subset of the Python ``Interpreter`` API that :class:`~.classifier.EmotionClassifier` and
:class:`~.detector.FaceDetector` use, so ``runtime.load_interpreter`` can hand it to them and the
classifier keeps its ``logits``/``predict`` calls, int8 quantisation and batching unchanged.

This module imports ``jnius`` and python-for-android's ``android`` package at the top, so it
raises ``ImportError`` anywhere but on Android; ``runtime`` relies on that to skip it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Both exist only inside a python-for-android build; elsewhere this import fails on purpose.
from android.permissions import Permission, check_permission, request_permissions
from jnius import JavaException, autoclass

LITERT_ARTEFACT = "com.google.ai.edge.litert:litert:1.4.1"
_DTYPES = {
    "FLOAT32": np.float32,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
}


def request_camera_permission(on_result: Callable[[bool], None]) -> None:
    """Asks the user for the CAMERA permission (needed at runtime since Android 6).

    ``on_result(granted)`` is called at once when the permission is already held, else from
    Android's thread when the user answers: schedule UI work from it with Kivy's ``Clock``.
    """
    if check_permission(Permission.CAMERA):
        on_result(True)
        return

    def answered(permissions: list[str], grants: list[bool]) -> None:
        on_result(bool(grants) and all(grants))

    request_permissions([Permission.CAMERA], answered)


class _Java:
    """The Java classes used here, loaded once."""

    def __init__(self) -> None:
        try:
            self.Interpreter = autoclass("org.tensorflow.lite.Interpreter")
            self.Options = autoclass("org.tensorflow.lite.Interpreter$Options")
        except JavaException as error:
            raise RuntimeError(
                "org.tensorflow.lite.Interpreter is not in this APK: add "
                f"{LITERT_ARTEFACT} to android.gradle_dependencies in buildozer.spec."
            ) from error
        self.File = autoclass("java.io.File")
        self.ByteBuffer = autoclass("java.nio.ByteBuffer")
        self.ByteOrder = autoclass("java.nio.ByteOrder")
        self.HashMap = autoclass("java.util.HashMap")
        self.Integer = autoclass("java.lang.Integer")


class Interpreter:
    """LiteRT's Java interpreter behind the Python ``Interpreter`` calls affectlite makes.

    Tensor indices follow the Python API's convention of one index space: inputs are
    ``0..n_in-1`` and outputs ``n_in..n_in+n_out-1``. Data crosses JNI as raw bytes in the
    device's native byte order, through heap ``ByteBuffer`` objects that LiteRT copies from and
    into.

    Args:
        model_path: the ``.tflite`` file.
        model_content: the model's bytes, instead of a path.
        num_threads: CPU threads for the interpreter.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        model_content: bytes | None = None,
        num_threads: int | None = None,
    ) -> None:
        self._java = _Java()
        options = self._java.Options()
        if num_threads:
            options.setNumThreads(int(num_threads))
        if model_content is not None:
            model = self._java.ByteBuffer.allocateDirect(len(model_content))
            model.order(self._java.ByteOrder.nativeOrder())
            model.put(bytes(model_content))
            model.rewind()
        elif model_path is not None:
            model = self._java.File(str(model_path))
        else:
            raise ValueError("Pass model_path or model_content.")
        try:
            self._interpreter = self._java.Interpreter(model, options)
        except JavaException as error:
            name = model_path or "the model"
            raise ValueError(f"LiteRT (Java) cannot load {name}: {error}") from error
        self._n_in = int(self._interpreter.getInputTensorCount())
        self._n_out = int(self._interpreter.getOutputTensorCount())
        self._inputs: dict[int, np.ndarray] = {}
        self._outputs: dict[int, np.ndarray] = {}

    def allocate_tensors(self) -> None:
        self._interpreter.allocateTensors()

    def _details(self, tensor: Any, index: int) -> dict[str, Any]:
        quantization = tensor.quantizationParams()
        return {
            "name": str(tensor.name()),
            "index": index,
            "shape": np.array(list(tensor.shape()), dtype=np.int32),
            "dtype": _DTYPES[str(tensor.dataType().name())],
            "quantization": (float(quantization.getScale()), int(quantization.getZeroPoint())),
        }

    def get_input_details(self) -> list[dict[str, Any]]:
        get = self._interpreter.getInputTensor
        return [self._details(get(i), i) for i in range(self._n_in)]

    def get_output_details(self) -> list[dict[str, Any]]:
        get = self._interpreter.getOutputTensor
        return [self._details(get(j), self._n_in + j) for j in range(self._n_out)]

    def resize_tensor_input(self, index: int, shape: Any) -> None:
        self._interpreter.resizeInput(int(index), [int(v) for v in shape])

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        if not 0 <= index < self._n_in:
            raise ValueError(f"Tensor {index} is not an input (inputs are 0..{self._n_in - 1}).")
        details = self.get_input_details()[index]
        value = np.asarray(value)
        if value.dtype != details["dtype"] or tuple(value.shape) != tuple(details["shape"]):
            raise ValueError(
                f"Input {index} needs {np.dtype(details['dtype']).name} "
                f"{tuple(details['shape'])}, got {value.dtype} {value.shape}."
            )
        self._inputs[index] = np.ascontiguousarray(value)

    def invoke(self) -> None:
        missing = [i for i in range(self._n_in) if i not in self._inputs]
        if missing:
            raise ValueError(f"set_tensor was not called for input(s) {missing}.")
        java = self._java
        inputs = [java.ByteBuffer.wrap(self._inputs[i].tobytes()) for i in range(self._n_in)]
        outputs, buffers = java.HashMap(), []
        for j in range(self._n_out):
            buffer = java.ByteBuffer.allocate(int(self._interpreter.getOutputTensor(j).numBytes()))
            buffer.order(java.ByteOrder.nativeOrder())
            outputs.put(java.Integer.valueOf(j), buffer)
            buffers.append(buffer)
        self._interpreter.runForMultipleInputsOutputs(inputs, outputs)
        for j, buffer in enumerate(buffers):
            details = self.get_output_details()[j]
            data = np.frombuffer(buffer.array().tostring(), dtype=details["dtype"])
            self._outputs[self._n_in + j] = data.reshape(details["shape"]).copy()

    def get_tensor(self, index: int) -> np.ndarray:
        if index not in self._outputs:
            raise ValueError(f"No output {index} yet: call invoke() first.")
        return self._outputs[index].copy()

    def close(self) -> None:
        self._interpreter.close()
