"""The device contract: labels, crop policy, bundle format and the TF-free edge path."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from affectlite.edge_app import labels
from affectlite.edge_app.bundle import BundleError, load_bundle, write_bundle
from affectlite.edge_app.preprocess import CropPolicy, ImageError, crop_face, expand_box, to_rgb


def test_label_order_and_dataset_mappings():
    assert labels.LABELS == (
        "neutral",
        "happy",
        "sad",
        "surprise",
        "fear",
        "disgust",
        "anger",
        "contempt",
    )
    assert [labels.LABELS[labels.FER2013[i]] for i in range(7)] == [
        "anger",
        "disgust",
        "fear",
        "happy",
        "sad",
        "surprise",
        "neutral",
    ]
    fer_plus = {labels.FERPLUS_COLUMNS[c]: labels.LABELS[k] for c, k in labels.FERPLUS.items()}
    assert fer_plus["happiness"] == "happy" and fer_plus["sadness"] == "sad"
    assert fer_plus["anger"] == "anger" and fer_plus["contempt"] == "contempt"
    assert labels.LABELS[labels.RAFDB[4]] == "happy" and labels.LABELS[labels.RAFDB[7]] == "neutral"
    assert labels.label_index("Angry") == 6
    with pytest.raises(ValueError, match="Unknown emotion"):
        labels.label_index("bored")


def test_crop_is_square_with_margin_and_padded_at_the_border():
    image = np.full((100, 200, 3), 200, np.uint8)
    x0, y0, x1, y1 = expand_box((150, 10, 40, 20), CropPolicy(margin=0.5))
    assert x1 - x0 == y1 - y0 == 60
    crop = crop_face(image, (170, 0, 40, 40), 32, CropPolicy(margin=0.5, pad_value=0))
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    assert crop[0, 16].tolist() == [0, 0, 0]  # above the image: padded
    assert crop[16, 8].tolist() == [200, 200, 200]  # inside the image


def test_grey_and_alpha_sources_become_rgb():
    assert to_rgb(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert to_rgb(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 3)
    assert to_rgb(np.full((2, 2), 65535, np.uint16)).max() == 255
    with pytest.raises(ImageError):
        crop_face(np.zeros((10, 10, 3), np.uint8), (50, 50, 5, 5), 8)


def _small_bundle(tmp_path, tiny_bundle):
    """A classifier-only bundle holding the tiny test classifier (32 px, float32 input)."""
    model = tmp_path / "m.tflite"
    model.write_bytes(tiny_bundle.classifier_path.read_bytes())
    info = {"input_size": 32, "input_dtype": "float32"}
    return write_bundle(tmp_path / "bundle", model, info)


def test_bundle_round_trip_and_refusal_to_overwrite(tmp_path, tiny_bundle):
    bundle = _small_bundle(tmp_path, tiny_bundle)
    manifest = json.loads((bundle.path / "bundle.json").read_text())
    assert manifest["labels"] == list(labels.LABELS)
    assert set(manifest["files"]) == {"classifier.tflite"}
    assert load_bundle(bundle.path).input_size == 32
    with pytest.raises(BundleError, match="already exists"):
        write_bundle(bundle.path, tmp_path / "m.tflite", bundle.manifest["classifier"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]


def test_a_flipped_byte_fails_loading_with_the_file_named(tmp_path, tiny_bundle):
    bundle = _small_bundle(tmp_path, tiny_bundle)
    data = bytearray(bundle.classifier_path.read_bytes())
    data[10] ^= 0xFF
    bundle.classifier_path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"classifier\.tflite: checksum mismatch"):
        load_bundle(bundle.path)


def test_missing_file_and_bad_manifest_are_named(tmp_path, tiny_bundle):
    bundle = _small_bundle(tmp_path, tiny_bundle)
    bundle.classifier_path.unlink()
    with pytest.raises(BundleError, match="classifier.tflite: listed in the manifest but missing"):
        load_bundle(bundle.path)
    (bundle.path / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="bundle.json: unreadable manifest"):
        load_bundle(bundle.path)


def test_edge_contract_classifies_a_crop_without_tensorflow(tiny_bundle):
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["tensorflow"] = None  # any `import tensorflow` now raises ImportError
        sys.modules["keras"] = None
        import numpy as np
        from affectlite.edge_app.bundle import load_bundle
        from affectlite.edge_app.classifier import EmotionClassifier
        from affectlite.edge_app.preprocess import crop_face
        bundle = load_bundle({str(tiny_bundle.path)!r})
        classifier = EmotionClassifier.from_bundle(bundle, num_threads=1)
        frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
        crop = crop_face(frame, (40, 30, 50, 60), bundle.input_size, bundle.crop_policy)
        probs = classifier.predict(np.stack([crop, crop[:, ::-1]]))
        assert probs.shape == (2, 8), probs.shape
        assert abs(float(probs.sum()) - 2.0) < 1e-4
        print(classifier.runtime.name)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ai-edge-litert"


def test_cli_lists_commands_and_rejects_unknown():
    from affectlite.cli import COMMANDS, main

    assert {"demo", "train", "calibrate", "convert", "evaluate", "bench", "run", "app"} <= set(
        COMMANDS
    )
    assert main(["--help"]) == 0
    assert main(["no-such-command"]) == 2


def test_wheel_installs_one_namespace_only(tmp_path):
    """Every module of the wheel lives under affectlite/: no top-level `train` or `convert`."""
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(root)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("affectlite-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"affectlite"}, tops
    for package in ("train", "train/readers", "convert", "calibration", "edge_app", "benchmarks"):
        assert f"affectlite/{package}/__init__.py" in names, package
    assert "affectlite/edge_app/affectlite.kv" in names
