"""Untrusted bundles fail closed (issue 13): paths stay inside the folder, every opened file is
checksummed by its exact path, and bundle.json is checked against the model before any frame.
The fuzz and hypothesis tests load bundles in a subprocess, so a crash of the runtime (a signal)
fails the test like any exception other than ``BundleError``."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from affectlite.cli import main
from affectlite.edge_app.bundle import BundleError, load_bundle, sha256_file, write_bundle
from affectlite.errors import EXIT_BAD_INPUT, InputError


def copy_bundle(tiny_bundle, folder: Path) -> Path:
    target = folder / "bundle"
    shutil.copytree(tiny_bundle.path, target)
    return target


def edit(bundle: Path, change) -> None:
    """Applies ``change(manifest)`` to bundle.json and re-hashes every listed file that exists
    inside the folder, so only the change itself can fail the load."""
    manifest = json.loads((bundle / "bundle.json").read_text())
    change(manifest)
    files = manifest.get("files")
    if isinstance(files, dict):
        for name in files:
            path = bundle / str(name)
            if path.is_file() and path.resolve().is_relative_to(bundle.resolve()):
                files[name] = sha256_file(path)
    (bundle / "bundle.json").write_text(json.dumps(manifest))


def refused(bundle: Path, match: str | None) -> str:
    with pytest.raises(BundleError, match=match) as info:
        load_bundle(bundle)
    return str(info.value)


# Paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.bin", "sub/../../outside.bin"])
def test_paths_outside_the_bundle_are_refused_without_being_opened(tmp_path, tiny_bundle, name):
    bundle = copy_bundle(tiny_bundle, tmp_path)
    (tmp_path / "outside.bin").write_bytes(b"secret")
    edit(bundle, lambda m: m["files"].__setitem__(name, "0" * 64))
    refused(bundle, "not a path inside the bundle")


def test_a_link_leading_out_is_refused_alike_whether_its_target_exists(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path)
    (tmp_path / "outside.bin").write_bytes(b"secret")
    os.symlink(tmp_path / "outside.bin", bundle / "exists.bin")
    os.symlink(tmp_path / "missing.bin", bundle / "missing.bin")
    messages = []
    for name in ("exists.bin", "missing.bin"):
        edit(bundle, lambda m, n=name: m["files"].update({n: "0" * 64}))
        messages.append(refused(bundle, "a link leading outside the bundle"))
        edit(bundle, lambda m, n=name: m["files"].pop(n))
    assert messages[0].replace("exists", "X") == messages[1].replace("missing", "X")


def test_a_classifier_link_leading_out_is_refused(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path)
    outside = tmp_path / "outside.tflite"
    shutil.move(bundle / "classifier.tflite", outside)
    os.symlink(outside, bundle / "classifier.tflite")
    refused(bundle, "a link leading outside the bundle")


def test_a_link_inside_the_bundle_is_followed(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path)
    (bundle / "models").mkdir()
    shutil.move(bundle / "classifier.tflite", bundle / "models" / "classifier.tflite")
    os.symlink("models/classifier.tflite", bundle / "classifier.tflite")
    assert load_bundle(bundle).input_size == 32


def test_a_manifest_link_leading_out_is_refused(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path)
    shutil.move(bundle / "bundle.json", tmp_path / "bundle.json")
    os.symlink(tmp_path / "bundle.json", bundle / "bundle.json")
    refused(bundle, "a link leading outside the bundle")


# Checksums by exact path ---------------------------------------------------------------------


def test_a_classifier_in_a_subfolder_is_verified_by_its_exact_path(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path)
    (bundle / "sub").mkdir()
    flipped = bytearray((bundle / "classifier.tflite").read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    (bundle / "sub" / "classifier.tflite").write_bytes(bytes(flipped))
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["classifier"]["file"] = "sub/classifier.tflite"  # its base name has a checksum
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    refused(bundle, r"classifier.file 'sub/classifier.tflite' has no sha256")


def test_a_detector_without_a_checksum_is_refused(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path)
    edit(bundle, lambda m: m["files"].pop("face_detector.tflite"))
    refused(bundle, r"detector.file 'face_detector.tflite' has no sha256")


def test_an_altered_detector_is_refused(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path)
    data = bytearray((bundle / "face_detector.tflite").read_bytes())
    data[-100] ^= 0x01
    (bundle / "face_detector.tflite").write_bytes(bytes(data))
    refused(bundle, r"face_detector\.tflite: checksum mismatch")


# Schema and model ----------------------------------------------------------------------------


def _set(path: str, value):
    def change(manifest):
        *parents, key = path.split(".")
        target = manifest
        for parent in parents:
            target = target[parent]
        if value is KeyError:
            target.pop(key)
        else:
            target[key] = value

    return change


SCHEMA_CASES = [
    ("temperature", 0, "'temperature' must be a finite number > 0"),
    ("temperature", -1.5, "'temperature' must be a finite number > 0"),
    ("temperature", float("nan"), "'temperature' must be a finite number > 0"),
    ("temperature", "1.0", "'temperature' must be a finite number > 0"),
    ("temperature", KeyError, "missing field 'temperature'"),
    ("labels", ["happy"] * 8, "'labels' must be unique names"),
    ("labels", "happy", "'labels' must be a list"),
    ("files", [], "'files' must be an object"),
    ("files", {}, "'files' must be an object"),
    ("crop", None, "'crop' must be an object"),
    ("crop.margin", "0.2", "'crop.margin' must be a number"),
    ("crop.square", 1, "'crop.square' must be true or false"),
    ("classifier.input_size", KeyError, "missing field classifier.'input_size'"),
    ("classifier.input_size", True, "'classifier.input_size' must be an integer"),
    ("classifier.input_dtype", "float64", "'classifier.input_dtype' must be one of"),
    ("format_version", "1", "'format_version' must be a positive integer"),
    ("format_version", 99, "bundle format 99 is newer"),
    ("metrics", [], "'metrics' must be an object"),
    ("classifier.tie_break", ["neutral"], "'classifier.tie_break' must be the labels, each once"),
    ("classifier.tie_break", "neutral", "'classifier.tie_break' must be the labels, each once"),
    ("classifier.tie_break", [1, "a"], "'classifier.tie_break' must be the labels, each once"),
]


@pytest.mark.parametrize(("field", "value", "message"), SCHEMA_CASES)
def test_schema_violations_are_refused_naming_the_field(
    tmp_path, tiny_bundle, field, value, message
):
    bundle = copy_bundle(tiny_bundle, tmp_path)
    edit(bundle, _set(field, value))
    text = refused(bundle, None)
    assert "bundle.json: " in text and message in text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("classifier.input_size", 48, r"input of shape \[1, 32, 32, 3\].*input_size 48"),
        ("classifier.input_dtype", "uint8", "the model's input is float32, but bundle.json says"),
        ("labels", [f"l{i}" for i in range(7)], r"outputs shape \[1, 8\], but bundle.json lists 7"),
        ("detector.input_size", 64, r"input of shape \[1, 128, 128, 3\].*input_size 64"),
    ],
)
def test_a_manifest_that_disagrees_with_the_model_is_refused(
    tmp_path, tiny_bundle, field, value, message
):
    bundle = copy_bundle(tiny_bundle, tmp_path)
    edit(bundle, _set(field, value))
    refused(bundle, message)


def test_duplicate_json_keys_are_refused(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path)
    text = (bundle / "bundle.json").read_text()
    (bundle / "bundle.json").write_text(
        text.replace('"temperature":', '"temperature": 0.5, "temperature":')
    )
    refused(bundle, "duplicate key 'temperature'")


def test_bundle_error_is_bad_input_and_run_exits_2_before_any_frame(tmp_path, tiny_bundle, capsys):
    assert issubclass(BundleError, InputError) and BundleError.exit_code == EXIT_BAD_INPUT
    bundle = copy_bundle(tiny_bundle, tmp_path)
    edit(bundle, _set("temperature", 0))
    out = tmp_path / "faces.jsonl"
    args = ["run", "--source", str(tmp_path), "--bundle", str(bundle), "--jsonl", str(out)]
    assert main(args) == 2
    assert "'temperature' must be a finite number > 0" in capsys.readouterr().err
    assert not out.exists() and not out.with_name("faces.jsonl.partial").exists()


# Writing: modes, and another user can read it ------------------------------------------------


def test_a_bundle_written_by_root_is_readable_by_another_user(tiny_bundle):
    import tempfile

    parent = Path(tempfile.mkdtemp(prefix="affectlite-modes-"))
    try:
        parent.chmod(0o755)  # mkdtemp's 0700 would hide everything from another user
        bundle = write_bundle(
            parent / "bundle",
            tiny_bundle.classifier_path,
            tiny_bundle.manifest["classifier"],
            detector=tiny_bundle.detector_path,
        )
        assert stat.S_IMODE(bundle.path.stat().st_mode) == 0o755
        for path in bundle.path.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            pytest.skip("reading as another user needs root and setpriv; modes checked")
        script = (
            f"from affectlite.edge_app.bundle import load_bundle; load_bundle({str(bundle.path)!r})"
        )
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        done = subprocess.run(
            [*command, sys.executable, "-c", script], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    finally:
        shutil.rmtree(parent)


# Fuzz: mutated models with matching checksums, and hypothesis manifests -----------------------

LOADER = textwrap.dedent(
    """
    import json, sys
    sys.modules["tensorflow"] = None
    from affectlite.edge_app.bundle import BundleError, load_bundle
    outcomes = {}
    for path in sys.argv[1:]:
        try:
            load_bundle(path)
            outcomes[path] = "loaded"
        except BundleError as error:
            outcomes[path] = "BundleError: " + str(error)
    print(json.dumps(outcomes))
    """
)


def load_in_subprocess(bundles: list[Path]) -> dict[str, str]:
    """Loads every bundle in one fresh interpreter; any exception but BundleError, or a signal,
    fails the test."""
    command = [sys.executable, "-c", LOADER, *map(str, bundles)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"loader crashed (status {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout.splitlines()[-1])


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Flipped bytes, a truncation, an inserted run or a zeroed block."""
    data = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:
        for position in rng.integers(0, len(data), rng.integers(1, 9)):
            data[position] ^= int(rng.integers(1, 256))
    elif kind == 1:
        del data[rng.integers(8, len(data)) :]
    elif kind == 2:
        position = int(rng.integers(0, len(data)))
        data[position:position] = rng.integers(0, 256, int(rng.integers(1, 64)), np.uint8).tobytes()
    else:
        start = int(rng.integers(0, len(data)))
        data[start : start + int(rng.integers(4, 256))] = bytes(256)[
            : len(data[start : start + 256])
        ]
    return bytes(data)


