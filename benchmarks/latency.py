"""Per-stage latency of bundles and reference models, measured interleaved on this device.

Each *variant* is one bundle (or one external ``.tflite`` classifier) at one thread count.
All variants are built first, then measured in rounds: one round runs every variant once on
the same frame, and each round starts one variant later than the previous one (round ``r``
runs variants ``r % n, r % n + 1, …``). Heat, clock changes and background load thus fall on
all variants alike, and no variant always runs right after the same neighbour.

Per round a bundle variant does, timed with ``time.perf_counter``:

* ``input``: the frame's acquisition, either ``cv2.imdecode`` of a JPEG copy of the frame
  (built-in and in-memory frames; what an MJPEG webcam or a stored photo costs) or
  ``source.read()`` of a live source (``--source``: camera capture or video decode);
* ``detect``, ``crop`` (crop + resize of every face), ``classify`` (quantize, one batched
  invoke, dequantize, softmax), ``post`` (tracking and smoothing): the pipeline's own timers
  (:class:`affectlite.edge_app.pipeline.Pipeline`), and ``pipeline``, their total;
* ``end_to_end``: input + pipeline, timed around both;
* ``classifier_only``: the classifier alone on a fixed crop (the largest face the detector
  finds in the first frame; batch 1): quantize, set the input, invoke, read and dequantize
  the logits (``EmotionClassifier.logits``).

A reference variant does only ``classifier_only``: set a fixed random input of the model's
own shape and dtype, invoke, read the outputs. Warm-up rounds are not recorded. Statistics
are NumPy's (percentiles interpolate linearly between order statistics; ``std`` has
``ddof=1``); FPS is ``1000 / mean end-to-end``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from affectlite import __version__
from affectlite.edge_app.bundle import Bundle, load_bundle
from affectlite.edge_app.pipeline import Pipeline, PipelineConfig
from affectlite.edge_app.preprocess import crop_face, decode_image
from affectlite.edge_app.runner import peak_rss_bytes, rss_bytes
from affectlite.edge_app.runtime import load_interpreter
from affectlite.edge_app.sources import FrameSource
from affectlite.errors import InputError
from affectlite.schemas import BENCH_VERSION, BenchDocument

from . import macs as macs_module
from . import system

SCHEMA = "affectlite-bench"
SCHEMA_VERSION = BENCH_VERSION
STAT_KEYS = ("min", "median", "p90", "p99", "mean", "std")
PIPELINE_STAGES = ("detect", "crop", "classify", "post")
STAGES = ("input", *PIPELINE_STAGES, "pipeline", "end_to_end", "classifier_only")
JPEG_QUALITY = 90


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """``min``, ``median``, ``p90``, ``p99``, ``mean`` and ``std`` (ddof 1; 0 for one sample).

    Raises:
        ValueError: for no samples or a non-finite one.
    """
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"Need at least one finite sample, got {list(samples_ms)[:5]}.")
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "min": float(values.min()),
        "median": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
    }


def ratio(value: float | None, base: float | None) -> float | None:
    """``value / base``, or ``None`` when either is missing or ``base`` is not positive."""
    if value is None or base is None or base <= 0:
        return None
    return float(value) / float(base)


def fps(end_to_end_ms: Sequence[float]) -> float:
    """Frames per second of a sequential loop: ``1000 / mean latency``."""
    return 1000.0 / float(np.mean(end_to_end_ms))


def round_order(count: int, round_index: int) -> list[int]:
    """Variant indices in the order round ``round_index`` runs them (rotating start)."""
    if count < 1:
        raise ValueError(f"Need at least one variant, got {count}.")
    start = round_index % count
    return [(start + i) % count for i in range(count)]


@dataclass(frozen=True)
class Variant:
    """One thing to measure: a bundle's pipeline, or an external classifier alone.

    Attributes:
        name: label in tables and plots (default: folder or file name and thread count).
        threads: interpreter threads.
        bundle: a bundle folder (full pipeline), or
        reference: a ``.tflite`` classifier (classifier-only timing).
    """

    name: str
    threads: int
    bundle: Path | None = None
    reference: Path | None = None

    def __post_init__(self) -> None:
        if (self.bundle is None) == (self.reference is None):
            raise ValueError(f"Variant {self.name!r}: give exactly one of bundle or reference.")
        if self.threads < 1:
            raise ValueError(f"Variant {self.name!r}: threads must be >= 1, got {self.threads}.")

    @classmethod
    def for_bundle(cls, path: str | Path, threads: int, name: str | None = None) -> Variant:
        path = Path(path)
        return cls(name or f"{path.name}@{threads}t", threads, bundle=path)

    @classmethod
    def for_reference(cls, path: str | Path, threads: int, name: str | None = None) -> Variant:
        path = Path(path)
        return cls(name or f"{path.stem}@{threads}t", threads, reference=path)

    @property
    def kind(self) -> str:
        return "bundle" if self.bundle is not None else "reference"


def make_variants(
    bundles: Sequence[str | Path], references: Sequence[str | Path], threads: Sequence[int]
) -> list[Variant]:
    """Every bundle, then every reference, each at every thread count, in that order.

    Names are made unique by adding the parent folder when two files share a name.
    """
    paths = [(Path(p), "bundle") for p in bundles] + [(Path(p), "reference") for p in references]
    names = [p.name if kind == "bundle" else p.stem for p, kind in paths]
    variants = []
    for (path, kind), name in zip(paths, names, strict=True):
        if names.count(name) > 1:
            name = f"{path.parent.name}/{name}"
        for count in threads:
            make = Variant.for_bundle if kind == "bundle" else Variant.for_reference
            variants.append(make(path, count, f"{name}@{count}t"))
    return variants


def _bundle_accuracy(bundle: Bundle) -> dict[str, Any] | None:
    """The measured accuracy a bundle carries (``convert`` stores it under ``verification``)."""
    metrics = bundle.metrics or {}
    verification = metrics.get("verification") or {}
    candidates = [
        (verification.get("converted") or {}, "verification.converted", verification.get("data")),
        (metrics, "metrics", metrics.get("data")),
    ]
    for table, where, data in candidates:
        for key in ("balanced_accuracy", "accuracy"):
            value = table.get(key)
            if isinstance(value, (int, float)):
                return {"metric": key, "value": float(value), "source": where, "data": data}
    return None


class _Runner:
    """A built variant: knows how to run one timed round."""

    def __init__(self, variant: Variant, frame: np.ndarray | None) -> None:
        self.variant = variant
        rss_before = rss_bytes()
        if variant.bundle is not None:
            if frame is None:
                raise ValueError(f"{variant.name}: a bundle variant needs frames.")
            self.bundle = load_bundle(variant.bundle)
            self.pipeline = Pipeline(self.bundle, PipelineConfig(num_threads=variant.threads))
            self.classifier_path = self.bundle.classifier_path
            self.runtime = self.pipeline.classifier.runtime
            self._crop = self._face_crop(frame)[None]
            self._classify = lambda: self.pipeline.classifier.logits(self._crop)
        else:
            self.bundle = self.pipeline = None
            self.classifier_path = variant.reference
            self.interpreter, self.runtime = load_interpreter(variant.reference, variant.threads)
            self._fill_inputs()
            self._classify = self._invoke_reference
        self.rss_increase = rss_bytes() - rss_before
        self.samples: dict[str, list[float]] = {}
        self.faces: list[int] = []
        self._last_faces: int | None = None

    def _face_crop(self, frame: np.ndarray) -> np.ndarray:
        """The crop of the largest face the detector finds in ``frame`` (the centre crop of the
        frame where it finds none)."""
        faces = self.pipeline.detector.detect(frame)
        box = faces[0].box if faces else None
        return crop_face(frame, box, self.bundle.input_size, self.bundle.crop_policy)

    def _fill_inputs(self) -> None:
        """Fixed random inputs of the model's own shapes and dtypes (pixel range for floats)."""
        rng = np.random.default_rng(0)
        self._inputs = []
        for detail in self.interpreter.get_input_details():
            dtype, shape = np.dtype(detail["dtype"]), detail["shape"]
            if dtype.kind in "iu":
                info = np.iinfo(dtype)
                data = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
            else:
                data = rng.uniform(0, 255, shape).astype(dtype)
            self._inputs.append((detail["index"], data))
        self._outputs = [d["index"] for d in self.interpreter.get_output_details()]

    def _invoke_reference(self) -> None:
        """What a caller pays per inference: set the inputs, invoke, read the outputs."""
        for index, data in self._inputs:
            self.interpreter.set_tensor(index, data)
        self.interpreter.invoke()
        for index in self._outputs:
            self.interpreter.get_tensor(index)

    def run(self, acquire: Callable[[], tuple[np.ndarray, np.ndarray | None]]) -> dict[str, float]:
        """One round: the whole pipeline on one frame (bundles), then the classifier alone."""
        timings: dict[str, float] = {}
        if self.pipeline is not None:
            start = time.perf_counter()
            frame, detect_frame = acquire()
            timings["input"] = (time.perf_counter() - start) * 1e3
            result = self.pipeline.process(frame, detect_frame)
            timings["end_to_end"] = (time.perf_counter() - start) * 1e3
            timings.update({k: result.timings_ms[k] for k in PIPELINE_STAGES})
            timings["pipeline"] = result.timings_ms["total"]
            self._last_faces = len(result.faces)
        start = time.perf_counter()
        self._classify()
        timings["classifier_only"] = (time.perf_counter() - start) * 1e3
        return timings

    def record(self, timings: dict[str, float]) -> None:
        """Keeps a timed round's figures (warm-up rounds are not recorded)."""
        for key, value in timings.items():
            self.samples.setdefault(key, []).append(value)
        if self._last_faces is not None:
            self.faces.append(self._last_faces)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "classifier_file": str(self.classifier_path),
            "classifier_bytes": self.classifier_path.stat().st_size,
        }
        if self.bundle is not None:
            classifier = self.bundle.manifest["classifier"]
            detector = self.bundle.detector_path
            info.update(
                bundle=str(self.bundle.path),
                mode=classifier.get("mode"),
                backbone=classifier.get("backbone"),
                input_size=self.bundle.input_size,
                input_dtype=str(self.pipeline.classifier.input_dtype),
                detector_bytes=detector.stat().st_size if detector else None,
            )
        else:
            detail = self.interpreter.get_input_details()[0]
            info.update(
                input_shape=[int(v) for v in detail["shape"]],
                input_dtype=str(np.dtype(detail["dtype"])),
            )
        return info


