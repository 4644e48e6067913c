"""The model bundle: one folder with everything a device needs, checked on load.

Layout::

    bundle/
      bundle.json          manifest (below)
      classifier.tflite    the emotion classifier, raw RGB 0..255 in, logits out
      face_detector.tflite BlazeFace short-range (optional)

``bundle.json`` holds the labels, the classifier's input size, dtype and quantisation, the crop
policy, the softmax temperature, a summary of the training data, measured metrics, the kit
version and the sha256 of every file. :func:`load_bundle` refuses a bundle whose files are
missing or altered.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectlite import __version__
from affectlite.edge_app.preprocess import CropPolicy
from affectlite.errors import InputError
from affectlite.files import atomic_dir, write_json
from affectlite.schemas import BUNDLE_VERSION, BundleManifest

from .labels import LABELS

MANIFEST = "bundle.json"
CLASSIFIER_FILE = "classifier.tflite"
DETECTOR_FILE = "face_detector.tflite"
FORMAT = "affectlite-bundle"
FORMAT_VERSION = 1


DEFAULT_BUNDLE = Path(__file__).resolve().parent / "models" / "default"
"""The trained bundle that ships inside the package (FER+, compact CNN, int8): what ``run``,
``predict``, ``app``, ``bench`` and ``evaluate`` use when no bundle is named."""


class BundleError(InputError):
    """A bundle is missing, incomplete, altered or inconsistent."""


def resolve_bundle(name: str | Path | None) -> Path:
    """The bundle folder for a ``--bundle``/``--model`` value: ``None`` or ``"default"`` is the
    shipped :data:`DEFAULT_BUNDLE`; anything else is a path, returned as given."""
    if name is None or str(name) == "default":
        return DEFAULT_BUNDLE
    return Path(name)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Bundle:
    """A verified bundle on disk."""

    path: Path
    manifest: dict[str, Any] = field(repr=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.manifest["labels"])

    @property
    def input_size(self) -> int:
        return int(self.manifest["classifier"]["input_size"])

    @property
    def crop_policy(self) -> CropPolicy:
        return CropPolicy.from_dict(self.manifest["crop"])

    @property
    def temperature(self) -> float:
        return float(self.manifest.get("temperature", 1.0))

    @property
    def classifier_path(self) -> Path:
        return self.path / self.manifest["classifier"]["file"]

    @property
    def detector_path(self) -> Path | None:
        detector = self.manifest.get("detector")
        return self.path / detector["file"] if detector else None

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})


def write_bundle(
    out_dir: str | Path,
    classifier: str | Path,
    classifier_info: dict[str, Any],
    *,
    detector: str | Path | None = None,
    crop: CropPolicy = CropPolicy(),
    labels: tuple[str, ...] = LABELS,
    temperature: float = 1.0,
    training_data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Bundle:
    """Writes a bundle atomically: it is staged beside ``out_dir`` and renamed into place.

    Args:
        out_dir: the bundle folder to create.
        classifier: the classifier ``.tflite``.
        classifier_info: at least ``input_size``; usually also ``mode``, ``backbone``,
            ``input_dtype``, ``input_quantization``, ``output_dtype``, ``output_quantization``.
        detector: the face detector ``.tflite`` (BlazeFace short-range), if any.
        crop: the crop policy the classifier was trained with.
        labels: output order of the classifier.
        temperature: softmax temperature from confidence calibration.
        training_data: summary of the data the model was trained on.
        metrics: measured metrics to carry with the model.
        overwrite: replace an existing bundle at ``out_dir``.

    Raises:
        BundleError: if ``out_dir`` exists and ``overwrite`` is false, or an input is missing.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise BundleError(f"{out_dir} already exists; choose another folder or pass overwrite.")
    if "input_size" not in classifier_info:
        raise BundleError("classifier_info needs 'input_size'.")
    sources = {CLASSIFIER_FILE: Path(classifier)}
    if detector is not None:
        sources[DETECTOR_FILE] = Path(detector)
    for source in sources.values():
        if not source.is_file():
            raise BundleError(f"Cannot bundle {source}: file not found.")
    with atomic_dir(out_dir, replace=overwrite) as staging:
        for name, source in sources.items():
            shutil.copyfile(source, staging / name)
        manifest: BundleManifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "schema_version": BUNDLE_VERSION,
            "kit_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "labels": list(labels),
            "classifier": {**classifier_info, "file": CLASSIFIER_FILE},
            "detector": (
                {"file": DETECTOR_FILE, "kind": "blazeface_short_range", "input_size": 128}
                if detector is not None
                else None
            ),
            "crop": crop.to_dict(),
            "normalization": "in-model: raw RGB uint8 pixels 0..255 in, logits out",
            "temperature": float(temperature),
            "training_data": training_data or {},
            "metrics": metrics or {},
            "files": {name: sha256_file(staging / name) for name in sources},
        }
        write_json(staging / MANIFEST, manifest)
    return load_bundle(out_dir)


def load_bundle(path: str | Path) -> Bundle:
    """Loads and verifies a bundle folder.

    Raises:
        BundleError: naming the file that is missing, unreadable or fails its checksum, or the
            manifest field that is wrong.
    """
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: no bundle manifest (is {path} a bundle folder?).")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{manifest_path}: unreadable manifest ({error}).") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_path}: not an affectlite bundle manifest.")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise BundleError(
            f"{manifest_path}: bundle format {manifest['format_version']} is newer than this "
            f"kit understands ({FORMAT_VERSION}); upgrade affectlite."
        )
    for key in ("labels", "classifier", "crop", "files"):
        if key not in manifest:
            raise BundleError(f"{manifest_path}: missing field {key!r}.")
    for name, expected in manifest["files"].items():
        file_path = path / name
        if not file_path.is_file():
            raise BundleError(f"{file_path}: listed in the manifest but missing.")
        if sha256_file(file_path) != expected:
            raise BundleError(f"{file_path}: checksum mismatch (file altered or corrupt).")
    bundle = Bundle(path, manifest)
    if bundle.classifier_path.name not in manifest["files"]:
        raise BundleError(f"{manifest_path}: classifier file has no checksum.")
    return bundle