def test_fuzzed_models_with_matching_checksums_load_or_raise_bundle_error(tmp_path, tiny_bundle):
    rng = np.random.default_rng(13)
    bundles = []
    for i in range(60):
        bundle = tmp_path / f"b{i:02d}"
        shutil.copytree(tiny_bundle.path, bundle)
        name = "classifier.tflite" if i % 4 else "face_detector.tflite"
        (bundle / name).write_bytes(mutate((bundle / name).read_bytes(), rng))
        edit(bundle, lambda m: None)  # re-hash: only the model itself can fail the load
        bundles.append(bundle)
    outcomes = load_in_subprocess(bundles)
    assert len(outcomes) == 60
    refusals = [text for text in outcomes.values() if text != "loaded"]
    assert refusals, "no mutation was refused: the fuzzing is not reaching the loader"
    print(f"{len(refusals)} of 60 mutated models refused, {60 - len(refusals)} loaded")


HYPOTHESIS = textwrap.dedent(
    """
    import json, math, shutil, sys, tempfile
    from pathlib import Path
    sys.modules["tensorflow"] = None
    from hypothesis import HealthCheck, given, settings, strategies as st
    from affectlite.edge_app.bundle import BundleError, load_bundle

    source = Path(sys.argv[1])
    original = json.loads((source / "bundle.json").read_text())
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
        st.text(max_size=12), st.sampled_from(["classifier.tflite", "../x", "/etc/passwd"]),
    )
    values = st.recursive(
        scalars, lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ), max_leaves=8,
    )
    paths = st.lists(st.sampled_from(
        ["format", "format_version", "labels", "classifier", "classifier.file",
         "classifier.input_size", "classifier.input_dtype", "detector", "detector.file",
         "detector.input_size", "crop", "crop.margin", "crop.square", "crop.pad_value",
         "temperature", "files", "metrics"]), min_size=1, max_size=3)
    work = Path(tempfile.mkdtemp())
    bundle = work / "b"
    shutil.copytree(source, bundle)
    seen = {"loaded": 0, "refused": 0}

    @settings(max_examples=int(sys.argv[2]), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(paths, st.lists(values, min_size=3, max_size=3), st.booleans())
    def check(fields, new_values, delete):
        manifest = json.loads(json.dumps(original))
        for field, value in zip(fields, new_values):
            *parents, key = field.split(".")
            target = manifest
            for parent in parents:
                target = target.get(parent) if isinstance(target, dict) else None
            if isinstance(target, dict):
                if delete:
                    target.pop(key, None)
                else:
                    target[key] = value
        (bundle / "bundle.json").write_text(json.dumps(manifest))
        try:
            load_bundle(bundle)
            seen["loaded"] += 1
        except BundleError:
            seen["refused"] += 1

    check()
    shutil.rmtree(work)
    print(json.dumps(seen))
    """
)


def test_hypothesis_manifests_load_or_raise_bundle_error(tiny_bundle):
    command = [sys.executable, "-c", HYPOTHESIS, str(tiny_bundle.path), "60"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"status {done.returncode}: {done.stderr[-3000:]}"
    seen = json.loads(done.stdout.splitlines()[-1])
    print(seen)
    assert seen["refused"] > 0 and sum(seen.values()) >= 50, seen