@dataclass
class BenchResult:
    """A finished benchmark as the JSON document described in ``benchmarks/RESULTS.md``.

    ``doc`` is what ``bench.json`` holds; the attributes are shortcuts into it.
    """

    doc: BenchDocument
    problems: list[str] = field(default_factory=list)

    @property
    def variants(self) -> list[dict[str, Any]]:
        return self.doc["variants"]

    def to_dict(self) -> dict[str, Any]:
        return self.doc

    def variant(self, name: str) -> dict[str, Any]:
        """The result of the variant called ``name``.

        Raises:
            KeyError: naming the variants there are.
        """
        for entry in self.variants:
            if entry["name"] == name:
                return entry
        raise KeyError(f"No variant {name!r}; there are {[v['name'] for v in self.variants]}.")


def _encode(frames: Sequence[np.ndarray]) -> list[bytes]:
    encoded = []
    for index, frame in enumerate(frames):
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"Frame {index}: expected uint8 RGB (H, W, 3), got {frame.dtype} {frame.shape}."
            )
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not ok:
            raise ValueError(f"Frame {index}: OpenCV could not encode it as JPEG.")
        encoded.append(data.tobytes())
    return encoded


def _acquirer(
    frames: Sequence[np.ndarray], source: FrameSource | None
) -> tuple[Callable[[int], Callable[[], tuple[np.ndarray, np.ndarray | None]]], dict[str, Any]]:
    """How each round gets its frame, and a description of that input stage."""
    if source is not None:

        def from_source(_: int) -> Callable[[], tuple[np.ndarray, np.ndarray | None]]:
            def read() -> tuple[np.ndarray, np.ndarray | None]:
                frame = source.read()
                if frame is None:
                    raise ValueError(f"{source.name}: the source ended during the benchmark.")
                return frame, source.detection_frame()

            return read

        return from_source, {"kind": "source-read", "source": source.name}
    jpegs = _encode(frames)

    def from_jpeg(round_index: int) -> Callable[[], tuple[np.ndarray, np.ndarray | None]]:
        data = jpegs[round_index % len(jpegs)]
        return lambda: (decode_image(data), None)

    return from_jpeg, {"kind": "jpeg-decode", "jpeg_quality": JPEG_QUALITY}


