"""`affectlite evaluate --detect`: whole photos through BlazeFace and the device crop."""

from __future__ import annotations

import json

import cv2
import numpy as np


def _write(path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_detect_counts_found_and_missed_faces_in_whole_photos(
    tiny_bundle, sample_photos, face_mosaic, tmp_path
):
    from affectlite.cli import main

    photos = tmp_path / "photos"
    _write(photos / "happy" / "astronaut.png", sample_photos["astronaut"])
    _write(photos / "happy" / "coffee.png", sample_photos["coffee"])
    _write(photos / "happy" / "mosaic.png", face_mosaic)
    _write(photos / "neutral" / "grace_hopper.png", sample_photos["grace_hopper"])
    _write(photos / "neutral" / "chelsea.png", sample_photos["chelsea"])
    (photos / "neutral" / "broken.png").write_bytes(b"not a png")
    report_path = tmp_path / "report.json"

    code = main(
        [
            "evaluate", "--model", str(tiny_bundle.path), "--data", str(photos), "--format",
            "folder", "--split", "train", "--detect", "--threads", "1", "--json",
            str(report_path),
        ]
    )  # fmt: skip

    assert code == 0
    report = json.loads(report_path.read_text())
    detection = report["detection"]
    assert detection["images"] == 5
    assert detection["faces_found"] == 3
    assert detection["no_face"] == 2
    assert sorted(detection["no_face_files"]) == ["happy/coffee.png", "neutral/chelsea.png"]
    assert detection["several_faces"] == 1
    assert [item[0] for item in detection["unreadable"]] == ["neutral/broken.png"]
    assert report["n"] == 3
    assert sum(row["support"] for row in report["per_class"].values()) == 3
    assert report["per_class"]["happy"]["support"] == 2


def test_detect_crops_the_largest_face_with_the_bundle_policy(tiny_bundle, face_mosaic):
    from affectlite.edge_app.detector import FaceDetector
    from affectlite.edge_app.pipeline import PipelineConfig, detect_faces
    from affectlite.edge_app.preprocess import crop_face
    from affectlite.train.datasets import Sample
    from affectlite.train.evaluate import detect_split, load_predictor

    predictor = load_predictor(tiny_bundle.path, num_threads=1)

    class Index:  # one in-memory sample, as the FER2013 CSV reader yields them
        root, split, skipped = "mosaic", "train", []
        samples = [Sample("mosaic", 1, pixels=face_mosaic)]

    found = detect_split(Index, predictor, num_threads=1)
    assert found.summary["faces_found"] == 1 and found.summary["several_faces"] == 1

    config = PipelineConfig()
    detector = FaceDetector(tiny_bundle.detector_path, 1)
    faces = detect_faces(detector, face_mosaic, config.detect_width, config.min_face)
    assert len(faces) > 1
    largest = max(faces, key=lambda face: face.area)
    expected = crop_face(face_mosaic, largest.box, 32, tiny_bundle.crop_policy)
    np.testing.assert_array_equal(found.images[0], expected)


def test_model_default_is_the_shipped_bundle(tiny_bundle, monkeypatch):
    from affectlite.edge_app import bundle
    from affectlite.train import evaluate

    monkeypatch.setattr(bundle, "DEFAULT_BUNDLE", tiny_bundle.path)
    monkeypatch.setattr(evaluate, "DEFAULT_BUNDLE", tiny_bundle.path)
    predictor = evaluate.load_predictor("default", num_threads=1)
    assert predictor.kind == "bundle" and predictor.input_size == 32
