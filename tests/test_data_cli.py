"""``affectlite data inspect`` and ``affectlite data pack`` on small datasets written here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from affectlite.cli import main
from affectlite.edge_app.labels import LABELS
from affectlite.train.data_cli import inspect_split
from affectlite.train.datasets import DatasetError, load_crop, load_dataset

RNG = np.random.default_rng(1)


def write_image(path: Path, shape) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), RNG.integers(0, 256, shape, dtype=np.uint8))
    return path


@pytest.fixture
def faces(tmp_path) -> Path:
    """train: 2 happy, 3 sad (one corrupt, one tiny) and a text file; val: 1 happy."""
    root = tmp_path / "faces"
    write_image(root / "train" / "happy" / "a.jpg", (48, 64, 3))
    write_image(root / "train" / "happy" / "b.png", (40, 40))
    write_image(root / "train" / "sad" / "c.jpg", (80, 60, 3))
    write_image(root / "train" / "sad" / "tiny.png", (8, 8, 3))
    (root / "train" / "sad" / "corrupt.jpg").write_text("not a JPEG")
    (root / "train" / "sad" / "notes.txt").write_text("about the faces")
    write_image(root / "val" / "happy" / "d.jpg", (50, 50, 3))
    return root


def test_inspect_reports_counts_failures_and_sizes(faces, tmp_path, capsys):
    out = tmp_path / "report" / "inspect.json"
    args = ["data", "inspect", str(faces), "--format", "folder", "--json", str(out)]
    assert main(args + ["--workers", "2"]) == 0
    report = json.loads(out.read_text())
    train, val = report["splits"]["train"], report["splits"]["val"]
    assert (train["samples"], train["readable"], val["readable"]) == (5, 3, 1)
    assert train["counts"] == {"happy": 2, "sad": 3}
    failed = dict(train["failed"])
    assert failed.keys() == {"train/sad/corrupt.jpg", "train/sad/tiny.png"}
    assert "corrupt.jpg: not a readable image" in failed["train/sad/corrupt.jpg"]
    assert "tiny.png: 8×8 px is too small" in failed["train/sad/tiny.png"]
    assert train["skipped"] == [["train/sad/notes.txt", "not an image file: extension '.txt'"]]
    assert train["width"] == {"min": 40, "median": 60.0, "max": 64}
    assert train["height"] == {"min": 40, "median": 48.0, "max": 80}
    assert train["grey"] == 1
    printed = capsys.readouterr().out
    assert "| class | train | val |" in printed
    assert "| happy | 2 | 1 |" in printed
    assert "unreadable train/sad/corrupt.jpg" in printed


def test_data_errors_exit_2_with_the_reason(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    assert main(["data", "inspect", str(tmp_path), "--format", "folder"]) == 2
    assert "affectlite data inspect:" in capsys.readouterr().err
    assert main(["data", "pack", str(tmp_path), "--format", "folder", "--out", "x"]) == 2
    assert "train: no class folders inside" in capsys.readouterr().err


def _records(directory: Path, split: str) -> dict[str, dict]:
    from affectlite.train.readers.packed import read_packed

    return {r["id"].decode(): r for r in read_packed(directory, split).as_numpy_iterator()}


def test_pack_writes_atomic_shards_that_read_back_as_the_same_crops(faces, tmp_path, capsys):
    from affectlite.train.readers.packed import read_manifest

    out = tmp_path / "packed"
    args = [
        "data",
        "pack",
        str(faces),
        "--format",
        "folder",
        "--out",
        str(out),
        "--input-size",
        "32",
    ]
    assert main(args + ["--shard-size", "2"]) == 0
    manifest = read_manifest(out)
    train = manifest["splits"]["train"]
    assert train["files"] == [f"train-0000{i}-of-00002.tfrecord" for i in range(2)]
    assert train["count"] == 3 and train["counts"] == {"happy": 2, "sad": 1}
    assert {sample_id for sample_id, _ in train["failed"]} == {
        "train/sad/corrupt.jpg",
        "train/sad/tiny.png",
    }
    assert manifest["size"] == 32 and manifest["splits"]["val"]["count"] == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
        "val-00000-of-00001.tfrecord",
    ]  # no temporary files left

    records = _records(out, "train")
    index = load_dataset(faces, "folder", "train")
    expected = {s.id: s for s in index.samples if s.id in records}
    assert records.keys() == {"train/happy/a.jpg", "train/happy/b.png", "train/sad/c.jpg"}
    for sample_id, record in records.items():
        sample = expected[sample_id]
        np.testing.assert_array_equal(record["image"], load_crop(sample, 32))  # PNG is lossless
        assert record["label"] == sample.label
        np.testing.assert_array_equal(record["soft"], np.eye(len(LABELS))[sample.label])

    assert main(args + ["--shard-size", "10", "--split", "train"]) == 0
    assert sorted(p.name for p in out.glob("train-*")) == ["train-00000-of-00001.tfrecord"]
    assert len(_records(out, "train")) == 3
    with pytest.raises(DatasetError, match="no packed 'val' split"):
        _records(out, "val")  # the new manifest lists only what this run packed


def test_pack_keeps_ferplus_soft_labels(tmp_path):
    folder = tmp_path / "FER2013Train"
    folder.mkdir()
    (folder / "label.csv").write_text(
        'a.png,"(0, 0, 48, 48)",4,0,0,3,0,0,0,3,0,0\nb.png,"(0, 0, 48, 48)",0,10,0,0,0,0,0,0,0,0\n'
    )
    for name in ("a.png", "b.png"):
        write_image(folder / name, (48, 48))
    out = tmp_path / "packed"
    args = ["data", "pack", str(tmp_path), "--format", "ferplus", "--out", str(out)]
    assert main(args + ["--input-size", "24", "--ferplus-mode", "probability"]) == 0
    records = _records(out, "train")
    soft = dict.fromkeys(LABELS, 0.0) | {"neutral": 0.4, "sad": 0.3, "contempt": 0.3}
    np.testing.assert_allclose(records["FER2013Train/a.png"]["soft"], list(soft.values()))
    assert LABELS[records["FER2013Train/b.png"]["label"]] == "happy"
    assert records["FER2013Train/a.png"]["image"].shape == (24, 24, 3)


def test_read_packed_needs_a_manifest(tmp_path):
    from affectlite.train.readers.packed import read_packed

    with pytest.raises(DatasetError, match="not a packed dataset.*affectlite data pack"):
        read_packed(tmp_path)


def test_inspect_real_ferplus_validation(ferplus_root):
    index = load_dataset(ferplus_root, "ferplus", "val", check_files=True)
    report = inspect_split(index, workers=2, progress=False)
    assert report["readable"] == report["samples"] == len(index.samples)
    assert report["failed"] == []
    assert report["width"] == report["height"] == {"min": 48, "median": 48.0, "max": 48}
    assert report["grey"] == report["samples"]


def test_interrupted_pack_leaves_no_shards_or_manifest(faces, tmp_path, monkeypatch):
    """Fault injection: the third record fails to serialise, as if the disk filled up."""
    from affectlite.edge_app.preprocess import CropPolicy
    from affectlite.train.readers import packed

    real_example, calls = packed._example, []

    def failing_example(sample, png):
        calls.append(sample.id)
        if len(calls) == 3:
            raise OSError("No space left on device")
        return real_example(sample, png)

    monkeypatch.setattr(packed, "_example", failing_example)
    out = tmp_path / "packed"
    index = load_dataset(faces, "folder", "train", check_files=True)
    with pytest.raises(OSError, match="No space left"):
        packed.pack_split(index, out, 32, policy=CropPolicy(), shard_size=1, progress=False)
    assert list(out.iterdir()) == []


def test_readers_and_inspect_run_without_tensorflow(faces):
    code = (
        "import sys; sys.modules['tensorflow'] = sys.modules['keras'] = None\n"
        "from affectlite.cli import main\n"
        f"sys.exit(main(['data', 'inspect', {str(faces)!r}, '--format', 'folder']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "| happy | 2 | 1 |" in result.stdout