def run_benchmark(
    variants: Sequence[Variant],
    frames: Sequence[np.ndarray],
    runs: int = 50,
    warmup: int = 5,
    *,
    source: FrameSource | None = None,
    frames_origin: str = "caller",
    probe: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> BenchResult:
    """Measures every variant interleaved and returns the ``bench.json`` document.

    Args:
        variants: what to measure; the first is the baseline of the ratios.
        frames: ``uint8`` RGB frames, used in turn (one per round); with ``source``, only
            the first is used, for the fixed classifier-only crop.
        runs: timed rounds.
        warmup: untimed rounds before them.
        source: an opened live source to read frames from instead (input stage = capture).
        frames_origin: a description of ``frames`` for the report.
        probe: also count MACs and measure the peak probes (seconds).
        progress: called with ``(round, total_rounds)`` after every round.

    Raises:
        ValueError: for no variants, duplicate names, ``runs < 1``, ``warmup < 0``, or no
            frames when a bundle variant is given.
    """
    if not variants:
        raise InputError("Give at least one bundle or reference model to measure.")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise InputError(f"Variant names must be unique, got {names}.")
    if runs < 1 or warmup < 0:
        raise InputError(f"Need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}.")
    needs_frames = any(v.kind == "bundle" for v in variants)
    if needs_frames and not frames:
        raise InputError("Bundle variants need at least one frame.")
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    host = system.host_facts()
    temperature_start, load_start = system.cpu_temperature_c(), system.load_average()
    runners = [_Runner(v, frames[0] if frames else None) for v in variants]
    acquire_for, input_stage = _acquirer(frames, source)
    total = warmup + runs
    gc.collect()
    started = time.perf_counter()
    for round_index in range(total):
        acquire = acquire_for(round_index)
        for index in round_order(len(runners), round_index):
            timings = runners[index].run(acquire)
            if round_index >= warmup:
                runners[index].record(timings)
        if progress is not None:
            progress(round_index + 1, total)
    elapsed = time.perf_counter() - started
    threads = sorted({v.threads for v in variants})
    probes, problems = macs_module.peak_probes(threads) if probe else ([], [])
    entries = [_variant_entry(r, probes, probe, problems) for r in runners]
    _add_ratios(entries)
    frame_shapes = sorted({tuple(f.shape) for f in frames}) if frames else []
    doc: BenchDocument = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": created,
        "kit_version": __version__,
        "host": host,
        "settings": {
            "runs": runs,
            "warmup": warmup,
            "order": "interleaved: each round runs every variant once, starting one later",
            "threads": threads,
            "input_stage": input_stage,
            "frames": {
                "count": 0 if source is not None else len(frames),
                "shapes": [list(s) for s in frame_shapes],
                "origin": source.name if source is not None else frames_origin,
            },
            "baseline": variants[0].name,
            "timed_seconds": round(elapsed, 3),
        },
        "memory": {
            "peak_rss_bytes": peak_rss_bytes(),
            "rss_bytes_end": rss_bytes(),
        },
        "thermal": {"start_c": temperature_start, "end_c": system.cpu_temperature_c()},
        "load_average": {"start": load_start, "end": system.load_average()},
        "probes": [p.to_dict() for p in probes],
        "variants": entries,
        "problems": problems,
    }
    return BenchResult(doc, problems)


