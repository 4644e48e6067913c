"""Decoders picked by content, limits read from headers, globs that end, names that are safe
(issue 22). The kind of a user's file comes from its first bytes, never its suffix: a PNG named
``.mp4`` is a photo, a GIF a still (its first frame), a HEIC without a decoder one line for that
item. Commands run in subprocesses where TensorFlow cannot be imported."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import NO_TENSORFLOW

from affectlite.edge_app.predict import expand_sources
from affectlite.edge_app.preprocess import ImageError, read_still
from affectlite.edge_app.recognizer import load_photo
from affectlite.edge_app.sources import ImageFilesSource, OpenCVSource, SourceError, make_source
from affectlite.errors import InputError


def affectlite(*args: object, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", NO_TENSORFLOW, *map(str, args)]
    return subprocess.run(command, capture_output=True, timeout=180, **kwargs)


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().decode("utf-8").splitlines()]


def encode(picture_rgb: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, cv2.cvtColor(picture_rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def write_video(path: Path, frames: int, size: tuple[int, int]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for _ in range(frames):
        writer.write(np.zeros((size[1], size[0], 3), np.uint8))
    writer.release()
    return path


def fake_heic(path: Path, width: int = 640, height: int = 480) -> Path:
    """An ISO-BMFF HEIC header (``ftyp heic``, a ``meta`` box with ``ispe``): what an iPhone
    photo starts with; its image data is absent, and no decoder here could read it anyway."""

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    ispe = box(b"ispe", bytes(4) + struct.pack(">II", width, height))
    meta = box(b"meta", bytes(4) + box(b"iprp", box(b"ipco", ispe)))
    path.write_bytes(box(b"ftyp", b"heic" + bytes(4) + b"mif1heic") + meta)
    return path


@pytest.fixture()
def face_png(sample_photos) -> bytes:
    return encode(sample_photos["astronaut"], ".png")


# predict and run: the kind comes from the bytes ---------------------------------------------


def test_a_png_named_mp4_is_predicted_as_a_photo(tmp_path, tiny_bundle, face_png):
    (tmp_path / "clip.mp4").write_bytes(face_png)
    out = tmp_path / "out"
    done = affectlite("predict", tmp_path / "clip.mp4", "--out", out, "--bundle", tiny_bundle.path)
    assert done.returncode == 0, done.stderr
    (line,) = lines_of(out / "predictions.jsonl")
    assert line["annotated"] == "clip.jpg" and "frame" not in line and line["faces"]


def test_a_gif_is_a_still_its_first_frame(tmp_path, tiny_bundle, sample_photos):
    (tmp_path / "face.gif").write_bytes(encode(sample_photos["astronaut"], ".gif"))
    out = tmp_path / "out"
    done = affectlite("predict", tmp_path / "face.gif", "--out", out, "--bundle", tiny_bundle.path)
    assert done.returncode == 0, done.stderr
    (line,) = lines_of(out / "predictions.jsonl")
    assert line["annotated"] == "face.jpg" and "frame" not in line
    assert cv2.imread(str(out / "face.jpg")).shape == (512, 512, 3)


def test_a_jfif_photo_keeps_its_exif_rotation(tmp_path, tiny_bundle, sample_photos):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    wide = sample_photos["coffee"]  # 400×600
    Image.fromarray(wide).save(tmp_path / "cup.jfif", format="JPEG", exif=exif.tobytes())
    out = tmp_path / "out"
    done = affectlite("predict", tmp_path / "cup.jfif", "--out", out, "--bundle", tiny_bundle.path)
    assert done.returncode == 0, done.stderr
    assert cv2.imread(str(out / "cup.jpg")).shape[:2] == (600, 400)  # upright, not an MP4


def test_an_avif_photo_is_decoded_as_a_still(tmp_path, tiny_bundle, sample_photos):
    try:
        data = encode(sample_photos["astronaut"], ".avif")
    except (cv2.error, AssertionError):
        pytest.skip("this OpenCV has no AVIF codec")
    (tmp_path / "face.avif").write_bytes(data)
    out = tmp_path / "out"
    done = affectlite("predict", tmp_path / "face.avif", "--out", out, "--bundle", tiny_bundle.path)
    assert done.returncode == 0, done.stderr
    (line,) = lines_of(out / "predictions.jsonl")
    assert line["annotated"] == "face.jpg" and "frame" not in line


def test_a_heic_without_a_decoder_is_one_line_for_that_item(tmp_path, tiny_bundle, face_png):
    fake_heic(tmp_path / "IMG_0001.HEIC")
    (tmp_path / "face.png").write_bytes(face_png)
    out = tmp_path / "out"
    done = affectlite(
        "predict", tmp_path / "IMG_0001.HEIC", tmp_path / "face.png", "--out", out,
        "--bundle", tiny_bundle.path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    heic, face = lines_of(out / "predictions.jsonl")
    assert "a HEIC photo" in heic["error"] and "no HEIC decoder" in heic["error"]
    assert face["annotated"] == "face.jpg"
    skipped = [line for line in done.stderr.decode().splitlines() if "IMG_0001" in line]
    assert len(skipped) == 1 and "Traceback" not in done.stderr.decode()


def test_run_reads_a_png_named_mp4_as_a_photo(tmp_path, tiny_bundle, face_png):
    (tmp_path / "clip.mp4").write_bytes(face_png)
    out = tmp_path / "o.jsonl"
    done = affectlite(
        "run", "--source", tmp_path / "clip.mp4", "--bundle", tiny_bundle.path, "--jsonl", out
    )
    assert done.returncode == 0, done.stderr
    (line,) = lines_of(out)
    assert line["file"] == str(tmp_path / "clip.mp4") and line["faces"]


def test_every_source_spec_picks_its_reader_by_content(tmp_path, face_png, sample_photos):
    """``make_source`` is what run, the app's source setting, calibrate --source and
    bench --source open; the app's Open photo and the API read with ``read_still``."""
    (tmp_path / "clip.mp4").write_bytes(face_png)
    (tmp_path / "still.gif").write_bytes(encode(sample_photos["astronaut"], ".gif"))
    write_video(tmp_path / "video.avi", 2, (64, 48)).rename(tmp_path / "video.jpg")
    assert isinstance(make_source(str(tmp_path / "clip.mp4")), ImageFilesSource)
    assert isinstance(make_source(str(tmp_path / "still.gif")), ImageFilesSource)
    assert isinstance(make_source(str(tmp_path / "video.jpg")), OpenCVSource)
    assert read_still(tmp_path / "still.gif").rgb.shape == (512, 512, 3)
    assert load_photo(tmp_path / "clip.mp4").rgb.shape == (512, 512, 3)


