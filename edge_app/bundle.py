"""The model bundle: one folder with everything a device needs, checked on load.

Layout::

    bundle/
      bundle.json          manifest (below)
      classifier.tflite    the emotion classifier, raw RGB 0..255 in, logits out
      face_detector.tflite BlazeFace short-range (optional)

``bundle.json`` holds the labels, the classifier's input size, dtype and quantisation (and the
order in which exact ties of its logits are broken), the crop policy, the softmax temperature, a
summary of the training data, measured metrics, the kit version and the sha256 of every file.
:func:`load_bundle` refuses a bundle whose files are missing or altered.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from affectlite import __version__
from affectlite.edge_app.preprocess import CropPolicy
from affectlite.errors import InputError
from affectlite.files import atomic_dir, write_json
from affectlite.schemas import BUNDLE_VERSION, BundleManifest

from .labels import LABELS, RESERVED_LABELS

MANIFEST = "bundle.json"
CLASSIFIER_FILE = "classifier.tflite"
DETECTOR_FILE = "face_detector.tflite"
FORMAT = "affectlite-bundle"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 20
MAX_MODEL_BYTES = 1 << 30
INPUT_DTYPES = ("uint8", "int8", "float32")
_SHA256 = re.compile(r"[0-9a-f]{64}")


MODELS_DIR = Path(__file__).resolve().parent / "models"
"""Where the package's shipped bundles live, one folder per name (``bundle.json`` inside)."""
DEFAULT_BUNDLE = MODELS_DIR / "default"
"""The trained bundle that ships inside the package (FER+, compact CNN, int8): what ``run``,
``predict``, ``app``, ``bench`` and ``evaluate`` use when no bundle is named."""
BUNDLES_ENV = "AFFECTLITE_BUNDLES"
"""More folders of named bundles (``os.pathsep``-separated), searched after the package's."""
BUILT_BY = {"resnet50": "make resnet50-bundle (a GPU; docs/gpu-offline.md)"}
"""How a named bundle that this install may not have yet is made."""


class BundleError(InputError):
    """A bundle is missing, incomplete, altered or inconsistent (exit 2)."""


def shipped_bundles() -> dict[str, Path]:
    """Bundles selectable by name: each folder holding a ``bundle.json`` in the package's
    :data:`MODELS_DIR`, then in the folders of :data:`BUNDLES_ENV`, ``default`` first. A name
    found twice is the first one's (a search-path folder cannot replace a shipped bundle)."""
    extra = [Path(p).expanduser() for p in os.environ.get(BUNDLES_ENV, "").split(os.pathsep) if p]
    found: dict[str, Path] = {"default": DEFAULT_BUNDLE}
    for root in (MODELS_DIR, *extra):
        folders = sorted(root.iterdir()) if root.is_dir() else []
        for folder in folders:
            if (folder / MANIFEST).is_file():
                found.setdefault(folder.name, folder)
    return found