def _variant_entry(
    runner: _Runner, probes: list, probe: bool, problems: list[str]
) -> dict[str, Any]:
    variant = runner.variant
    stats = {k: summarize(v) for k, v in runner.samples.items()}
    entry: dict[str, Any] = {
        "name": variant.name,
        "kind": variant.kind,
        "threads": variant.threads,
        "model": runner.describe(),
        "runtime": {"name": runner.runtime.name, "version": runner.runtime.version},
        "rss_increase_bytes": runner.rss_increase,
        "stages_ms": {k: stats[k] for k in STAGES if k in stats},
        "samples_ms": {
            k: [round(x, 4) for x in runner.samples[k]] for k in STAGES if k in runner.samples
        },
        "fps": fps(runner.samples["end_to_end"]) if "end_to_end" in runner.samples else None,
        "faces_per_frame": float(np.mean(runner.faces)) if runner.faces else None,
        "accuracy": _bundle_accuracy(runner.bundle) if runner.bundle is not None else None,
        "limit": None,
    }
    if probe:
        try:
            counted = macs_module.count_macs(runner.classifier_path)
        except ValueError as error:
            problems.append(f"{variant.name}: MACs not counted ({error})")
        else:
            entry["limit"] = macs_module.limit(
                counted, stats["classifier_only"]["median"], variant.threads, probes
            )
            entry["limit"]["by_op"] = counted.by_op
    return entry


