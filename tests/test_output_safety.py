"""Outputs never destroy (issue 22): an annotated picture never replaces an input, an existing
``--out`` or ``--jsonl`` is refused unless ``--overwrite``, devices and FIFOs are written as they
are, a link is followed, a failed item is reported while the others go on, and ``predict`` ends
cleanly on a signal. Commands run in subprocesses where TensorFlow cannot be imported; the
cases that need root (device nodes, another user) skip without it."""

from __future__ import annotations

import json
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import NO_TENSORFLOW

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (device nodes, another user)")


def command(*args: object) -> list[str]:
    return [sys.executable, "-c", NO_TENSORFLOW, *map(str, args)]


def affectlite(*args: object, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=180, **kwargs)


def one_line(done: subprocess.CompletedProcess) -> str:
    """The single stderr line of a refused command (no traceback)."""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def write_video(path: Path, frames: int, size: tuple[int, int] = (160, 120)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture()
def photos(tmp_path, sample_photos) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut", "grace_hopper"):
        bgr = cv2.cvtColor(sample_photos[name], cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"{name}.jpg"), bgr)
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# predict: inputs, --out ----------------------------------------------------------------------


def test_predict_into_the_photos_folder_is_refused_and_keeps_them(photos, tiny_bundle):
    before = snapshot(photos)
    done = affectlite(
        "predict", photos / "astronaut.jpg", "--out", photos, "--bundle", tiny_bundle.path
    )
    assert done.returncode == 2 and "already holds files" in one_line(done)
    assert snapshot(photos) == before


def test_with_overwrite_an_annotated_picture_never_replaces_an_input(photos, tiny_bundle):
    clip = write_video(photos / "clip.mp4", 3)  # an MJPG AVI named .mp4: still a video
    before = snapshot(photos)
    done = affectlite(
        "predict", photos, clip, "--out", photos, "--overwrite", "--bundle", tiny_bundle.path
    )
    assert done.returncode == 0, done.stderr
    after = snapshot(photos)
    assert {name: after[name] for name in before} == before  # every input byte-identical
    names = {
        json.loads(line).get("annotated")
        for line in after["predictions.jsonl"].split(b"\n")
        if line
    }
    assert names == {"astronaut-2.jpg", "grace_hopper-2.jpg", "clip-2.mp4"}


def test_a_second_predict_into_the_same_out_is_refused_before_the_bundle(photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.jsonl").write_text('{"file": "earlier"}\n')
    done = affectlite("predict", photos, "--out", out, "--bundle", tmp_path / "no-bundle")
    assert done.returncode == 2
    assert "already holds files" in one_line(done)  # not the missing bundle: checked first
    assert (out / "predictions.jsonl").read_text() == '{"file": "earlier"}\n'


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_an_out_that_is_or_lies_under_a_file_is_one_line(photos, tmp_path, tiny_bundle, where):
    (tmp_path / "taken").write_text("mine")
    out = tmp_path / "taken" if where == "file" else tmp_path / "taken" / "out"
    done = affectlite("predict", photos, "--out", out, "--bundle", tiny_bundle.path)
    assert done.returncode == 2 and "--out" in one_line(done)
    assert (tmp_path / "taken").read_text() == "mine"


def as_nobody(*args: object) -> tuple[int, str]:
    """``affectlite ARGS`` run as the user ``nobody`` in a forked child: the interpreter here
    may live where ``nobody`` cannot read (``/root/.pyenv``), so everything it needs is imported
    first and the child only switches user. Returns the exit status and standard error."""
    import ai_edge_litert.interpreter  # noqa: F401  (loaded before the switch)

    from affectlite.cli import main
    from affectlite.edge_app import predict, runner  # noqa: F401

    user = pwd.getpwnam("nobody")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        status = 70
        try:
            os.close(read)
            os.dup2(write, 2)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            status = main([str(arg) for arg in args])
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            print(f"child: {error!r}", file=sys.stderr)
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read) as handle:
        err = handle.read()
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status), err


@pytest.fixture()
def shared(tmp_path, tiny_bundle, sample_photos) -> Path:
    """A folder every user can read, holding the tiny bundle and one photo."""
    folder = Path(tempfile.mkdtemp(prefix="affectlite-shared-"))
    shutil.copytree(tiny_bundle.path, folder / "bundle")
    cv2.imwrite(
        str(folder / "face.jpg"), cv2.cvtColor(sample_photos["astronaut"], cv2.COLOR_RGB2BGR)
    )
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield folder
    shutil.rmtree(folder)


@needs_root
def test_a_read_only_out_is_one_line_for_another_user(shared):
    status, err = as_nobody(
        "predict", shared / "face.jpg", "--out", shared / "out", "--bundle", shared / "bundle"
    )
    assert status == 2 and "cannot create this folder" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1


# run: --jsonl -------------------------------------------------------------------------------


def run_jsonl(source: Path, jsonl: object, bundle: Path, *extra: object, **kwargs):
    return affectlite(
        "run", "--source", source, "--bundle", bundle, "--jsonl", jsonl, *extra, **kwargs
    )


