"""``affectlite data inspect`` and ``affectlite data pack`` on small datasets written here."""

from __future__ import annotations

import json
import os
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


def _records(directory: Path, split: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{id: (image, target)}`` of a packed split, read through ``open_packed``."""
    from affectlite.train.readers.packed import open_packed

    source = open_packed(directory, split)
    images = source.read(np.arange(len(source)))
    return {i: (image, t) for i, image, t in zip(source.ids, images, source.targets)}


PACK = ["data", "pack", "--format", "folder", "--input-size", "32", "--workers", "2"]


def test_pack_writes_npy_files_that_read_back_as_the_same_crops(faces, tmp_path, capsys):
    from affectlite.train.readers.packed import read_manifest

    out = tmp_path / "packed"
    assert main(PACK + [str(faces), "--out", str(out)]) == 0
    manifest = read_manifest(out)
    train = manifest["splits"]["train"]
    assert train["count"] == 3 and train["counts"] == {"happy": 2, "sad": 1}
    assert train["channels"] == 3  # a.jpg and c.jpg are colour
    assert {sample_id for sample_id, _ in train["failed"]} == {
        "train/sad/corrupt.jpg",
        "train/sad/tiny.png",
    }
    assert train["skipped_by_reason"] == {"not an image file": 1}
    assert manifest["size"] == 32 and manifest["splits"]["val"]["count"] == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "train-ids.json",
        "train-images.npy",
        "train-targets.npy",
        "val-ids.json",
        "val-images.npy",
        "val-targets.npy",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces", "packed"]  # no staging left
    # Plain .npy files, cut to the 3 faces that loaded out of 5 samples:
    assert np.load(out / "train-images.npy").shape == (3, 32, 32, 3)
    assert np.load(out / "train-targets.npy").dtype == np.float32
    err = capsys.readouterr().err
    assert "pack train: 5/5 (100 %, " in err  # not a terminal: a line per 10 %

    records = _records(out, "train")
    index = load_dataset(faces, "folder", "train")
    expected = {s.id: s for s in index.samples if s.id in records}
    assert list(records) == ["train/happy/a.jpg", "train/happy/b.png", "train/sad/c.jpg"]
    for sample_id, (image, target) in records.items():
        sample = expected[sample_id]
        np.testing.assert_array_equal(image, load_crop(sample, 32))
        np.testing.assert_array_equal(target, np.eye(len(LABELS))[sample.label])

    assert main(PACK + [str(faces), "--out", str(out), "--split", "train"]) == 0
    assert sorted(p.name for p in out.glob("val-*")) == []
    assert len(_records(out, "train")) == 3
    with pytest.raises(DatasetError, match="no packed 'val' split"):
        _records(out, "val")  # the new manifest lists only what this run packed


def test_grey_faces_are_stored_with_one_channel_until_a_colour_one_arrives(tmp_path):
    from affectlite.train.readers.packed import open_packed

    grey_then_colour = tmp_path / "mixed"
    for name in ("a.png", "b.png"):
        write_image(grey_then_colour / "train" / "happy" / name, (40, 40))
    write_image(grey_then_colour / "train" / "sad" / "c.png", (40, 40, 3))
    write_image(grey_then_colour / "val" / "sad" / "d.png", (40, 40))
    out = tmp_path / "packed"
    assert main(PACK + [str(grey_then_colour), "--out", str(out)]) == 0
    train, val = open_packed(out, "train"), open_packed(out, "val")
    assert (train.channels, val.channels) == (3, 1)
    assert np.load(out / "val-images.npy").shape == (1, 32, 32, 1)
    index = load_dataset(grey_then_colour, "folder", "train")
    crops = np.stack([load_crop(sample, 32) for sample in index.samples])
    np.testing.assert_array_equal(train.read(np.arange(3)), crops)  # grey rows copied over
    (val_sample,) = load_dataset(grey_then_colour, "folder", "val").samples
    np.testing.assert_array_equal(val.read(np.array([0]))[0], load_crop(val_sample, 32))


def test_read_coalesces_runs_and_wants_sorted_in_range_indices(faces, tmp_path):
    from affectlite.train.readers.packed import open_packed

    out = tmp_path / "packed"
    assert main(PACK + [str(faces), "--out", str(out), "--split", "train"]) == 0
    source = open_packed(out, "train")
    every = source.read(np.arange(3))
    for indices in ([0, 2], [1, 2], [0, 0, 2], [2], []):
        batch = source.read(np.array(indices, int))
        assert batch.shape == (len(indices), 32, 32, 3) and batch.dtype == np.uint8
        np.testing.assert_array_equal(batch, every[indices])
    with pytest.raises(ValueError, match="sorted ascending"):
        source.read(np.array([2, 0]))
    with pytest.raises(IndexError, match="the split has 3"):
        source.read(np.array([1, 3]))
    np.testing.assert_array_equal(source.load().images, every)


def test_a_limited_packed_split_reads_the_drawn_faces(tmp_path):
    from affectlite.train.datasets import drawn
    from affectlite.train.readers.packed import open_packed

    root = tmp_path / "many"
    for i in range(12):
        write_image(root / "train" / ("happy", "sad")[i % 2] / f"{i}.png", (40, 40, 3))
    out = tmp_path / "packed"
    assert main(PACK + [str(root), "--out", str(out), "--split", "train"]) == 0
    every = open_packed(out, "train")
    limited = every.limited(5, seed=3)
    keep = drawn(12, 5, seed=3)
    assert len(limited) == 5 and limited.ids == [every.ids[i] for i in keep]
    np.testing.assert_array_equal(limited.targets, every.targets[keep])
    np.testing.assert_array_equal(limited.read(np.arange(5)), every.read(keep))
    np.testing.assert_array_equal(limited.read(np.array([1, 3])), every.read(keep[[1, 3]]))
    again = limited.limited(2, seed=0)  # a draw from a draw maps to the file's rows
    np.testing.assert_array_equal(again.read(np.arange(2)), every.read(keep[drawn(5, 2, 0)]))
    assert every.limited(0, seed=3) is every and every.limited(12, seed=3) is every


def test_training_on_a_pack_refuses_holdout_before_reading_it(faces, tmp_path, capsys):
    out = tmp_path / "packed"
    assert main(PACK + [str(faces), "--out", str(out)]) == 0
    run = tmp_path / "run"
    argv = ["train", "--data", str(out), "--format", "packed", "--holdout", "0.1"]
    argv += ["--backbone", "compact", "--weights", "none", "--out", str(run)]
    assert main(argv) == 2
    assert "--holdout 0.1: a packed folder validates on a split packed with it" in (
        capsys.readouterr().err
    )
    assert not run.exists()


def test_pack_keeps_ferplus_soft_labels_and_stores_grey_faces_once(tmp_path):
    from affectlite.train.readers.packed import open_packed

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
    np.testing.assert_allclose(records["FER2013Train/a.png"][1], list(soft.values()))
    assert LABELS[records["FER2013Train/b.png"][1].argmax()] == "happy"
    assert records["FER2013Train/a.png"][0].shape == (24, 24, 3)
    assert open_packed(out, "train").channels == 1
    assert (out / "train-images.npy").stat().st_size < 2 * 24 * 24 + 256  # 1 byte a pixel


def test_open_packed_needs_a_manifest(tmp_path):
    from affectlite.train.readers.packed import open_packed

    with pytest.raises(DatasetError, match="not a packed dataset.*affectlite data pack"):
        open_packed(tmp_path)


def test_a_tfrecord_pack_gets_the_command_that_repacks_it(tmp_path, capsys):
    from affectlite.train.readers.packed import open_packed

    old = tmp_path / "old"
    old.mkdir()
    (old / "train-00000-of-00001.tfrecord").write_bytes(b"\0" * 16)
    manifest = {"version": 1, "root": "/data/raf", "format": "rafdb", "size": 96, "splits": {}}
    (old / "manifest.json").write_text(json.dumps(manifest))
    command = f"affectlite data pack /data/raf --format rafdb --out {old} --input-size 96"
    with pytest.raises(DatasetError, match=f"TFRecord pack .* repack it: {command}$"):
        open_packed(old, "train")


def test_pack_refuses_a_folder_that_is_not_a_pack(faces, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(PACK + [str(faces), "--out", str(out)]) == 2
    assert "not a packed dataset (it holds notes.txt); choose an empty" in capsys.readouterr().err
    (out / "manifest.json").write_text("{}")  # a pack with the user's notes beside it
    assert main(PACK + [str(faces), "--out", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "notes.txt"]
    (out / "notes.txt").unlink()
    (out / "train-00000-of-00001.tfrecord").write_bytes(b"old")  # a version-1 pack is replaced
    assert main(PACK + [str(faces), "--out", str(out)]) == 0
    assert not list(out.glob("*.tfrecord"))


def test_inspect_real_ferplus_validation(ferplus_root):
    index = load_dataset(ferplus_root, "ferplus", "val", check_files=True)
    report = inspect_split(index, workers=2, progress=False)
    assert report["readable"] == report["samples"] == len(index.samples)
    assert report["failed"] == []
    assert report["width"] == report["height"] == {"min": 48, "median": 48.0, "max": 48}
    assert report["grey"] == report["samples"]


def test_interrupted_pack_leaves_no_pack_and_keeps_the_previous_one(faces, tmp_path, monkeypatch):
    """Fault injection: the third face fails to write, as if the disk filled up."""
    from affectlite.train.readers import packed

    out = tmp_path / "packed"
    index = load_dataset(faces, "folder", "train", check_files=True)
    source = {"root": str(faces), "format": "folder"}
    real_append, calls = packed._ImageFile.append, []

    def failing_append(self, crop):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("No space left on device")
        real_append(self, crop)

    monkeypatch.setattr(packed._ImageFile, "append", failing_append)
    with pytest.raises(OSError, match="No space left"):
        packed.pack([index], out, 32, source=source, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces"]  # no pack, no staging

    monkeypatch.setattr(packed._ImageFile, "append", real_append)
    packed.pack([index], out, 32, source=source, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls.clear()
    monkeypatch.setattr(packed._ImageFile, "append", failing_append)
    with pytest.raises(OSError, match="No space left"):
        packed.pack([index], out, 24, source=source, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old pack is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces", "packed"]


_NO_TENSORFLOW = """
import importlib.abc, sys
class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, NoTensorFlow())
"""


def test_readers_inspect_pack_and_read_run_without_tensorflow(faces, tmp_path):
    out = tmp_path / "packed"
    code = _NO_TENSORFLOW + (
        "import numpy as np\n"
        "from affectlite.cli import main\n"
        f"assert main(['data', 'inspect', {str(faces)!r}, '--format', 'folder']) == 0\n"
        f"assert main(['data', 'pack', {str(faces)!r}, '--format', 'folder',"
        f" '--out', {str(out)!r}, '--input-size', '32']) == 0\n"
        "from affectlite.train.readers.packed import open_packed\n"
        f"print(open_packed({str(out)!r}, 'train').read(np.arange(3)).shape)\n"
        "assert not {'tensorflow', 'keras'} & set(sys.modules), 'TensorFlow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "| happy | 2 | 1 |" in result.stdout
    assert "(3, 32, 32, 3)" in result.stdout


_BOUNDED_READ = """
import hashlib, json, resource, sys
import numpy as np
from affectlite.train.readers.packed import open_packed

