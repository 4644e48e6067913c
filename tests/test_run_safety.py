"""The device side under hostile conditions (issue 13): huge stills, concurrent runs on one
``--jsonl``, full disks, signals on finite sources, truncated videos and thread settings.
``affectlite run`` runs in subprocesses where TensorFlow cannot be imported."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import resource
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import NO_TENSORFLOW

from affectlite.cli import main
from affectlite.edge_app.preprocess import ImageError, header_size, read_still
from affectlite.edge_app.runner import JsonLines

PEAK = re.compile(r"peak ([0-9.]+) MiB")


def run_command(*args) -> list[str]:
    return [sys.executable, "-c", NO_TENSORFLOW, "run", *map(str, args)]


def affectlite_run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(run_command(*args), capture_output=True, text=True, timeout=120, **kwargs)


def read_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "the file ends in a cut line"
    return [json.loads(line) for line in text.splitlines()]


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def wait_for_lines(process: subprocess.Popen, path: Path, count: int = 1) -> None:
    deadline = time.monotonic() + 60
    while not (path.exists() and path.read_bytes().count(b"\n") >= count):
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no output within 60 s"
        time.sleep(0.05)


# Still images: header limit, reduced decoding, peak memory -----------------------------------


def huge_png(path: Path, side: int = 20000) -> Path:
    """A valid grey PNG of side × side black pixels: 400 kB on disk, 1.2 GB as RGB.

    Built in a fraction of a second: after a full flush, deflate encodes each identical block
    of 100 rows to the same bytes, so one block is compressed and repeated.
    """
    rows = bytes(side + 1) * 100  # each row: filter byte 0, then the pixels
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(rows) + compressor.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(side // 100):
        adler = zlib.adler32(rows, adler)
    body = b"\x78\x01" + block * (side // 100) + compressor.flush() + adler.to_bytes(4, "big")

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return len(data).to_bytes(4, "big") + kind + data + crc.to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    return path


def texture(height: int, width: int) -> np.ndarray:
    """A smooth random RGB background (compresses like a photo, unlike pixel noise)."""
    coarse = np.random.default_rng(height).integers(40, 200, (height // 100, width // 100, 3))
    return cv2.resize(coarse.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return huge_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_header_size_reads_each_format_without_decoding(ext):
    ok, encoded = cv2.imencode(ext, np.zeros((37, 53, 3), np.uint8))
    assert ok and header_size(io.BytesIO(encoded.tobytes())) == (53, 37)


def test_read_still_refuses_an_oversized_header_and_unknown_formats(tmp_path, bomb):
    small = cv2.imread(str(huge_png(tmp_path / "small.png", 300)))  # the builder makes valid PNGs
    assert small.shape == (300, 300, 3) and not small.any()
    with pytest.raises(ImageError, match=r"refused, 20000×20000 px is over .*40,000,000"):
        read_still(bomb)
    (tmp_path / "x.png").write_bytes(b"P6\n4 4\n255\n" + bytes(48))  # a PPM named .png
    with pytest.raises(ImageError, match="cannot read the image size from its header"):
        read_still(tmp_path / "x.png")


def test_read_still_decodes_large_stills_at_reduced_size(tmp_path):
    cv2.imwrite(str(tmp_path / "wide.jpg"), texture(2000, 6000))
    still = read_still(tmp_path / "wide.jpg")
    assert still.size == (6000, 2000) and still.reduction == 2
    assert still.rgb.shape == (1000, 3000, 3)
    assert read_still(tmp_path / "wide.jpg", max_pixels=12_000_000).reduction == 2
    with pytest.raises(ImageError, match="over the device limit of 11,999,999"):
        read_still(tmp_path / "wide.jpg", max_pixels=11_999_999)


def test_run_refuses_a_20000px_png_from_its_header_under_300_mb(tmp_path, tiny_bundle, bomb):
    out = tmp_path / "faces.jsonl"
    done = affectlite_run("--source", bomb, "--bundle", tiny_bundle.path, "--jsonl", out)
    assert done.returncode == 0, done.stderr
    (line,) = read_lines(out)
    assert line["frame"] is None and line["file"] == str(bomb)
    assert "refused, 20000×20000 px" in line["error"]
    peak = float(PEAK.search(done.stderr).group(1))
    print(f"peak RSS on the 20000×20000 PNG: {peak} MiB")
    assert peak < 300


def test_run_finds_the_face_in_a_6000x4000_photo_under_300_mb(tmp_path, tiny_bundle, sample_photos):
    face = sample_photos["astronaut"][30:230, 127:327]
    photo = texture(4000, 6000)
    photo[1100:3100, 2600:4600] = cv2.resize(face, (2000, 2000), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(tmp_path / "photo.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    del photo
    out = tmp_path / "faces.jsonl"
    args = ["--source", tmp_path / "photo.jpg", "--bundle", tiny_bundle.path, "--jsonl", out]
    done = affectlite_run(*args, "--threads", "1")
    assert done.returncode == 0, done.stderr
    (line,) = read_lines(out)
    assert line["decoded_at"] == "1/2" and len(line["faces"]) == 1
    x, y, w, h = line["faces"][0]["box"]  # in the file's pixels
    assert abs(x + w / 2 - 3600) < 250 and abs(y + h / 2 - 2100) < 350 and w > 1000
    peak = float(PEAK.search(done.stderr).group(1))
    print(f"peak RSS on the 6000×4000 photo: {peak} MiB")
    assert peak < 300


def test_predict_and_the_api_read_stills_like_run(tmp_path, tiny_bundle, sample_photos, bomb):
    """`predict` and `EmotionRecognizer` use the same bounded reader: a 6000×4000 photo is
    decoded at 1/2 with boxes in the file's pixels, and a 20000 px PNG is refused."""
    from affectlite import EmotionRecognizer

    face = sample_photos["astronaut"][30:230, 127:327]
    photo = texture(4000, 6000)
    photo[1100:3100, 2600:4600] = cv2.resize(face, (2000, 2000), interpolation=cv2.INTER_CUBIC)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "photo.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    bomb_link = tmp_path / "in" / "bomb.png"
    bomb_link.symlink_to(bomb)
    args = ["--source", tmp_path / "in", "--bundle", tiny_bundle.path, "--jsonl", tmp_path / "r"]
    assert affectlite_run(*args).returncode == 0
    ran = {Path(line["file"]).name: line for line in read_lines(tmp_path / "r")}
    out = tmp_path / "predicted"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_TENSORFLOW,
            "predict",
            str(tmp_path / "in"),
            "--bundle",
            str(tiny_bundle.path),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "bomb.png" in done.stderr  # a photo failed: said, exit 2
    predicted = {Path(line["file"]).name: line for line in read_lines(out / "predictions.jsonl")}
    assert "refused, 20000×20000 px" in predicted["bomb.png"]["error"]
    assert predicted["photo.jpg"]["decoded_at"] == ran["photo.jpg"]["decoded_at"] == "1/2"
    assert predicted["photo.jpg"]["faces"] == ran["photo.jpg"]["faces"]
    assert cv2.imread(str(out / predicted["photo.jpg"]["annotated"])).shape == (2000, 3000, 3)
    (api_face,) = EmotionRecognizer(tiny_bundle).predict(tmp_path / "in" / "photo.jpg")
    assert api_face.to_dict() == ran["photo.jpg"]["faces"][0]
    with pytest.raises(ImageError, match="refused"):
        EmotionRecognizer(tiny_bundle).predict(bomb)