def resolve_bundle(name_or_path: str | Path | None) -> Path:
    """The bundle folder for a ``--bundle``/``--model`` value: ``None`` or ``"default"`` is the
    shipped :data:`DEFAULT_BUNDLE`; a bare name of :func:`shipped_bundles` (``resnet50``) is
    that bundle unless a path of that name exists here; anything else (``./resnet50``, a
    ``.tflite`` file) is a path, returned as given. The single entry point for bundle names."""
    if name_or_path is None or str(name_or_path) == "default":
        return DEFAULT_BUNDLE
    path, text = Path(name_or_path), str(name_or_path)
    if not path.exists() and os.sep not in text and "/" not in text:
        named = shipped_bundles().get(text)
        if named is not None:
            return named
    return path


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Bundle:
    """A verified bundle on disk, with the bytes of its models as they were verified: the
    interpreters are built from these, so a file swapped after loading is never run."""

    path: Path
    manifest: dict[str, Any] = field(repr=False)
    contents: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    def model_bytes(self, role: str) -> bytes:
        """The verified bytes of the ``"classifier"`` or ``"detector"`` model; read and checked
        against the manifest's sha256 now if this bundle was built without them.

        Raises:
            BundleError: if the file is missing, unreadable or altered.
        """
        name = self.manifest[role]["file"]
        if name not in self.contents:
            self.contents[name] = _read_verified(self.path, name, self.manifest["files"][name])
        return self.contents[name]

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
        return float(self.manifest["temperature"])

    @property
    def tie_break(self) -> tuple[str, ...] | None:
        """Labels in the order that wins exact ties of the classifier's logits, if recorded."""
        order = self.manifest["classifier"].get("tie_break")
        return tuple(order) if order else None

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
    """Writes a bundle atomically (:func:`affectlite.files.atomic_dir`: staged beside
    ``out_dir``, renamed into place, folders 0755 and files 0644) and loads it back.

    Args:
        out_dir: the bundle folder to create.
        classifier: the classifier ``.tflite``.
        classifier_info: at least ``input_size`` and ``input_dtype``; usually also ``mode``,
            ``backbone``, ``input_quantization``, ``output_dtype``, ``output_quantization``.
        detector: the face detector ``.tflite`` (BlazeFace short-range), if any.
        crop: the crop policy the classifier was trained with.
        labels: output order of the classifier.
        temperature: softmax temperature from confidence calibration.
        training_data: summary of the data the model was trained on.
        metrics: measured metrics to carry with the model.
        overwrite: replace an existing bundle at ``out_dir``.

    Raises:
        BundleError: if ``out_dir`` exists and ``overwrite`` is false, an input is missing, or
            the result fails :func:`load_bundle`'s checks (nothing is left behind then).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise BundleError(f"{out_dir} already exists; choose another folder or pass overwrite.")
    sources = {CLASSIFIER_FILE: Path(classifier)}
    if detector is not None:
        sources[DETECTOR_FILE] = Path(detector)
    for source in sources.values():
        if not source.is_file():
            raise BundleError(f"Cannot bundle {source}: file not found.")
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
        "files": {name: sha256_file(source) for name, source in sources.items()},
    }
    check_manifest(manifest)
    with atomic_dir(out_dir, replace=overwrite) as staging:
        for name, source in sources.items():
            (staging / name).write_bytes(source.read_bytes())
        write_json(staging / MANIFEST, manifest)
        _check_models(staging, manifest, _verify_files(staging, manifest))
    return load_bundle(out_dir)


def load_bundle(path: str | Path) -> Bundle:
    """Loads and verifies a bundle folder, failing closed before the first frame.

    Every path the manifest names must lie inside the folder (no absolute paths, ``..`` or
    links leading out); every file the loader opens (classifier and detector) must be listed
    with its sha256 under exactly that path; the manifest must pass :func:`check_manifest`; and
    the classifier's real input size, input dtype and output width must match the manifest.

    Raises:
        BundleError: naming the file that is missing, unreadable, outside the bundle or fails
            its checksum, or the manifest field that is wrong.
    """
    path = Path(path)
    manifest_path = path / MANIFEST
    _inside(path, MANIFEST)
    if not manifest_path.is_file():
        names = ", ".join(shipped_bundles()) if len(path.parts) == 1 else ""
        hint = f" Bundles by name: {names}." if names else ""
        if names and str(path) in BUILT_BY:
            hint += f" {path} is not installed here; it is built by {BUILT_BY[str(path)]}."
        raise BundleError(
            f"{manifest_path}: no bundle manifest (is {path} a bundle folder?).{hint}"
        )
    manifest = _read_manifest(manifest_path)
    try:
        check_manifest(manifest)
    except BundleError as error:
        raise BundleError(f"{manifest_path}: {error}") from None
    contents = _verify_files(path, manifest)
    _check_models(path, manifest, contents)
    return Bundle(path, manifest, contents)


def _read_manifest(manifest_path: Path) -> dict[str, Any]:
    try:
        with open(manifest_path, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise ValueError(f"over {MAX_MANIFEST_BYTES} bytes")
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise BundleError(f"{manifest_path}: unreadable manifest ({error}).") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"duplicate key {repeated[0]!r}")
    return dict(pairs)


# The manifest's schema ------------------------------------------------------------------------


def _fail(field_name: str, wanted: str, value: Any) -> BundleError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return BundleError(f"field {field_name!r} must be {wanted}, got {shown}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _normal_float32(value: float) -> bool:
    """Whether ``value`` stays a finite, non-zero, normal number in float32 (the device's
    arithmetic): 1e-300 becomes 0 and 1e39 infinity."""
    with np.errstate(over="ignore"):
        single = np.float32(abs(value))
    return bool(np.isfinite(single) and single >= np.finfo(np.float32).tiny)


def _section(manifest: dict[str, Any], key: str, required: tuple[str, ...]) -> dict[str, Any]:
    section = manifest.get(key)
    if not isinstance(section, dict):
        raise _fail(key, "an object", section)
    for name in required:
        if name not in section:
            raise BundleError(f"missing field {key}.{name!r}.")
    return section


def check_manifest(manifest: Any) -> None:
    """Checks a parsed ``bundle.json`` against the schema (types, required keys, values).

    Raises:
        BundleError: naming the first field that is missing or wrong.
    """
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError("not an affectlite bundle manifest.")
    version = manifest.get("format_version")
    if not _is_int(version) or version < 1:
        raise _fail("format_version", "a positive integer", version)
    if version > FORMAT_VERSION:
        raise BundleError(
            f"bundle format {version} is newer than this kit understands ({FORMAT_VERSION}); "
            "upgrade affectlite."
        )
    for key in ("labels", "classifier", "crop", "temperature", "files"):
        if key not in manifest:
            raise BundleError(f"missing field {key!r}.")
    labels = manifest["labels"]
    if not isinstance(labels, list) or len(labels) < 2:
        raise _fail("labels", "a list of at least two names", labels)
    if not all(isinstance(label, str) and label.strip() for label in labels):
        raise _fail("labels", "non-empty strings", labels)
    if len(set(labels)) != len(labels):
        raise _fail("labels", "unique names", labels)
    reserved = [label for label in labels if label.strip().lower() in RESERVED_LABELS]
    if reserved:
        raise _fail("labels", f"names other than {', '.join(sorted(RESERVED_LABELS))}", reserved)
    classifier = _section(manifest, "classifier", ("file", "input_size", "input_dtype"))
    size = classifier["input_size"]
    if not _is_int(size) or not 1 <= size <= 4096:
        raise _fail("classifier.input_size", "an integer from 1 to 4096", size)
    if classifier["input_dtype"] not in INPUT_DTYPES:
        raise _fail(
            "classifier.input_dtype",
            f"one of {', '.join(INPUT_DTYPES)}",
            classifier["input_dtype"],
        )
    tie_break = classifier.get("tie_break")
    if tie_break is not None and (
        not isinstance(tie_break, list)
        or not all(isinstance(label, str) for label in tie_break)
        or sorted(tie_break) != sorted(labels)
    ):
        raise _fail("classifier.tie_break", "the labels, each once, in tie-break order", tie_break)
    if manifest.get("detector") is not None:
        detector = _section(manifest, "detector", ("file", "input_size"))
        if not _is_int(detector["input_size"]) or detector["input_size"] < 1:
            raise _fail("detector.input_size", "a positive integer", detector["input_size"])
    _check_crop(_section(manifest, "crop", ("margin", "square", "pad_value")))
    temperature = manifest["temperature"]
    if not _is_number(temperature) or not _normal_float32(temperature) or temperature <= 0:
        raise _fail("temperature", "a finite number > 0 in float32 (1.2e-38 … 3.4e38)", temperature)
    for key in ("metrics", "training_data"):
        if key in manifest and not isinstance(manifest[key], dict):
            raise _fail(key, "an object", manifest[key])
    _check_files(manifest)


def _check_crop(crop: dict[str, Any]) -> None:
    if not _is_number(crop["margin"]) or not 0 <= crop["margin"] <= 4:
        raise _fail("crop.margin", "a number from 0 to 4", crop["margin"])
    if not isinstance(crop["square"], bool):
        raise _fail("crop.square", "true or false", crop["square"])
    if not _is_int(crop["pad_value"]) or not 0 <= crop["pad_value"] <= 255:
        raise _fail("crop.pad_value", "an integer from 0 to 255", crop["pad_value"])


def _check_files(manifest: dict[str, Any]) -> None:
    files = manifest["files"]
    if not isinstance(files, dict) or not files:
        raise _fail("files", "an object of file name → sha256", files)
    for name, digest in files.items():
        _relative(name)
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _fail(f"files.{name}", "a sha256 (64 lower-case hex digits)", digest)
    for role in _model_roles(manifest):
        name = manifest[role]["file"]
        _relative(name)
        if name not in files:
            raise BundleError(
                f"{role}.file {name!r} has no sha256 under 'files' (every file the loader "
                "opens must be listed by its exact path)."
            )


def _model_roles(manifest: dict[str, Any]) -> tuple[str, ...]:
    return ("classifier", "detector") if manifest.get("detector") is not None else ("classifier",)


# Files on disk -------------------------------------------------------------------------------


def _relative(name: Any) -> PurePosixPath:
    """``name`` as a relative path with no ``..``, checked without touching the disk."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        raise _fail("files", "relative paths inside the bundle", name)
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or re.match(r"[A-Za-z]:", name):
        raise BundleError(
            f"file {name!r} is not a path inside the bundle (absolute paths and '..' are refused)."
        )
    return relative


