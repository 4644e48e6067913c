"""Representative sets (training split only, stratified, camera frames) and temperature scaling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from affectlite.calibration.representative import (
    IMAGES_FILE,
    UNLABELLED,
    RepresentativeError,
    RepresentativeSet,
    build_representative,
    from_dataset,
    from_frames,
)
from affectlite.calibration.temperature import (
    calibrate_temperature,
    expected_calibration_error,
    reliability_diagram,
)
from affectlite.cli import main
from affectlite.edge_app.classifier import softmax
from affectlite.edge_app.detector import make_detector
from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.preprocess import read_image
from affectlite.train.datasets import load_dataset

SPLIT_SIZES = {"train": 6, "val": 2, "test": 2}


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory) -> Path:
    """A class-per-folder dataset with train, val and test splits of small random images."""
    root = tmp_path_factory.mktemp("folder_dataset")
    rng = np.random.default_rng(0)
    for split, count in SPLIT_SIZES.items():
        for label in LABELS:
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
                cv2.imwrite(str(folder / f"{i}.png"), image)
    return root


def _face_photos(sample_photos: dict) -> list[np.ndarray]:
    """Two real portraits and shifted, scaled and mirrored variants of each."""
    photos = []
    for name in ("astronaut", "grace_hopper"):
        image = sample_photos[name]
        height, width = image.shape[:2]
        for scale, dx, dy, mirror in ((1, 0, 0, False), (0.8, 40, -20, False), (1.2, -20, 0, True)):
            warp = np.float32(
                [
                    [scale, 0, dx + (1 - scale) * width / 2],
                    [0, scale, dy + (1 - scale) * height / 2],
                ]
            )
            moved = cv2.warpAffine(image, warp, (width, height), borderValue=(90, 90, 90))
            photos.append(np.ascontiguousarray(moved[:, ::-1]) if mirror else moved)
    return photos


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, sample_photos) -> Path:
    """Six portraits and one photo without a face (coffee)."""
    folder = tmp_path_factory.mktemp("photos")
    for i, photo in enumerate(_face_photos(sample_photos)):
        cv2.imwrite(str(folder / f"photo{i}.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    cv2.imwrite(
        str(folder / "coffee.jpg"), cv2.cvtColor(sample_photos["coffee"], cv2.COLOR_RGB2BGR)
    )
    return folder


def _ids(root: Path, split: str) -> set[str]:
    return {sample.id for sample in load_dataset(root, "folder", split).samples}


def test_representative_set_comes_from_train_split_only(folder_dataset, tmp_path):
    representative = from_dataset(folder_dataset, "folder", n=24, seed=1, size=16)

    ids = set(representative.ids)
    assert ids <= _ids(folder_dataset, "train")
    assert not ids & (_ids(folder_dataset, "val") | _ids(folder_dataset, "test"))
    assert set(representative.counts().values()) == {3}  # 24 images over 8 classes
    assert representative.images.shape == (24, 16, 16, 3)
    assert representative.images.dtype == np.uint8
    again = from_dataset(folder_dataset, "folder", n=24, seed=1, size=16)
    assert again.ids == representative.ids
    other = from_dataset(folder_dataset, "folder", n=24, seed=2, size=16)
    assert other.ids != representative.ids

    folder = representative.save(tmp_path / "rep")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["split"] == "train" and manifest["seed"] == 1
    assert manifest["input_size"] == 16 and manifest["ids"] == representative.ids
    assert manifest["counts_per_class"] == representative.counts()
    assert manifest["crop"] == {"margin": 0.2, "square": True, "pad_value": 0}
    loaded = RepresentativeSet.load(folder)
    np.testing.assert_array_equal(loaded.images, representative.images)
    assert loaded.ids == representative.ids
    assert list(loaded.labels) == list(representative.labels)


def test_stratified_draw_gives_small_classes_all_they_have():
    labels = np.array([0] * 40 + [1] * 3 + [2] * 40)
    images = np.zeros((len(labels), 8, 8, 3), np.uint8)
    counts = build_representative(images, labels, n=30, seed=0).counts()
    assert counts["happy"] == 3
    assert sorted([counts["neutral"], counts["sad"]]) == [13, 14]


def test_held_out_ids_are_never_drawn():
    images = np.arange(20, dtype=np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)
    labels = np.arange(20) % 2
    ids = [f"img{i}" for i in range(20)]
    held_out = {f"img{i}" for i in range(0, 20, 3)}
    representative = build_representative(images, labels, ids, n=100, exclude_ids=held_out)
    assert len(representative) == 20 - len(held_out)
    assert not set(representative.ids) & held_out


def test_unreadable_samples_are_replaced_from_the_same_class(folder_dataset):
    from affectlite.train.readers.base import Sample

    train = load_dataset(folder_dataset, "folder", "train").samples
    broken = [Sample(f"missing{i}", 0, str(folder_dataset / f"missing{i}.png")) for i in range(4)]
    representative = build_representative(broken + train, n=48, seed=0, size=16)
    assert len(representative) == 48
    assert representative.counts()["neutral"] == 6  # all six readable ones, past the broken
    assert not any(i.startswith("missing") for i in representative.ids)
    assert representative.info["skipped"] >= 1


def test_representative_set_rejects_bad_data(tmp_path):
    good = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(RepresentativeError, match="at least one image"):
        RepresentativeSet(np.zeros((0, 8, 8, 3), np.uint8), [], [])
    with pytest.raises(RepresentativeError, match=r"\(N, S, S, 3\)"):
        RepresentativeSet(np.zeros((4, 8, 6, 3), np.uint8), [0] * 4, list("abcd"))
    with pytest.raises(RepresentativeError, match="uint8"):
        RepresentativeSet(good.astype(np.float32), [0] * 4, list("abcd"))
    with pytest.raises(RepresentativeError, match="unique"):
        RepresentativeSet(good, [0] * 4, list("aacd"))

    folder = RepresentativeSet(good, [0] * 4, list("abcd")).save(tmp_path / "rep")
    with pytest.raises(RepresentativeError, match="already exists"):
        RepresentativeSet(good, [0] * 4, list("abcd")).save(folder)
    with np.load(folder / IMAGES_FILE) as stored:
        arrays = dict(stored)
    np.savez_compressed(folder / IMAGES_FILE, **{**arrays, "images": arrays["images"] + 1})
    with pytest.raises(RepresentativeError, match="checksum mismatch"):
        RepresentativeSet.load(folder)
    (folder / IMAGES_FILE).unlink()
    with pytest.raises(RepresentativeError, match="images.npz: missing"):
        RepresentativeSet.load(folder)


def _overconfident_logits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a ~65 %-accurate classifier, multiplied by 6 so it is far too sure."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(LABELS), n)
    logits = rng.normal(0, 1, (n, len(LABELS)))
    logits[np.arange(n), labels] += 1.6
    return 6.0 * logits, labels


def test_temperature_fixes_an_overconfident_model(tmp_path):
    logits, labels = _overconfident_logits(2000)
    fit = calibrate_temperature(logits, labels)
    assert fit.temperature > 3.0
    assert fit.ece_after < fit.ece_before / 3
    assert fit.nll_after < fit.nll_before
    assert np.array_equal(softmax(logits, fit.temperature).argmax(1), logits.argmax(1))
    # A well-calibrated model keeps T close to 1.
    calm = calibrate_temperature(logits / fit.temperature, labels)
    assert 0.8 < calm.temperature < 1.25

    png = reliability_diagram(logits, labels, fit.temperature, tmp_path / "reliability.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert expected_calibration_error(softmax(logits), labels) == pytest.approx(
        fit.ece_before, abs=0.05
    )


def test_from_frames_keeps_detected_faces(photo_folder):
    detector = make_detector("blazeface")
    frames = [read_image(path) for path in sorted(photo_folder.iterdir())]
    representative = from_frames(frames, detector, 64, n=100, source="photos")

    assert len(representative) == 6  # six portraits; the coffee cup has no face
    assert representative.info["frames_used"] == 7
    assert representative.info["frames_with_face"] == 6
    assert set(representative.labels) == {UNLABELLED}
    for crop in representative.images:  # every crop is itself a face the detector finds again
        assert detector.detect(cv2.resize(crop, (192, 192)))


def test_calibrate_cli_from_photos_and_video_makes_a_bundle(photo_folder, sample_photos, tmp_path):
    from affectlite.convert.export import BundleOptions, convert_to_bundle
    from affectlite.convert.quantization import QuantizationConfig
    from affectlite.edge_app.bundle import load_bundle

    rep_dir = tmp_path / "from_photos"
    assert (
        main(
            [
                "calibrate",
                "--source",
                str(photo_folder),
                "--input-size",
                "32",
                "--out",
                str(rep_dir),
            ]
        )
        == 0
    )
    photos = RepresentativeSet.load(rep_dir)
    assert photos.images.shape == (6, 32, 32, 3)

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for frame in range(20):
        shift = np.float32([[1, 0, 3 * frame - 30], [0, 1, 0]])
        moved = cv2.warpAffine(sample_photos["astronaut"], shift, (512, 512))
        writer.write(cv2.cvtColor(moved, cv2.COLOR_RGB2BGR))
    writer.release()

    bundle_dir = tmp_path / "bundle"
    training = np.concatenate([photos.images] * 3)  # int8 needs at least 16 images
    config = QuantizationConfig.for_int8(training)
    options = BundleOptions(calibration=photos.summary())
    convert_to_bundle(_tiny_model(32), config, bundle_dir, options=options)
    bundle = load_bundle(bundle_dir)
    assert bundle.detector_path is not None
    assert bundle.metrics["calibration"]["frames_with_face"] == 6

    video_dir = tmp_path / "from_video"
    assert (
        main(
            [
                "calibrate",
                "--source",
                str(video),
                "--bundle",
                str(bundle_dir),
                "--every",
                "2",
                "--out",
                str(video_dir),
            ]
        )
        == 0
    )
    from_video = RepresentativeSet.load(video_dir)
    assert len(from_video) == 10 and from_video.input_size == bundle.input_size
    assert from_video.info["frames_with_face"] == 10


def _tiny_model(size: int):
    import keras

    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(len(LABELS))(x), name="tiny")


def test_calibrate_cli_errors(photo_folder, tiny_bundle, tmp_path, capsys):
    blank = tmp_path / "blank"
    blank.mkdir()
    cv2.imwrite(str(blank / "grey.png"), np.full((200, 200, 3), 100, np.uint8))
    assert main(["calibrate", "--source", str(blank), "--out", str(tmp_path / "a")]) == 2
    assert "No face found in 1 frames" in capsys.readouterr().err

    assert (
        main(["calibrate", "--source", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "b")])
        == 2
    )
    assert "no such file or folder" in capsys.readouterr().err

    assert main(["calibrate", "--out", str(tmp_path / "c")]) == 2
    assert "--data PATH --format F" in capsys.readouterr().err

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.path, bundle)
    with open(bundle / "classifier.tflite", "ab") as handle:
        handle.write(b"tampered")
    assert (
        main(
            [
                "calibrate",
                "--source",
                str(photo_folder),
                "--bundle",
                str(bundle),
                "--out",
                str(tmp_path / "d"),
            ]
        )
        == 2
    )
    assert "checksum mismatch" in capsys.readouterr().err
    shutil.rmtree(bundle)
    assert not (tmp_path / "d").exists()


def test_ferplus_representative_set_has_no_validation_image(ferplus_root):
    representative = from_dataset(ferplus_root, "ferplus", n=64, seed=0, size=48)
    valid = {sample.id for sample in load_dataset(ferplus_root, "ferplus", "val").samples}
    assert len(representative) == 64 and not set(representative.ids) & valid
    assert all(i.startswith("FER2013Train/") for i in representative.ids)
    assert len(representative.counts()) == len(LABELS)  # every class represented


def test_a_temperature_that_hurts_held_out_calibration_is_not_kept():
    from affectlite.convert.export import accept_temperature

    hurts = accept_temperature({"temperature": 0.9, "ece_before": 0.02, "ece_after": 0.04})
    assert hurts["temperature"] == 1.0 and hurts["fitted"] is False
    assert hurts["fitted_temperature"] == 0.9
    helps = accept_temperature({"temperature": 3.0, "ece_before": 0.2, "ece_after": 0.03})
    assert helps["temperature"] == 3.0 and helps["fitted"] is True
