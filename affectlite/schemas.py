"""The JSON documents the kit writes, typed: metrics.json, bench.json, bundle.json, conversion.json.

Each carries ``schema_version``; a reader that meets a newer version than it knows should say
so rather than guess. Types describe the top level and the parts other modules read by key;
deeper parts stay ``dict[str, Any]`` where only their own writer reads them.
"""

from __future__ import annotations

from typing import Any, TypedDict

METRICS_VERSION = 2
"""2: a training run's metrics.json adds backend, device and train_images_per_second_median."""
BENCH_VERSION = 1
BUNDLE_VERSION = 1
CONVERSION_VERSION = 1


class ClassScores(TypedDict):
    precision: float
    recall: float
    f1: float
    support: int


class ClassificationReport(TypedDict):
    """What :func:`affectlite.train.metrics.classification_report` returns."""

    n: int
    labels: list[str]
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    classes_evaluated: list[str]
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]


class MetricsDocument(ClassificationReport, total=False):
    """``metrics.json`` of a training run, and ``affectlite evaluate --json``."""

    schema_version: int
    model: str
    model_kind: str
    note: str
    data: dict[str, Any]
    wall_seconds_this_session: float
    precision_policy: str
    backend: str
    device: dict[str, Any]
    train_images_per_second_median: float | None
    best_epoch: int


class BenchMemory(TypedDict):
    peak_rss_bytes: int | None
    rss_bytes_end: int | None


class BenchDocument(TypedDict):
    """``bench.json`` (see :mod:`affectlite.benchmarks.report` for the fields' meaning)."""

    schema: str
    schema_version: int
    created: str
    kit_version: str
    host: dict[str, Any]
    settings: dict[str, Any]
    memory: BenchMemory
    thermal: dict[str, float | None]
    load_average: dict[str, list[float] | None]
    probes: list[dict[str, Any]]
    variants: list[dict[str, Any]]
    problems: list[str]


class BundleManifest(TypedDict):
    """``bundle.json``: what a bundle holds and how its classifier expects its input."""

    format: str
    format_version: int
    schema_version: int
    kit_version: str
    created: str
    labels: list[str]
    classifier: dict[str, Any]
    detector: dict[str, Any] | None
    crop: dict[str, Any]
    normalization: str
    temperature: float
    training_data: dict[str, Any]
    metrics: dict[str, Any]
    files: dict[str, str]


class ConversionReport(TypedDict, total=False):
    """``conversion.json`` beside a bundle: what ``affectlite convert`` did and measured."""

    schema_version: int
    model: str
    quantization: dict[str, Any]
    calibration: dict[str, Any]
    conversion_seconds: float
    sizes: dict[str, int]
    worst_layers: list[dict[str, Any]]
    verification: dict[str, Any]
    temperature: dict[str, Any]
    gate: dict[str, Any]
    bundle: str