def _inside(root: Path, name: str) -> Path:
    """The real path of ``root/name``, refused if a link leads it outside ``root``.

    The message is the same whether or not the outside target exists.
    """
    real_root = root.resolve()
    target = (real_root / _relative(name)).resolve()
    if not target.is_relative_to(real_root):
        raise BundleError(f"{root / name}: a link leading outside the bundle; refused.")
    return target


def _verify_files(root: Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    """Checks every listed file's sha256; returns the models' bytes, read once and hashed."""
    models = {manifest[role]["file"] for role in _model_roles(manifest)}
    contents = {}
    for name, expected in manifest["files"].items():
        if name in models:
            contents[name] = _read_verified(root, name, expected)
            continue
        target = _regular(root, name)
        try:
            actual = sha256_file(target)
        except OSError as error:
            raise BundleError(f"{root / name}: unreadable ({error.strerror}).") from None
        if actual != expected:
            raise BundleError(f"{root / name}: checksum mismatch (file altered or corrupt).")
    return contents


def _regular(root: Path, name: str) -> Path:
    target = _inside(root, name)
    try:
        info = os.stat(target)
    except OSError:
        raise BundleError(f"{root / name}: listed in the manifest but missing.") from None
    if not stat.S_ISREG(info.st_mode):
        raise BundleError(f"{root / name}: not a regular file.")
    if info.st_size > MAX_MODEL_BYTES:
        raise BundleError(f"{root / name}: over {MAX_MODEL_BYTES >> 20} MiB; not a device model.")
    return target


def _read_verified(root: Path, name: str, expected: str) -> bytes:
    """The bytes of ``root/name``, read once, refused unless their sha256 is ``expected``."""
    target = _regular(root, name)
    try:
        with open(target, "rb") as handle:
            data = handle.read(MAX_MODEL_BYTES + 1)
    except OSError as error:
        raise BundleError(f"{root / name}: unreadable ({error.strerror}).") from None
    if len(data) > MAX_MODEL_BYTES or hashlib.sha256(data).hexdigest() != expected:
        raise BundleError(f"{root / name}: checksum mismatch (file altered or corrupt).")
    return data


def _check_models(root: Path, manifest: dict[str, Any], contents: dict[str, bytes]) -> None:
    """Builds each model's interpreter from its verified bytes and compares its tensors with
    the manifest; the classifier must also give finite outputs on a probe input."""
    from .runtime import load_interpreter  # Imported here: writing a bundle needs no runtime.

    for role in _model_roles(manifest):
        section = manifest[role]
        path = root / section["file"]
        try:
            interpreter, _ = load_interpreter(contents[section["file"]], num_threads=1)
        except ValueError:
            raise BundleError(f"{path}: not a loadable TFLite model.") from None
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or not outputs:
            raise BundleError(f"{path}: expected one input tensor, found {len(inputs)}.")
        shape = [int(v) for v in inputs[0]["shape"]]
        size = section["input_size"]
        if len(shape) != 4 or shape[1:] != [size, size, 3]:
            raise BundleError(
                f"{path}: the model takes input of shape {shape}, but {MANIFEST} says "
                f"{role}.input_size {size} (expected [1, {size}, {size}, 3])."
            )
        if role == "classifier":
            _check_classifier(path, manifest, inputs[0], outputs)
            _probe(path, manifest, interpreter)


def _check_classifier(path: Path, manifest: dict[str, Any], inputs: dict, outputs: list) -> None:
    dtype = np.dtype(inputs["dtype"]).name
    if dtype != manifest["classifier"]["input_dtype"]:
        raise BundleError(
            f"{path}: the model's input is {dtype}, but {MANIFEST} says "
            f"{manifest['classifier']['input_dtype']}."
        )
    labels = manifest["labels"]
    shapes = [[int(v) for v in o["shape"]] for o in outputs]
    if len(outputs) != 1 or len(shapes[0]) != 2 or shapes[0][-1] != len(labels):
        raise BundleError(
            f"{path}: the model outputs shape {shapes[0] if len(shapes) == 1 else shapes}, but "
            f"{MANIFEST} lists {len(labels)} labels: the output must be one (batch, "
            f"{len(labels)}) tensor."
        )


def _probe(path: Path, manifest: dict[str, Any], interpreter: Any) -> None:
    """Runs the classifier once on a mid-grey face and refuses non-finite probabilities."""
    # Imported here: the classifier module imports this one.
    from .classifier import dequantize, quantize, softmax

    details = interpreter.get_input_details()[0]
    interpreter.set_tensor(details["index"], quantize(np.full(details["shape"], 128.0), details))
    interpreter.invoke()
    output = interpreter.get_output_details()[0]
    logits = dequantize(interpreter.get_tensor(output["index"]), output)
    with np.errstate(all="ignore"):
        probabilities = softmax(logits, manifest["temperature"])
    if not np.isfinite(probabilities).all():
        raise BundleError(
            f"{path}: a probe inference gave non-finite outputs ({logits.ravel()[:4]} …); the "
            "model or its temperature is broken."
        )