# --jsonl: checked first, '-' is stdout, one writer, whole lines --------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [("folder", "is a folder; give a file name"), ("file/x.jsonl", "cannot create a file there")],
)
def test_a_bad_jsonl_is_refused_before_the_bundle_is_read(tmp_path, capsys, target, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    args = ["--source", tmp_path, "--bundle", tmp_path / "no-bundle", "--jsonl", tmp_path / target]
    assert main(["run", *map(str, args)]) == 2
    assert message in capsys.readouterr().err  # not the missing bundle: checked before


def test_jsonl_dash_means_standard_output(tmp_path, tiny_bundle, sample_photos):
    cv2.imwrite(str(tmp_path / "a.png"), sample_photos["coffee"])
    done = affectlite_run("--source", tmp_path / "a.png", "--bundle", tiny_bundle.path,
                          "--jsonl", "-", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(text) for text in done.stdout.splitlines()]
    assert line["frame"] == 0 and not (tmp_path / "-").exists()


def test_a_second_run_on_the_same_jsonl_is_refused(tmp_path, tiny_bundle):
    video = write_video(tmp_path / "loop.avi", [np.full((120, 160, 3), 90, np.uint8)] * 3)
    out = tmp_path / "faces.jsonl"
    args = ["--source", video, "--bundle", tiny_bundle.path, "--jsonl", out]
    first = subprocess.Popen(run_command(*args, "--loop"), stderr=subprocess.PIPE, text=True)
    partial = out.with_name("faces.jsonl.partial")
    wait_for_lines(first, partial)
    second = affectlite_run(*args)
    assert second.returncode == 2
    assert "another affectlite run is writing faces.jsonl.partial" in second.stderr
    os.kill(first.pid, signal.SIGTERM)
    _, stderr = first.communicate(timeout=30)
    assert first.returncode == 0, stderr
    lines = read_lines(out)
    assert [line["frame"] for line in lines] == list(range(len(lines)))  # nothing lost


def test_a_stale_partial_is_replaced_with_a_warning(tmp_path, tiny_bundle, sample_photos):
    cv2.imwrite(str(tmp_path / "a.png"), sample_photos["coffee"])
    out = tmp_path / "faces.jsonl"
    out.with_name("faces.jsonl.partial").write_text('{"frame": 0}\n{"cut in ha')
    done = affectlite_run("--source", tmp_path / "a.png", "--bundle", tiny_bundle.path,
                          "--jsonl", out)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Replacing" in done.stderr and "no longer running" in done.stderr
    (line,) = read_lines(out)
    assert line["frame"] == 0 and not out.with_name("faces.jsonl.partial").exists()


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_on_a_finite_source_marks_the_output_interrupted(
    tmp_path, tiny_bundle, sample_photos, sig, status
):
    frame = cv2.cvtColor(cv2.resize(sample_photos["astronaut"], (320, 320)), cv2.COLOR_RGB2BGR)
    video = write_video(tmp_path / "long.avi", [frame] * 400)
    out = tmp_path / "faces.jsonl"
    args = ["--source", video, "--bundle", tiny_bundle.path, "--jsonl", out, "--threads", "1"]
    process = subprocess.Popen(run_command(*args), stderr=subprocess.PIPE, text=True)
    partial = out.with_name("faces.jsonl.partial")
    wait_for_lines(process, partial)
    os.kill(process.pid, sig)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == status, stderr
    assert not out.exists()
    *frames, last = read_lines(partial)
    assert last == {"event": "interrupted", "signal": sig.name, "frames": len(frames)}
    assert 1 <= len(frames) < 400 and "incomplete" in stderr


def _tmpfs(folder: Path) -> bool:
    if os.geteuid() != 0:
        return False
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)]
    return subprocess.run(mount, capture_output=True).returncode == 0