# Limits before decoding ----------------------------------------------------------------------


def gif_header(width: int, height: int) -> bytes:
    """A GIF whose screen and first frame claim ``width`` × ``height`` (one LZW-coded pixel)."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + bytes(6)  # 2-colour table
    frame = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + frame + b"\x02\x02\x44\x01\x00;"


def test_a_huge_gif_is_refused_from_its_header(tmp_path):
    (tmp_path / "bomb.gif").write_bytes(gif_header(12000, 12000))
    with pytest.raises(ImageError, match="refused, 12000×12000 px is over"):
        read_still(tmp_path / "bomb.gif")


@pytest.mark.parametrize("limit", [float("nan"), float("inf")])
def test_the_api_limits_must_be_finite(tmp_path, face_png, limit):
    (tmp_path / "face.png").write_bytes(face_png)
    with pytest.raises(InputError, match="max_pixels must be a finite number"):
        read_still(tmp_path / "face.png", limit)
    with pytest.raises(InputError, match="max_pixels must be a finite number"):
        ImageFilesSource([tmp_path / "face.png"], max_pixels=limit)


def test_a_video_over_4k_is_refused_before_a_frame_is_decoded(tmp_path):
    big = write_video(tmp_path / "big.avi", 1, (4096, 2304))
    with pytest.raises(SourceError, match="4096×2304 frames are over the device limit of 4K"):
        OpenCVSource(big).open()
    uhd = OpenCVSource(write_video(tmp_path / "uhd.avi", 1, (3840, 2160)))
    uhd.open()
    assert uhd.read().shape == (2160, 3840, 3)
    uhd.close()


# Globs and folders ---------------------------------------------------------------------------


def test_a_glob_over_two_symlink_loops_ends(tmp_path, face_png):
    (tmp_path / "d" / "a" / "b").mkdir(parents=True)
    (tmp_path / "d" / "x.jpg").write_bytes(face_png)
    (tmp_path / "d" / "a" / "b" / "y.jpg").write_bytes(face_png)
    (tmp_path / "d" / "a" / "up").symlink_to("..")
    (tmp_path / "d" / "a" / "b" / "top").symlink_to("../..")
    script = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "from affectlite.edge_app.predict import expand_sources\n"
        "print(sorted(str(i.target) for i in expand_sources(['d/**/*.jpg'])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['d/a/b/y.jpg', 'd/x.jpg']"


@pytest.fixture(scope="module")
def crowded(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crowded")
    for i in range(100_001):
        os.close(os.open(folder / f"{i:06d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
    return folder


@pytest.mark.parametrize("spec", ["*.jpg", "."])
def test_over_100000_files_is_one_line_error(crowded, monkeypatch, spec):
    monkeypatch.chdir(crowded)
    with pytest.raises(InputError, match="over 100,000"):
        expand_sources([spec])


# Names ---------------------------------------------------------------------------------------


@pytest.fixture()
def odd_names(tmp_path, face_png) -> tuple[Path, str, str]:
    """A folder holding a photo whose name is not UTF-8 (``caf\\xe9.png``) and a broken picture
    whose name starts with an ESC sequence; returns the folder and the two names as shown."""
    folder = tmp_path / "in"
    folder.mkdir()
    Path(os.fsdecode(os.fsencode(folder) + b"/caf\xe9.png")).write_bytes(face_png)
    Path(os.fsdecode(os.fsencode(folder) + b"/\x1b[2Jbroken.png")).write_bytes(b"not a picture")
    return folder, f"{folder}/caf\\xe9.png", f"{folder}/\\x1b[2Jbroken.png"


STRICT = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}


def test_names_are_escaped_on_the_terminal(odd_names, tmp_path, tiny_bundle):
    folder, _, broken = odd_names
    out = tmp_path / "out"
    done = affectlite("predict", folder, "--out", out, "--bundle", tiny_bundle.path, env=STRICT)
    assert done.returncode == 2 and b"Traceback" not in done.stderr, done.stderr
    assert b"\x1b" not in done.stderr and broken.encode() in done.stderr
    ran = affectlite(
        "run", "--source", folder, "--bundle", tiny_bundle.path, "--jsonl", tmp_path / "o.jsonl"
    )
    assert ran.returncode == 0 and b"\x1b" not in ran.stderr and broken.encode() in ran.stderr


def test_names_are_valid_utf8_alike_in_run_predict_and_the_api(odd_names, tmp_path, tiny_bundle):
    folder, cafe, broken = odd_names
    out = tmp_path / "out"
    done = affectlite("predict", folder, "--out", out, "--bundle", tiny_bundle.path, env=STRICT)
    assert done.returncode == 2 and b"Traceback" not in done.stderr, done.stderr
    predicted = lines_of(out / "predictions.jsonl")  # a strict UTF-8 decode
    assert [line["file"] for line in predicted] == [broken, cafe]
    assert predicted[1]["annotated"] == "caf\\xe9.jpg" and (out / "caf\\xe9.jpg").is_file()
    ran = affectlite(
        "run", "--source", folder, "--bundle", tiny_bundle.path, "--jsonl", "-", env=STRICT
    )
    assert ran.returncode == 0, ran.stderr
    files = [json.loads(line)["file"] for line in ran.stdout.decode("utf-8").splitlines()]
    assert files == [broken, cafe]
    with pytest.raises(ImageError) as api:
        load_photo(os.fsdecode(os.fsencode(folder) + b"/\x1b[2Jbroken.png"))
    assert str(api.value).startswith(broken + ":")
