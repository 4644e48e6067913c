"""How much arithmetic a ``.tflite`` model does, and how much this machine can do.

**MAC count.** The model is loaded into LiteRT, tensors are allocated (batch 1 unless the
model fixes another), and every operator of the main graph is read with the interpreter's
``_get_ops_details()`` and the tensor shapes with ``_get_tensor_details()``. Multiply-
accumulates are counted for the operators that hold nearly all of a CNN's arithmetic:

==================  ==========================================================================
CONV_2D             output elements × kernel height × kernel width × input channels
DEPTHWISE_CONV_2D   output elements × kernel height × kernel width
TRANSPOSE_CONV      input elements × kernel height × kernel width × output channels
FULLY_CONNECTED     output elements × input features (weights ``(units, features)``)
BATCH_MATMUL        output elements × the shared dimension
CONV_3D             output elements × kernel depth × height × width × input channels
==================  ==========================================================================

Everything else (ADD, MEAN, pooling, activations, DEQUANTIZE, …) is listed by count but
adds no MACs; for ResNet-style models that leaves out well under 1 % of the work. Padding and
stride are already in the output shape, so no separate arithmetic is needed for them.

**Peak probes.** A single ``FULLY_CONNECTED`` model (``M×K`` input, ``N×K`` weights) is
written in memory with LiteRT's flatbuffer schema and run by the same runtime with the same
thread count as the classifier, in float32 and in int8; the best of repeated invocations
gives the MAC/s this runtime reaches on a dense GEMM here. A NumPy float32 matrix product
(``M=K=N``, BLAS with its own threading) is measured beside it as an independent reference.
A GEMM is what convolutions become inside the runtime, so it is a practical ceiling, not the
silicon's theoretical peak; depthwise convolutions cannot reach it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectlite.edge_app.runtime import load_interpreter

MAC_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "TRANSPOSE_CONV",
    "FULLY_CONNECTED",
    "BATCH_MATMUL",
    "CONV_3D",
)
_QUANTIZED = {np.dtype(np.int8): "int8", np.dtype(np.uint8): "int8", np.dtype(np.int16): "int16"}


@dataclass
class ModelMacs:
    """Arithmetic of one model at its allocated input shape.

    Attributes:
        macs: multiply-accumulates per invocation.
        by_op: MACs per operator type.
        compute_dtype: dtype of the inputs of the MAC operators, weighted by MACs
            (``"int8"``, ``"int16"`` or ``"float32"``; float16 weights are dequantized to
            float32 by the model's DEQUANTIZE ops).
        input_shape: the first input's shape the count was made for.
        ops: number of operators of each type in the graph.
    """

    macs: int
    by_op: dict[str, int]
    compute_dtype: str
    input_shape: list[int]
    ops: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shape(interpreter: Any, index: int) -> tuple[int, ...]:
    return tuple(int(v) for v in interpreter._get_tensor_details(int(index), 0)["shape"])


def op_macs(op: str, inputs: list[tuple[int, ...]], output: tuple[int, ...]) -> int:
    """MACs of one operator from its input and output shapes (0 for non-MAC operators).

    ``inputs`` are in TFLite order: data, weights, (bias); TRANSPOSE_CONV has the output
    shape tensor first, then weights, then data.
    """
    out = int(np.prod(output)) if output else 0
    if op == "CONV_2D":
        _, kh, kw, cin = inputs[1]
        return out * kh * kw * cin
    if op == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = inputs[1]
        return out * kh * kw
    if op == "CONV_3D":
        kd, kh, kw, cin, _ = inputs[1]
        return out * kd * kh * kw * cin
    if op == "TRANSPOSE_CONV":
        cout, kh, kw, _ = inputs[1]
        return int(np.prod(inputs[2])) * kh * kw * cout
    if op == "FULLY_CONNECTED":
        return out * inputs[1][-1]
    if op == "BATCH_MATMUL":
        a = inputs[0]
        shared = a[-1] if a[-2] == output[-2] else a[-2]  # adj_x transposes A
        return out * shared
    return 0


def count_macs(model: str | Path | bytes) -> ModelMacs:
    """Counts a model's multiply-accumulates (see the module docstring for the method)."""
    interpreter, _ = load_interpreter(model, num_threads=1)
    by_op: Counter[str] = Counter()
    by_dtype: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        if name == "DELEGATE":  # The delegate's node; its original ops are listed too.
            continue
        ops[name] += 1
        if name not in MAC_OPS:
            continue
        inputs = [_shape(interpreter, i) if i >= 0 else () for i in op["inputs"]]
        macs = op_macs(name, inputs, _shape(interpreter, op["outputs"][0]))
        by_op[name] += macs
        data_dtype = np.dtype(op["operand_types"][2 if name == "TRANSPOSE_CONV" else 0])
        by_dtype[_QUANTIZED.get(data_dtype, "float32")] += macs
    first_input = interpreter.get_input_details()[0]
    return ModelMacs(
        macs=int(sum(by_op.values())),
        by_op=dict(by_op),
        compute_dtype=by_dtype.most_common(1)[0][0] if by_dtype else "float32",
        input_shape=[int(v) for v in first_input["shape"]],
        ops=dict(sorted(ops.items())),
    )


@dataclass
class Probe:
    """One peak measurement.

    Attributes:
        name: ``litert-fc-float32``, ``litert-fc-int8`` or ``numpy-matmul-float32``.
        dtype: arithmetic type.
        threads: interpreter threads (``None`` for NumPy: BLAS picks its own).
        shape: ``[M, K, N]`` of the product.
        best_ms: fastest invocation.
        macs_per_s: ``M·K·N / best``.
        runtime: who ran it.
    """

    name: str
    dtype: str
    threads: int | None
    shape: list[int]
    best_ms: float
    macs_per_s: float
    runtime: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _best_seconds(call, repeats: int, budget_s: float) -> float:
    call()  # first call pays one-off costs (weight packing, page faults)
    best, deadline = float("inf"), time.perf_counter() + budget_s
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return best


def numpy_matmul_probe(n: int = 512, repeats: int = 20, budget_s: float = 1.0) -> Probe:
    """Float32 ``n×n @ n×n`` through NumPy's BLAS: best-of ``repeats`` MAC/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    best = _best_seconds(lambda: a @ b, repeats, budget_s)
    return Probe(
        "numpy-matmul-float32",
        "float32",
        None,
        [n, n, n],
        best * 1e3,
        n**3 / best,
        f"numpy {np.__version__}",
    )


def fully_connected_model(m: int, k: int, n: int, dtype: str = "float32") -> bytes:
    """A one-operator ``.tflite``: ``y = x @ W.T`` with ``x`` of shape ``(m, k)`` and ``W`` of
    shape ``(n, k)`` (float32, or int8 with per-tensor scales), written with LiteRT's
    flatbuffer schema, no TensorFlow.

    Raises:
        ValueError: for a dtype other than ``float32`` or ``int8``.
        ImportError: if LiteRT (``ai-edge-litert``, which carries the schema) is missing.
    """
    if dtype not in ("float32", "int8"):
        raise ValueError(f"dtype must be 'float32' or 'int8', got {dtype!r}.")
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    rng = np.random.default_rng(0)
    if dtype == "int8":
        weights = rng.integers(-127, 128, (n, k), dtype=np.int8)
        bias = np.zeros(n, np.int32)
        data_type, bias_type = schema.TensorType.INT8, schema.TensorType.INT32
        scales = (0.05, 0.01, 0.05 * 0.01, 0.5)  # input, weights, bias = in·w, output
    else:
        weights = rng.standard_normal((n, k), dtype=np.float32)
        bias = np.zeros(n, np.float32)
        data_type = bias_type = schema.TensorType.FLOAT32
        scales = (None,) * 4

    def buffer(array: np.ndarray | None) -> Any:
        result = schema.BufferT()
        if array is not None:
            result.data = np.frombuffer(array.tobytes(), np.uint8)
        return result

    def tensor(shape, kind, buffer_index, name, scale) -> Any:
        result = schema.TensorT()
        result.shape, result.type = list(shape), kind
        result.buffer, result.name = buffer_index, name
        if scale is not None:
            result.quantization = schema.QuantizationParametersT()
            result.quantization.scale, result.quantization.zeroPoint = [scale], [0]
        return result

    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = schema.FullyConnectedOptionsT()
    graph = schema.SubGraphT()
    graph.tensors = [
        tensor((m, k), data_type, 1, "x", scales[0]),
        tensor((n, k), data_type, 2, "weights", scales[1]),
        tensor((n,), bias_type, 3, "bias", scales[2]),
        tensor((m, n), data_type, 4, "y", scales[3]),
    ]
    graph.inputs, graph.outputs, graph.operators, graph.name = [0], [3], [op], "main"
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [buffer(None), buffer(None), buffer(weights), buffer(bias), buffer(None)]
    model.description = f"affectlite peak probe: fully connected {m}x{k} @ {k}x{n} {dtype}"
    builder = flatbuffers.Builder(weights.nbytes + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def litert_fc_probe(
    dtype: str,
    threads: int,
    shape: tuple[int, int, int] = (512, 512, 512),
    repeats: int = 30,
    budget_s: float = 1.0,
) -> Probe:
    """Best-of MAC/s of one FULLY_CONNECTED ``(M, K) × (K, N)`` on LiteRT with ``threads``."""
    m, k, n = shape
    interpreter, info = load_interpreter(fully_connected_model(m, k, n, dtype), threads)
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(1)
    if dtype == "int8":
        data = rng.integers(-128, 128, (m, k), dtype=np.int8)
    else:
        data = rng.standard_normal((m, k), dtype=np.float32)
    interpreter.set_tensor(detail["index"], data)
    best = _best_seconds(interpreter.invoke, repeats, budget_s)
    return Probe(
        f"litert-fc-{dtype}",
        dtype,
        threads,
        [m, k, n],
        best * 1e3,
        m * k * n / best,
        f"{info.name} {info.version}",
    )


def peak_probes(threads: list[int]) -> tuple[list[Probe], list[str]]:
    """Every probe for each thread count; returns the probes and why any could not run."""
    probes, problems = [numpy_matmul_probe()], []
    for dtype in ("float32", "int8"):
        for count in sorted(set(threads)):
            try:
                probes.append(litert_fc_probe(dtype, count))
            except (ImportError, ValueError) as error:
                problems.append(f"litert-fc-{dtype} ({count} threads): {error}")
    return probes, problems


def limit(
    macs: ModelMacs, classifier_median_ms: float, threads: int, probes: list[Probe]
) -> dict[str, Any]:
    """Achieved MAC/s of a classifier against the LiteRT probe of its dtype and threads."""
    achieved = macs.macs / (classifier_median_ms / 1e3) if classifier_median_ms > 0 else None
    name = f"litert-fc-{'int8' if macs.compute_dtype == 'int8' else 'float32'}"
    peak = next((p for p in probes if p.name == name and p.threads == threads), None)
    return {
        "macs": macs.macs,
        "compute_dtype": macs.compute_dtype,
        "achieved_macs_per_s": achieved,
        "peak_probe": name if peak else None,
        "peak_macs_per_s": peak.macs_per_s if peak else None,
        "fraction_of_peak": achieved / peak.macs_per_s if peak and achieved else None,
    }