@pytest.mark.parametrize("limit", ["tmpfs", "rlimit"])
def test_a_full_disk_ends_the_run_with_one_line_and_whole_json_lines(tmp_path, tiny_bundle, limit):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    disk = tmp_path / "disk"
    preexec = None
    if limit == "tmpfs" and not _tmpfs(disk):
        pytest.skip("mounting a 16 kB tmpfs needs root; the rlimit case covers the same path")
    if limit == "rlimit":  # EFBIG instead of ENOSPC: the same failed write, without root
        disk.mkdir()

        def preexec():
            resource.setrlimit(resource.RLIMIT_FSIZE, (16384, resource.RLIM_INFINITY))

    out = disk / "faces.jsonl"
    args = ["--source", tmp_path / "a.png", "--bundle", tiny_bundle.path, "--jsonl", out]
    try:
        done = subprocess.run(run_command(*args, "--loop"), capture_output=True, text=True,
                              timeout=120, preexec_fn=preexec)  # fmt: skip
        assert done.returncode == 1, done.stderr
        ours = [line for line in done.stderr.splitlines() if line.startswith("affectlite")]
        assert len(ours) == 1 and "cannot write" in ours[0], done.stderr
        assert "Traceback" not in done.stderr
        assert ("No space left" if limit == "tmpfs" else "too large") in ours[0]
        lines = read_lines(out.with_name("faces.jsonl.partial"))
        assert len(lines) > 10 and [line["frame"] for line in lines] == list(range(len(lines)))
    finally:
        if limit == "tmpfs":
            subprocess.run(["umount", str(disk)], check=True)


# Videos and threads --------------------------------------------------------------------------


def test_a_truncated_video_is_warned_about(tmp_path, tiny_bundle):
    frames = [np.random.default_rng(i).integers(0, 255, (48, 64, 3), np.uint8) for i in range(20)]
    data = write_video(tmp_path / "full.avi", frames).read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    out = tmp_path / "faces.jsonl"
    done = affectlite_run("--source", tmp_path / "cut.avi", "--bundle", tiny_bundle.path,
                          "--jsonl", out)  # fmt: skip
    assert done.returncode == 0, done.stderr
    count = len(read_lines(out))
    assert 0 < count < 20
    assert f"ended after {count} of the 20 frames its header declares" in done.stderr


def test_threads_above_the_cores_are_warned_about(tmp_path, tiny_bundle, caplog):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    threads = (os.cpu_count() or 1) + 1
    args = ["run", "--source", str(tmp_path / "a.png"), "--bundle", str(tiny_bundle.path)]
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--jsonl", str(tmp_path / "o.jsonl"), "--threads", str(threads)]) == 0
    assert f"{threads} interpreter threads on a machine with {threads - 1} cores" in caplog.text


@pytest.mark.parametrize("value", ["0", "-2", "four"])
def test_affectlite_threads_is_validated_with_its_own_message(
    tmp_path, tiny_bundle, capsys, monkeypatch, value
):
    monkeypatch.setenv("AFFECTLITE_THREADS", value)
    args = ["run", "--source", str(tmp_path), "--bundle", str(tiny_bundle.path)]
    assert main([*args, "--jsonl", str(tmp_path / "o.jsonl")]) == 2
    error = capsys.readouterr().err
    assert f"AFFECTLITE_THREADS={value!r}: must be a whole number" in error
    assert "not a loadable" not in error


def test_non_finite_numbers_are_written_as_null_not_invalid_json(tmp_path):
    out = JsonLines(tmp_path / "o.jsonl")
    out.open()
    out.write({"confidence": float("nan"), "box": [1.0, float("inf")], "frame": 0})
    out.finish()
    assert read_lines(tmp_path / "o.jsonl") == [
        {"confidence": None, "box": [1.0, None], "frame": 0}
    ]