source = open_packed(sys.argv[1], "train")
size = source.path.stat().st_size
in_use = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
limit = in_use + 48 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    np.load(source.path)
    whole = "loaded"
except MemoryError:
    whole = "MemoryError"
digests = []
for start in range(0, len(source), 16):
    batch = source.read(np.arange(start, min(start + 16, len(source))))
    digests += [hashlib.sha1(image.tobytes()).hexdigest() for image in batch]
print(json.dumps({"size": size, "limit": limit, "whole": whole, "digests": digests}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux's")
def test_a_split_larger_than_the_memory_given_streams_from_disk(tmp_path):
    """240 colour faces at 512 px (189 MB) read in batches under a 48 MiB headroom."""
    import hashlib

    root = tmp_path / "faces"
    for i in range(240):
        write_image(root / "train" / LABELS[i % 8] / f"{i:03d}.png", (64, 64, 3))
    out = tmp_path / "packed"
    assert (
        main(
            [
                "data",
                "pack",
                str(root),
                "--format",
                "folder",
                "--out",
                str(out),
                "--input-size",
                "512",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", _BOUNDED_READ, str(out)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["size"] > report["limit"]  # the split does not fit in the memory given
    assert report["whole"] == "MemoryError"  # so loading it whole fails there
    ids = json.loads((out / "train-ids.json").read_text())
    samples = {s.id: s for s in load_dataset(root, "folder", "train").samples}
    expected = [hashlib.sha1(load_crop(samples[i], 512).tobytes()).hexdigest() for i in ids]
    assert report["digests"] == expected
