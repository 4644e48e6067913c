"""Dataset readers on small datasets written by the tests in each dataset's real layout.

Each reader gets well-formed rows and the bad inputs of issue 7 (malformed rows, labels out of
range, bad boxes, missing files, unknown folders, …); the tests check the exact outcome: the
kept samples, the skipped row with its file:line and reason, or the error naming the file.
"""

from __future__ import annotations

import csv
import io
import struct
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from affectlite.edge_app.labels import FERPLUS_COLUMNS, LABELS, LABELS_7, label_index
from affectlite.edge_app.preprocess import ImageError
from affectlite.train.datasets import (
    DatasetError,
    DatasetIndex,
    Sample,
    available_splits,
    load_crop,
    load_dataset,
    load_image,
    split_holdout,
)
from affectlite.train.readers.base import Skip
from affectlite.train.readers.ferplus import vote_label

RNG = np.random.default_rng(0)
AFFECTNET_HEADER = (
    "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
    "expression,valence,arousal"
)


def write_image(path: Path, shape=(64, 64, 3), dtype=np.uint8, value: int | None = None) -> Path:
    """Writes a random (or constant) image with OpenCV, creating the folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if value is None:
        image = RNG.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    else:
        image = np.full(shape, value, dtype)
    assert cv2.imwrite(str(path), image)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def skipped(index) -> dict[str, str]:
    return dict(index.skipped)


# ---------------------------------------------------------------- argument checks


def test_unknown_format_split_or_mode_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset format 'imagenet'.*affectnet"):
        load_dataset(tmp_path, "imagenet")
    with pytest.raises(ValueError, match="Unknown split 'validation'"):
        load_dataset(tmp_path, "folder", "validation")
    with pytest.raises(ValueError, match="Unknown FER\\+ mode 'vote'"):
        load_dataset(tmp_path, "ferplus", ferplus_mode="vote")


def test_missing_root_names_the_path(tmp_path):
    with pytest.raises(DatasetError, match="nowhere: no such file or folder"):
        load_dataset(tmp_path / "nowhere", "folder")


# ---------------------------------------------------------------- AffectNet


@pytest.fixture
def affectnet(tmp_path) -> Path:
    root = tmp_path / "affectnet"
    images = root / "Manually_Annotated_Images"
    for name in ("1/a.jpg", "1/b.png", "2/c.jpg", "2/d.jpg", "3/e.jpg"):
        write_image(images / name, (120, 100, 3))
    (images / "3" / "empty.jpg").write_bytes(b"")
    rows = [
        AFFECTNET_HEADER,
        '1/a.jpg,10,20,60,70,"1.0;2.0;3.0",1,0.5,0.2',  # 2: happy
        "1/b.png,5,5,50,50,,7,0.1,0.1",  # 3: contempt
        "2/c.jpg,0,0,90,100,,8,0,0",  # 4: None
        "2/c.jpg,0,0,90,100,,9,0,0",  # 5: Uncertain
        "2/c.jpg,0,0,90,100,,10,0,0",  # 6: No-Face
        "2/c.jpg,0,0,90,100,,11,0,0",  # 7: out of range
        "2/c.jpg,0,0,90,100,,happy,0,0",  # 8: not an integer
        "2/c.jpg,0,0,90,100,,1",  # 9: too few fields
        "2/d.jpg,0,0,0,50,,2,0,0",  # 10: zero width
        "2/d.jpg,0,0,nan,50,,2,0,0",  # 11: NaN
        "2/d.jpg,0,0,10,12,,2,0,0",  # 12: tiny face
        "../../etc/passwd,0,0,50,50,,2,0,0",  # 13: escapes the folder
        "1/a.jpg,10,20,60,70,,3,0,0",  # 14: duplicate of line 2
        "2/d.jpg,-5,-5,60,60,,6,0,0",  # 15: anger, box partly outside: padded
        "3/missing.jpg,0,0,50,50,,0,0,0",  # 16: file missing
        "3/empty.jpg,0,0,50,50,,0,0,0",  # 17: empty file
        "3/e.jpg,500,500,50,50,,0,0,0",  # 18: box outside the image (found at crop time)
    ]
    write_text(root / "Manually_Annotated_file_lists" / "training.csv", "\n".join(rows) + "\n")
    write_text(
        root / "Manually_Annotated_file_lists" / "validation.csv",
        AFFECTNET_HEADER + "\n2/d.jpg,1,1,80,80,,4,0,0\n",
    )
    return root


def test_affectnet_keeps_emotions_and_names_every_dropped_row(affectnet):
    index = load_dataset(affectnet, "affectnet")
    assert index.classes == LABELS and index.split == "train"
    ids = [(s.id, LABELS[s.label], s.box) for s in index.samples]
    assert ids == [
        ("1/a.jpg", "happy", (10.0, 20.0, 60.0, 70.0)),
        ("1/b.png", "contempt", (5.0, 5.0, 50.0, 50.0)),
        ("2/d.jpg", "anger", (-5.0, -5.0, 60.0, 60.0)),
        ("3/missing.jpg", "neutral", (0.0, 0.0, 50.0, 50.0)),
        ("3/empty.jpg", "neutral", (0.0, 0.0, 50.0, 50.0)),
        ("3/e.jpg", "neutral", (500.0, 500.0, 50.0, 50.0)),
    ]
    assert index.samples[0].path == str(affectnet / "Manually_Annotated_Images" / "1" / "a.jpg")
    reasons = skipped(index)
    assert reasons["training.csv:4"] == "not an emotion: expression 8 (None)"
    assert reasons["training.csv:5"] == "not an emotion: expression 9 (Uncertain)"
    assert reasons["training.csv:6"] == "not an emotion: expression 10 (No-Face)"
    assert reasons["training.csv:7"] == "label out of range: expression 11 (valid 0–10)"
    assert reasons["training.csv:8"] == "bad expression: 'happy' is not an integer"
    assert reasons["training.csv:9"] == "malformed row: 7 fields, the header has 9"
    assert reasons["training.csv:10"].startswith("bad face box: (0.0, 0.0, 0.0, 50.0)")
    assert reasons["training.csv:11"].startswith("bad face box: (0.0, 0.0, nan, 50.0)")
    assert reasons["training.csv:12"] == "face too small: 10×12 px box (need ≥ 16 px)"
    assert reasons["training.csv:13"].startswith("bad path: '../../etc/passwd'")
    assert reasons["training.csv:14"] == "duplicate: 1/a.jpg already listed at training.csv:2"
    assert index.skipped_by_reason()["not an emotion"] == 3
    assert index.counts() == {
        "neutral": 3, "happy": 1, "sad": 0, "surprise": 0,
        "fear": 0, "disgust": 0, "anger": 1, "contempt": 1,
    }  # fmt: skip
    assert "class 'sad' has no samples in the train split" in index.warnings


def test_affectnet_check_files_moves_missing_and_empty_files_to_skipped(affectnet):
    index = load_dataset(affectnet, "affectnet", check_files=True)
    assert [s.id for s in index.samples] == ["1/a.jpg", "1/b.png", "2/d.jpg", "3/e.jpg"]
    assert skipped(index)["3/missing.jpg"] == "missing file"
    assert skipped(index)["3/empty.jpg"] == "empty file: 0 bytes"


def test_affectnet_crops_with_the_box_and_names_the_file_when_the_box_is_outside(affectnet):
    index = load_dataset(affectnet, "affectnet", check_files=True)
    crop = load_crop(index.samples[0], 32)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    assert load_crop(index.samples[2], 32).shape == (32, 32, 3)  # box padded past the edge
    with pytest.raises(ImageError, match=r"3/e\.jpg: Face box .* lies outside the 100×120 image"):
        load_crop(index.samples[3], 32)


def test_affectnet7_drops_contempt(affectnet):
    index = load_dataset(affectnet, "affectnet7")
    assert index.classes == LABELS_7
    assert "contempt" not in {LABELS[s.label] for s in index.samples}
    assert skipped(index)["training.csv:3"] == "contempt excluded: affectnet7 has 7 classes"


def test_affectnet_val_is_validation_csv_and_there_is_no_test(affectnet):
    assert available_splits(affectnet, "affectnet") == ("train", "val")
    index = load_dataset(affectnet, "affectnet", "val")
    assert [(s.id, LABELS[s.label]) for s in index.samples] == [("2/d.jpg", "fear")]
    with pytest.raises(DatasetError, match="no 'test' split.*split_holdout"):
        load_dataset(affectnet, "affectnet", "test")


def test_affectnet_csvs_at_the_root_and_the_unpacked_archive_folder_are_accepted(tmp_path):
    root = tmp_path / "an"
    write_image(root / "Manually_Annotated" / "Manually_Annotated_Images" / "1" / "a.jpg")
    write_text(root / "training.csv", AFFECTNET_HEADER + "\n1/a.jpg,0,0,40,40,,2,0,0\n")
    index = load_dataset(root, "affectnet", check_files=True)
    assert [(s.id, LABELS[s.label]) for s in index.samples] == [("1/a.jpg", "sad")]


def test_affectnet_csv_without_required_columns_is_rejected_naming_file_and_line(affectnet):
    bad = affectnet / "Manually_Annotated_file_lists" / "training.csv"
    bad.write_text("subDirectory_filePath,expression\n1/a.jpg,1\n")
    with pytest.raises(DatasetError, match=r"training\.csv:1: missing required column\(s\) face_x"):
        load_dataset(affectnet, "affectnet")


def test_empty_affectnet_csv_is_rejected(affectnet):
    (affectnet / "Manually_Annotated_file_lists" / "validation.csv").write_bytes(b"")
    with pytest.raises(
        DatasetError, match=r"validation\.csv: the file is empty; expected a header"
    ):
        load_dataset(affectnet, "affectnet", "val")


def test_affectnet_without_image_folder_is_rejected(tmp_path):
    write_text(tmp_path / "training.csv", AFFECTNET_HEADER + "\n")
    with pytest.raises(DatasetError, match="no image folder; expected Manually_Annotated_Images"):
        load_dataset(tmp_path, "affectnet")


def test_csv_that_is_not_utf8_is_rejected_naming_the_line(affectnet):
    bad = affectnet / "Manually_Annotated_file_lists" / "training.csv"
    bad.write_bytes(
        AFFECTNET_HEADER.encode() + b"\n1/a.jpg,0,0,40,40,,2,0,0\n1/\xff\xfe.jpg,0,0,40,40,,2,0,0\n"
    )
    with pytest.raises(DatasetError, match=r"training\.csv:3: not UTF-8 text"):
        load_dataset(affectnet, "affectnet")


def test_dataset_with_no_usable_rows_is_rejected_with_the_reasons(affectnet):
    csv_path = affectnet / "Manually_Annotated_file_lists" / "validation.csv"
    csv_path.write_text(
        AFFECTNET_HEADER + "\n2/d.jpg,1,1,80,80,,8,0,0\n2/d.jpg,1,1,80,80,,10,0,0\n"
    )
    with pytest.raises(
        DatasetError, match=r"no usable samples in the 'val' split .*2 not an emotion"
    ):
        load_dataset(affectnet, "affectnet", "val")


# ---------------------------------------------------------------- FER2013 CSV


def _pixels(side: int = 48, seed: int = 0) -> str:
    values = np.random.default_rng(seed).integers(0, 256, side * side)
    return " ".join(map(str, values))


@pytest.fixture
def fer2013_csv(tmp_path) -> Path:
    rows = [
        ["emotion", "pixels", "Usage"],
        ["0", _pixels(seed=1), "Training"],  # 2 angry
        ["3", _pixels(seed=2), "Training"],  # 3 happy
        ["6", _pixels(seed=3), "PublicTest"],  # 4 neutral
        ["5", _pixels(seed=4), "PrivateTest"],  # 5 surprise
        ["7", _pixels(), "Training"],  # 6 out of range
        ["a", _pixels(), "Training"],  # 7 not an integer
        ["1", " ".join(_pixels().split()[:-1]), "Training"],  # 8 2303 values
        ["1", _pixels() + " 256", "Training"],  # 9 not square (2305)
        ["1", "300 " * 2304, "Training"],  # 10 out of 0..255
        ["1", "1 2 x" + " 3" * 2301, "Training"],  # 11 not a number
        ["1", _pixels(side=10), "Training"],  # 12 10×10
        ["1", _pixels()],  # 13 missing Usage
        ["1", _pixels(), "Validation"],  # 14 unknown Usage
        ["2", _pixels(seed=5), "Training"],  # 15 fear
    ]
    path = tmp_path / "fer2013.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_fer2013_csv_splits_labels_and_inline_pixels(fer2013_csv):
    index = load_dataset(fer2013_csv.parent, "fer2013", "train")
    assert index.classes == LABELS_7
    assert [(s.id, LABELS[s.label]) for s in index.samples] == [
        ("fer2013.csv:2", "anger"),
        ("fer2013.csv:3", "happy"),
        ("fer2013.csv:15", "fear"),
    ]
    first = index.samples[0]
    assert first.path is None and first.box is None
    assert first.pixels.shape == (48, 48) and first.pixels.dtype == np.uint8
    assert not first.pixels.flags.writeable
    expected = np.array(_pixels(seed=1).split(), dtype=np.uint8).reshape(48, 48)
    np.testing.assert_array_equal(first.pixels, expected)
    val = load_dataset(fer2013_csv, "fer2013", "val")  # the CSV path itself works too
    test = load_dataset(fer2013_csv, "fer2013", "test")
    assert [LABELS[s.label] for s in val.samples] == ["neutral"]
    assert [LABELS[s.label] for s in test.samples] == ["surprise"]


def test_fer2013_csv_bad_rows_are_skipped_with_line_and_reason(fer2013_csv):
    reasons = skipped(load_dataset(fer2013_csv, "fer2013", "train"))
    assert reasons == {
        "fer2013.csv:6": "label out of range: emotion 7 (valid 0–6)",
        "fer2013.csv:7": "bad emotion: 'a' is not an integer",
        "fer2013.csv:8": "bad pixels: 2303 values do not form a square image",
        "fer2013.csv:9": "bad pixels: 2305 values do not form a square image",
        "fer2013.csv:10": "bad pixels: values 300..300 outside 0..255",
        "fer2013.csv:11": "bad pixels: not space-separated integers",
        "fer2013.csv:12": "face too small: 10×10 px (need ≥ 16 px)",
        "fer2013.csv:13": "malformed row: 2 fields, the header has 3",
        "fer2013.csv:14": (
            "unknown Usage: 'Validation' (expected Training, PublicTest, PrivateTest)"
        ),
    }


def test_fer2013_crop_from_inline_grey_pixels(fer2013_csv):
    sample = load_dataset(fer2013_csv, "fer2013").samples[0]
    crop = load_crop(sample, 96)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    assert (crop[..., 0] == crop[..., 1]).all() and (crop[..., 1] == crop[..., 2]).all()


def test_icml_face_data_header_with_spaces_is_accepted(tmp_path):
    path = tmp_path / "icml_face_data.csv"
    path.write_text(f"emotion, Usage, pixels\n4,Training,{_pixels()}\n")
    index = load_dataset(path, "fer2013")
    assert [LABELS[s.label] for s in index.samples] == ["sad"]


def test_fer2013_csv_missing_column_or_file_is_rejected(tmp_path):
    (tmp_path / "fer2013.csv").write_text("emotion,Usage\n0,Training\n")
    with pytest.raises(DatasetError, match=r"fer2013\.csv:1: missing required column\(s\) pixels"):
        load_dataset(tmp_path, "fer2013")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty: no FER2013 CSV; expected one of fer2013.csv"):
        load_dataset(tmp_path / "empty", "fer2013")


# ---------------------------------------------------------------- class-per-folder layouts


def test_fer2013_folder_layout(tmp_path):
    for split, count in (("train", 2), ("test", 1)):
        for name in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"):
            for i in range(count):
                write_image(tmp_path / split / name / f"{i}.jpg", (48, 48), value=100)
    assert available_splits(tmp_path, "fer2013-folder") == ("train", "test")
    train = load_dataset(tmp_path, "fer2013-folder", "train")
    assert train.classes == LABELS_7
    assert train.counts() == dict.fromkeys(LABELS_7, 2)
    assert train.samples[0].id == "train/angry/0.jpg" and LABELS[train.samples[0].label] == "anger"
    assert len(load_dataset(tmp_path, "fer2013-folder", "test").samples) == 7
    with pytest.raises(DatasetError, match="no 'val' split .*it has train, test"):
        load_dataset(tmp_path, "fer2013-folder", "val")
    write_image(tmp_path / "train" / "contempt" / "0.jpg")
    with pytest.raises(DatasetError, match="contempt'? is not a FER2013 class folder"):
        load_dataset(tmp_path, "fer2013-folder", "train")


@pytest.fixture
def folder_dataset(tmp_path) -> Path:
    root = tmp_path / "faces"
    write_image(root / "Training" / "Happy" / "a.jpg")
    write_image(root / "Training" / "Happy" / "nested" / "b.png")
    write_image(root / "Training" / "sadness" / "c.bmp")
    write_text(root / "Training" / "sadness" / "notes.txt", "not an image")
    write_text(root / "Training" / "sadness" / ".DS_Store", "mac metadata")
    write_text(root / "Training" / "sadness" / "._c.bmp", "AppleDouble resource fork")
    write_text(root / "Training" / "README.md", "about")
    (root / "Training" / "fear").mkdir()
    write_image(root / "val" / "contempt" / "d.jpg")
    (root / "Training" / "Happy" / "broken.jpg").symlink_to(root / "nowhere.jpg")
    return root


def test_folder_layout_reads_classes_and_skips_non_images(folder_dataset):
    assert available_splits(folder_dataset, "folder") == ("train", "val")
    index = load_dataset(folder_dataset, "folder", "train")
    assert [(s.id, LABELS[s.label]) for s in index.samples] == [
        ("Training/Happy/a.jpg", "happy"),
        ("Training/Happy/nested/b.png", "happy"),
        ("Training/sadness/c.bmp", "sad"),
    ]
    # Classes are the union over splits, so train and val agree on contempt.
    assert index.classes == ("happy", "sad", "fear", "contempt")
    assert skipped(index) == {
        "Training/README.md": "outside a class folder",
        "Training/Happy/broken.jpg": "missing file: broken link or not a regular file",
        "Training/sadness/.DS_Store": "hidden file",
        "Training/sadness/._c.bmp": "hidden file",
        "Training/sadness/notes.txt": "not an image file: extension '.txt'",
    }
    assert "empty class folder: Training/fear" in index.warnings
    assert "class 'fear' has no samples in the train split" in index.warnings


def test_folder_with_unknown_class_name_is_rejected_naming_the_folder(folder_dataset):
    (folder_dataset / "val" / "suprise").mkdir()
    with pytest.raises(DatasetError, match=r"val/suprise: Unknown emotion label 'suprise'"):
        load_dataset(folder_dataset, "folder", "train")


def test_flat_folder_layout_has_only_a_train_split(tmp_path):
    write_image(tmp_path / "neutral" / "a.png")
    write_image(tmp_path / "anger" / "b.png")
    assert available_splits(tmp_path, "folder") == ("train",)
    index = load_dataset(tmp_path, "folder")
    assert [LABELS[s.label] for s in index.samples] == ["anger", "neutral"]
    with pytest.raises(DatasetError, match="no 'test' split"):
        load_dataset(tmp_path, "folder", "test")


def test_empty_folders_are_rejected(tmp_path):
    (tmp_path / "train" / "happy").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no usable samples in the 'train' split"):
        load_dataset(tmp_path, "folder")
    (tmp_path / "train" / "happy").rmdir()
    with pytest.raises(DatasetError, match="train: no class folders inside"):
        load_dataset(tmp_path, "folder")


# ---------------------------------------------------------------- FER+


def _votes(**named: int) -> np.ndarray:
    return np.array([named.get(name, 0) for name in FERPLUS_COLUMNS])


@pytest.mark.parametrize(
    "votes, mode, outcome",
    [
        (_votes(happiness=10), "majority", "happy"),
        (_votes(neutral=6, sadness=3, anger=1), "majority", "neutral"),  # 6 > 9/2
        (_votes(neutral=4, sadness=4, anger=2), "majority", "no majority"),
        (_votes(neutral=5, sadness=5), "majority", "no majority"),
        (_votes(unknown=6, neutral=4), "majority", "majority unknown"),
        (_votes(not_a_face=10), "majority", "majority not_a_face"),
        (_votes(neutral=1, happiness=1, surprise=1, sadness=1, anger=1, disgust=1, fear=1,
                contempt=1, unknown=1, not_a_face=1), "majority", "no emotion votes"),
        (_votes(neutral=4, unknown=4, happiness=2), "probability", "neutral"),  # tie → emotion
        (_votes(unknown=5, neutral=4, fear=1), "probability", "most votes unknown"),
        (_votes(neutral=5, unknown=1, sadness=4), "drop-unknown", "has unknown/not-a-face votes"),
        (_votes(neutral=5, sadness=5), "drop-unknown", "tie between emotions"),
        (_votes(neutral=4, sadness=5, fear=1), "drop-unknown", "sad"),
    ],
)  # fmt: skip
def test_ferplus_vote_rules(votes, mode, outcome):
    if outcome in LABELS:
        label, soft = vote_label(votes, mode)
        assert LABELS[label] == outcome
        assert (soft is not None) == (mode == "probability")
    else:
        with pytest.raises(Skip, match=f"^{outcome}"):
            vote_label(votes, mode)


def test_ferplus_probability_drops_single_votes_and_orders_by_kit_labels():
    label, soft = vote_label(_votes(neutral=4, sadness=3, anger=2, fear=1), "probability")
    assert LABELS[label] == "neutral"
    expected = dict.fromkeys(LABELS, 0.0) | {"neutral": 4 / 9, "sad": 3 / 9, "anger": 2 / 9}
    np.testing.assert_allclose(soft, [expected[name] for name in LABELS])


@pytest.fixture
def ferplus(tmp_path) -> Path:
    folder = tmp_path / "FER2013Train"
    rows = [
        'fer0.png,"(0, 0, 48, 48)",10,0,0,0,0,0,0,0,0,0',  # 1 neutral
        'fer1.png,"(0, 0, 48, 48)",0,0,0,0,0,0,0,2,8,0',  # 2 unknown majority
        'fer2.png,"(0, 0, 48, 48)",0,0,2,0,0,0,0,0,0',  # 3 11 fields
        'fer3.png,"(0, 0, 48, 48)",0,x,0,0,0,0,0,0,0,0',  # 4 bad vote
        'fer4.png,"(0, 0, 48, 48)",0,-3,0,0,0,0,0,0,0,0',  # 5 negative vote
        'fer5.png,"(0, 0, 0, 48)",0,10,0,0,0,0,0,0,0,0',  # 6 bad box
        'fer6.png,"(4, 4, 40, 40)",0,0,9,0,0,0,0,0,1,0',  # 7 surprise, real box
        'fer0.png,"(0, 0, 48, 48)",10,0,0,0,0,0,0,0,0,0',  # 8 duplicate
        "",  # 9 blank line
        'fer8.png,"(0, 0, 48, 48)",0,0,0,0,0,0,0,7,3,0',  # 10 contempt
    ]
    write_text(folder / "label.csv", "\n".join(rows) + "\n")
    for name in ("fer0", "fer1", "fer6", "fer8"):
        write_image(folder / f"{name}.png", (48, 48))
    write_text(
        tmp_path / "FER2013Valid" / "label.csv", 'v.png,"(0, 0, 48, 48)",0,10,0,0,0,0,0,0,0,0\n'
    )
    write_image(tmp_path / "FER2013Valid" / "v.png", (48, 48))
    return tmp_path


def test_ferplus_reader_modes_and_bad_rows(ferplus):
    assert available_splits(ferplus, "ferplus") == ("train", "val")
    index = load_dataset(ferplus, "ferplus", ferplus_mode="majority", check_files=True)
    assert index.classes == LABELS
    assert [(s.id, LABELS[s.label], s.box, s.soft) for s in index.samples] == [
        ("FER2013Train/fer0.png", "neutral", None, None),
        ("FER2013Train/fer6.png", "surprise", (4.0, 4.0, 40.0, 40.0), None),
        ("FER2013Train/fer8.png", "contempt", None, None),
    ]
    assert skipped(index) == {
        "FER2013Train/label.csv:2": "majority unknown",
        "FER2013Train/label.csv:3": "malformed row: 11 fields, expected name, box, 10 votes",
        "FER2013Train/label.csv:4": "bad vote count: 'x' is not an integer",
        "FER2013Train/label.csv:5": "bad vote count: -3 is negative",
        "FER2013Train/label.csv:6": (
            "bad face box: (0.0, 0.0, 0.0, 48.0) needs finite values and a positive size"
        ),
        "FER2013Train/label.csv:8": (
            "duplicate: FER2013Train/fer0.png already listed at FER2013Train/label.csv:1"
        ),
    }
    soft = load_dataset(ferplus, "ferplus", ferplus_mode="probability")
    contempt = soft.samples[-1]
    assert contempt.soft[LABELS.index("contempt")] == 1.0  # unknown votes are not emotions
    strict = load_dataset(ferplus, "ferplus", ferplus_mode="drop-unknown")
    assert [s.id for s in strict.samples] == ["FER2013Train/fer0.png"]
    with pytest.raises(DatasetError, match="FER2013Test/label.csv not found"):
        load_dataset(ferplus, "ferplus", "test")


def _label_rows(root: Path, split_folder: str) -> int:
    with (root / split_folder / "label.csv").open(newline="") as handle:
        return sum(1 for row in csv.reader(handle) if row)


def test_ferplus_real_data_counts(ferplus_root):
    """Every label.csv row is kept or skipped; majority labels agree with probability labels."""
    for split, folder in (("train", "FER2013Train"), ("val", "FER2013Valid")):
        rows = _label_rows(ferplus_root, folder)
        indices = {
            mode: load_dataset(ferplus_root, "ferplus", split, ferplus_mode=mode)
            for mode in ("majority", "probability", "drop-unknown")
        }
        for mode, index in indices.items():
            assert len(index.samples) + len(index.skipped) == rows, mode
            assert sum(index.counts().values()) == len(index.samples)
            assert all(count > 0 for count in index.counts().values()), (mode, index.counts())
        probability = {s.id: s for s in indices["probability"].samples}
        for sample in indices["majority"].samples:
            assert probability[sample.id].label == sample.label
        assert set(s.id for s in indices["drop-unknown"].samples) <= set(probability)
        assert len(indices["drop-unknown"].samples) < len(indices["majority"].samples)
        for sample in indices["probability"].samples[:200]:
            assert (
                abs(sum(sample.soft) - 1) < 1e-9 and max(sample.soft) == sample.soft[sample.label]
            )


def test_ferplus_real_images_crop(ferplus_root):
    index = load_dataset(ferplus_root, "ferplus", "val", check_files=True)
    assert not index.skipped_by_reason().get("missing file")
    for sample in index.samples[:20]:
        image = load_image(sample)
        assert image.shape == (48, 48, 3)
        assert load_crop(sample, 112).shape == (112, 112, 3)


# ---------------------------------------------------------------- RAF-DB


def _rafdb_labels(root: Path) -> None:
    write_text(
        root / "EmoLabel" / "list_patition_label.txt",
        "train_00001.jpg 5\n"  # 1 sad
        "train_00002.jpg 1\n"  # 2 surprise
        "train_00003.jpg 0\n"  # 3 out of range
        "train_00004.jpg 8\n"  # 4 out of range
        "train_00005.jpg x\n"  # 5 not an integer
        "train_00006.jpg\n"  # 6 malformed
        "\n"  # 7 blank
        "photo.jpg 2\n"  # 8 no split prefix
        "test_0001.jpg 7\n"  # 9 neutral
        "train_00001.jpg 5\n",  # 10 duplicate
    )


def test_rafdb_aligned(tmp_path):
    _rafdb_labels(tmp_path)
    for name in ("train_00001", "train_00002", "test_0001"):
        write_image(tmp_path / "Image" / "aligned" / f"{name}_aligned.jpg", (100, 100, 3))
    assert available_splits(tmp_path, "rafdb") == ("train", "test")
    train = load_dataset(tmp_path, "rafdb", check_files=True)
    assert train.classes == LABELS_7
    assert [(s.id, LABELS[s.label], s.box) for s in train.samples] == [
        ("Image/aligned/train_00001_aligned.jpg", "sad", None),
        ("Image/aligned/train_00002_aligned.jpg", "surprise", None),
    ]
    assert skipped(train) == {
        "list_patition_label.txt:3": "label out of range: 0 (valid 1–7)",
        "list_patition_label.txt:4": "label out of range: 8 (valid 1–7)",
        "list_patition_label.txt:5": "bad label: 'x' is not an integer",
        "list_patition_label.txt:6": "malformed row: 1 fields, expected 'name label'",
        "list_patition_label.txt:8": (
            "malformed row: the name starts with neither train_ nor test_"
        ),
        "list_patition_label.txt:10": (
            "duplicate: Image/aligned/train_00001_aligned.jpg already listed at "
            "list_patition_label.txt:1"
        ),
    }
    test = load_dataset(tmp_path, "rafdb", "test")
    assert [LABELS[s.label] for s in test.samples] == ["neutral"]
    with pytest.raises(DatasetError, match="rafdb dataset has no 'val' split"):
        load_dataset(tmp_path, "rafdb", "val")


def test_rafdb_original_images_use_bounding_box_files(tmp_path):
    _rafdb_labels(tmp_path)
    write_image(tmp_path / "Image" / "original" / "train_00001.jpg", (200, 160, 3))
    boxes = tmp_path / "Annotation" / "boundingbox"
    write_text(boxes / "train_00001_boundingbox.txt", "20.5 30.0 120.5 150.0\n")
    write_text(boxes / "test_0001_boundingbox.txt", "1 2 3\n")
    train = load_dataset(tmp_path, "rafdb")
    assert [(s.id, s.box) for s in train.samples] == [
        ("Image/original/train_00001.jpg", (20.5, 30.0, 100.0, 120.0))
    ]
    assert skipped(train)["list_patition_label.txt:2"] == (
        "missing face box file: Annotation/boundingbox/train_00002_boundingbox.txt"
    )
    assert load_crop(train.samples[0], 40).shape == (40, 40, 3)
    with pytest.raises(DatasetError, match=r"no usable samples.*1 bad face box"):
        load_dataset(tmp_path, "rafdb", "test")


def test_rafdb_without_label_file_or_images_is_rejected(tmp_path):
    with pytest.raises(DatasetError, match="EmoLabel/list_patition_label.txt not found"):
        load_dataset(tmp_path, "rafdb")
    _rafdb_labels(tmp_path)
    with pytest.raises(DatasetError, match="neither Image/aligned/ nor Image/original/"):
        load_dataset(tmp_path, "rafdb")


# ---------------------------------------------------------------- image files (issue 7)


def _sample(path: Path, box=None) -> Sample:
    return Sample(path.name, 0, str(path), box)


def _pil_bytes(image: Image.Image, format_: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_, **options)
    return buffer.getvalue()


def test_unreadable_files_raise_image_error_naming_the_file(tmp_path):
    good = write_image(tmp_path / "good.jpg", (64, 64, 3))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    text = write_text(tmp_path / "text.jpg", "this is not a JPEG")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for path in (truncated, text, empty):
        with pytest.raises(ImageError, match=f"{path.name}: not a readable image"):
            load_crop(_sample(path), 32)
    with pytest.raises(ImageError, match="missing.jpg: cannot read"):
        load_crop(_sample(tmp_path / "missing.jpg"), 32)


def test_grey_rgba_16bit_cmyk_and_exif_images_become_rgb(tmp_path):
    grey = write_image(tmp_path / "grey.png", (40, 40), value=90)
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(
        str(rgba), np.dstack([np.zeros((40, 40, 2), np.uint8), np.full((40, 40, 2), 255, np.uint8)])
    )
    deep = write_image(tmp_path / "deep.png", (40, 40), dtype=np.uint16, value=65535)
    cmyk = tmp_path / "cmyk.jpg"
    cmyk.write_bytes(_pil_bytes(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG"))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    rotated = tmp_path / "rotated.jpg"
    rotated.write_bytes(_pil_bytes(Image.new("RGB", (60, 30), (0, 0, 255)), "JPEG", exif=exif))

    np.testing.assert_array_equal(load_image(_sample(grey))[0, 0], [90, 90, 90])
    np.testing.assert_array_equal(load_image(_sample(rgba))[0, 0], [255, 0, 0])  # BGRA red
    np.testing.assert_array_equal(load_image(_sample(deep))[0, 0], [255, 255, 255])
    red = load_image(_sample(cmyk))[20, 20]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert load_image(_sample(rotated)).shape == (60, 30, 3)  # 60 wide stored, shown upright
    for path in (grey, rgba, deep, cmyk, rotated):
        crop = load_crop(_sample(path), 24)
        assert crop.shape == (24, 24, 3) and crop.dtype == np.uint8


def test_tiny_images_are_rejected_and_huge_ones_cropped(tmp_path):
    tiny = write_image(tmp_path / "tiny.png", (10, 40, 3))
    with pytest.raises(ImageError, match=r"tiny\.png: 40×10 px is too small"):
        load_crop(_sample(tiny), 32)
    huge = write_image(tmp_path / "huge.png", (300, 8200, 3), value=7)
    crop = load_crop(_sample(huge, box=(8000.0, 100.0, 120.0, 150.0)), 32)
    assert crop.shape == (32, 32, 3) and crop[16, 16, 0] == 7


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("height, width", [(30000, 30000), (9000, 12000)])
def test_image_header_claiming_a_giant_size_is_refused_before_decoding(tmp_path, height, width):
    good = cv2.imencode(".jpg", np.zeros((20, 20, 3), np.uint8))[1].tobytes()
    frame = good.index(b"\xff\xc0")  # JPEG start-of-frame: length, precision, height, width
    bomb = bytearray(good)
    bomb[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bytes(bomb))
    start = time.perf_counter()
    with pytest.raises(ImageError, match=r"bomb\.jpg: refused, too large to decode safely"):
        load_crop(_sample(path), 32)
    assert time.perf_counter() - start < 1.0


def test_box_far_larger_than_the_image_is_an_image_error(tmp_path):
    path = write_image(tmp_path / "small.png", (32, 32, 3))
    with pytest.raises(ImageError, match=r"small\.png: Face box .* is far larger"):
        load_crop(_sample(path, box=(0.0, 0.0, 1e6, 1e6)), 32)


# ---------------------------------------------------------------- holdout


def _index_with(counts: dict[str, int]):
    samples = [
        Sample(f"{name}/{i}.jpg", label_index(name), f"/x/{name}/{i}.jpg")
        for name, count in counts.items()
        for i in range(count)
    ]
    return DatasetIndex("t", "folder", "train", "/x", samples, LABELS, [("a", "b")], ["w"])


def test_split_holdout_is_stratified_disjoint_and_seeded():
    index = _index_with({"happy": 100, "sad": 40, "fear": 5, "contempt": 1})
    rest, held = split_holdout(index, 0.2, seed=3)
    assert held.split == "val" and rest.split == "train"
    assert held.counts() == {**dict.fromkeys(LABELS, 0), "happy": 20, "sad": 8, "fear": 1}
    assert rest.counts()["contempt"] == 1  # a lone sample stays in training
    assert {s.id for s in rest.samples}.isdisjoint({s.id for s in held.samples})
    assert len(rest.samples) + len(held.samples) == len(index.samples)
    assert rest.skipped == index.skipped and held.skipped == []
    again = split_holdout(index, 0.2, seed=3)[1]
    other = split_holdout(index, 0.2, seed=4)[1]
    assert [s.id for s in again.samples] == [s.id for s in held.samples]
    assert [s.id for s in other.samples] != [s.id for s in held.samples]
    for fraction in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="between 0 and 1"):
            split_holdout(index, fraction, seed=0)