def _add_ratios(entries: list[dict[str, Any]]) -> None:
    """Median-latency and FPS ratios of every variant against the first."""
    base = entries[0]

    def median(entry: dict[str, Any], stage: str) -> float | None:
        stage_stats = entry["stages_ms"].get(stage)
        return stage_stats["median"] if stage_stats else None

    for entry in entries:
        entry["ratios_vs_baseline"] = {
            "median_end_to_end": ratio(median(entry, "end_to_end"), median(base, "end_to_end")),
            "fps": ratio(entry["fps"], base["fps"]),
            "median_classifier_only": ratio(
                median(entry, "classifier_only"), median(base, "classifier_only")
            ),
        }


def sample_frames(
    size: tuple[int, int] = (640, 480), count: int = 6, seed: int = 0
) -> tuple[list[np.ndarray], str]:
    """Camera-like test frames of ``size`` (width, height) and a description of them.

    Frames alternate between matplotlib's Grace Hopper photo (a real face; when matplotlib
    is installed) placed at two scales on a synthetic background, and synthetic scenes with
    one or two drawn faces (:func:`affectlite.train.synthetic.make_scene`, NumPy + OpenCV).
    The same ``seed`` gives the same frames on every machine.
    """
    from affectlite.train.synthetic import background, make_scene

    width, height = size
    if width < 64 or height < 64:
        raise InputError(f"Frame size must be at least 64×64, got {width}×{height}.")
    rng = np.random.default_rng(seed)
    side = min(width, height)
    size_range = (max(16, side // 6), int(side * 0.42))
    photo = _grace_hopper()
    frames, parts = [], []
    for index in range(count):
        if photo is not None and index % 2 == 0:
            scale = (0.8, 0.5)[(index // 2) % 2]
            frames.append(_place(photo, background(rng, height, width), scale, rng))
            parts.append("grace_hopper")
        else:
            faces = 1 + index % 2
            frames.append(make_scene(rng, width, height, faces, size_range)[0])
            parts.append(f"synthetic×{faces}")
    origin = f"sample_frames(seed={seed}): " + ", ".join(parts) + f" at {width}×{height}"
    return frames, origin


def _grace_hopper() -> np.ndarray | None:
    try:
        from matplotlib import cbook
    except ImportError:
        return None
    from affectlite.edge_app.preprocess import read_image

    return read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _place(photo: np.ndarray, canvas: np.ndarray, scale: float, rng) -> np.ndarray:
    """``photo`` resized to ``scale`` of the canvas height, pasted at a random position."""
    height, width = canvas.shape[:2]
    new_h = int(height * scale)
    new_w = min(width, int(photo.shape[1] * new_h / photo.shape[0]))
    resized = cv2.resize(photo, (new_w, new_h), interpolation=cv2.INTER_AREA)
    y = int(rng.integers(0, height - new_h + 1))
    x = int(rng.integers(0, width - new_w + 1))
    canvas = canvas.copy()
    canvas[y : y + new_h, x : x + new_w] = resized
    return canvas