def test_an_existing_jsonl_is_refused_before_the_bundle_unless_overwrite(
    photos, tmp_path, tiny_bundle
):
    log = tmp_path / "faces.jsonl"
    log.write_text("an earlier run\n")
    done = run_jsonl(photos, log, tmp_path / "no-bundle")
    assert done.returncode == 2 and "already exists" in one_line(done)
    assert log.read_text() == "an earlier run\n"
    done = run_jsonl(photos, log, tiny_bundle.path, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert len(log.read_text().splitlines()) == 2


def test_the_jsonl_is_never_the_source_even_with_overwrite(photos, tiny_bundle):
    photo = photos / "astronaut.jpg"
    before = photo.read_bytes()
    done = run_jsonl(photo, photo, tiny_bundle.path, "--overwrite")
    assert done.returncode == 2 and "is one of the source's files" in one_line(done)
    assert photo.read_bytes() == before


def test_a_jsonl_symlink_is_followed_and_kept(photos, tmp_path, tiny_bundle):
    target = tmp_path / "logs" / "faces.jsonl"
    target.parent.mkdir()
    link = tmp_path / "faces.jsonl"
    link.symlink_to(target)
    done = run_jsonl(photos, link, tiny_bundle.path)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(target.read_text().splitlines()) == 2


def test_a_fifo_is_written_into_not_replaced(photos, tmp_path, tiny_bundle):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    done = run_jsonl(photos, fifo, tiny_bundle.path)
    reader.join(60)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    lines = [json.loads(line) for line in received[0].decode().splitlines()]
    assert [Path(line["file"]).name for line in lines] == ["astronaut.jpg", "grace_hopper.jpg"]


@needs_root
def test_a_device_node_stays_a_device(photos, tmp_path, tiny_bundle):
    null = tmp_path / "null"  # a private /dev/null: the real one is never put at risk
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    done = run_jsonl(photos, null, tiny_bundle.path)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert not list(tmp_path.glob(".null*")) and not (tmp_path / "null.partial").exists()


@needs_root
def test_dev_null_works_for_another_user(shared):
    status, err = as_nobody(
        "run",
        "--source",
        shared / "face.jpg",
        "--bundle",
        shared / "bundle",
        "--jsonl",
        "/dev/null",
    )
    assert status == 0, err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


# predict: one failed item, the others go on ----------------------------------------------------


def test_a_video_that_cannot_be_encoded_is_one_item_and_the_batch_goes_on(
    photos, tmp_path, tiny_bundle
):
    tiny = write_video(tmp_path / "tiny.avi", 3, (1, 1))  # FFmpeg's MPEG-4 refuses 1×1 frames
    out = tmp_path / "out"
    done = affectlite("predict", tiny, photos, "--out", out, "--bundle", tiny_bundle.path)
    assert done.returncode == 1, done.stderr  # an output could not be written
    assert "no FFmpeg backend" not in done.stderr and "Traceback" not in done.stderr
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert "cannot encode its 1×1 frames" in lines[0]["error"]
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut.jpg",
        "grace_hopper.jpg",
        "predictions.jsonl",
    ]


def limit_file_size(size: int):
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))

    return limit


def test_a_video_cut_short_by_a_full_disk_never_lands_under_its_name(photos, tmp_path, tiny_bundle):
    clip = write_video(tmp_path / "clip.avi", 40, (320, 240))  # noise: a large MP4
    out = tmp_path / "out"
    done = subprocess.run(
        command("predict", clip, photos, "--out", out, "--bundle", tiny_bundle.path),
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=limit_file_size(200_000),
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["astronaut.jpg", "grace_hopper.jpg", "predictions.jsonl"]  # no clip, no temp
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert "unplayable" in lines[-3]["error"]


def test_a_photo_that_cannot_be_written_is_one_item(photos, tmp_path, tiny_bundle):
    out = tmp_path / "out"
    done = subprocess.run(
        command("predict", photos, "--out", out, "--bundle", tiny_bundle.path),
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=limit_file_size(4096),  # the JSON lines fit, the annotated JPEGs do not
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "--jsonl" not in done.stderr and "cannot write astronaut.jpg" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["predictions.jsonl"]


# predict: signals ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_predict_like_run(photos, tmp_path, tiny_bundle, sig):
    clip = write_video(tmp_path / "long.avi", 2000, (96, 64))
    out = tmp_path / "out"
    process = subprocess.Popen(
        command("predict", clip, photos, "--out", out, "--bundle", tiny_bundle.path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = out / "predictions.jsonl.partial"
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.read_bytes().count(b"\n") >= 3):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + sig, err
    lines = [json.loads(line) for line in partial.read_text().splitlines()]
    assert lines[-1]["event"] == "interrupted" and lines[-1]["signal"] == sig.name
    assert sorted(p.name for p in out.iterdir()) == ["predictions.jsonl.partial"]  # no temp MP4


# limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf"])
@pytest.mark.parametrize("command_name", ["predict", "run"])
def test_max_pixels_must_be_finite(photos, tmp_path, tiny_bundle, value, command_name):
    out = tmp_path / "out"
    source = ["--source", photos] if command_name == "run" else [photos]
    where = ["--jsonl", tmp_path / "o.jsonl"] if command_name == "run" else ["--out", out]
    done = affectlite(
        command_name, *source, *where, "--bundle", tiny_bundle.path, f"--max-pixels={value}"
    )
    assert done.returncode == 2 and "--max-pixels must be" in one_line(done)
    assert not out.exists() and not (tmp_path / "o.jsonl").exists()
