"""Scale-out: two `affectlite train` workers on 127.0.0.1 with TF_CONFIG train one model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_and_only_the_chief_writes_the_run(tmp_path, write_face_folders):
    """About 30 s on two idle cores; the workers advance in lockstep, so a loaded machine that
    starves either one slows both (hence the generous timeout)."""
    data, out = tmp_path / "data", tmp_path / "out"
    write_face_folders(data, 32, 16)
    out.mkdir()
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        scratch = tmp_path / f"tmp-{index}"
        scratch.mkdir()
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
            "TMPDIR": str(scratch),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "-1",
        }
        command = [
            sys.executable, "-m", "affectlite", "train", "--data", str(data), "--format",
            "folder", "--backbone", "compact", "--weights", "none", "--input-size", "32",
            "--epochs", "1", "--batch-size", "8", "--no-augment", "--out", str(out / "run"),
        ]  # fmt: skip
        # Output goes to files: a full pipe would stall one worker and with it the other.
        with open(tmp_path / f"worker-{index}.log", "w") as log:
            workers.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
    try:
        codes = [worker.wait(timeout=900) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    logs = [(tmp_path / f"worker-{i}.log").read_text()[-2500:] for i in range(2)]
    assert codes == [0, 0], "\n\n".join(logs)

    run = out / "run"
    assert [path.name for path in out.iterdir()] == ["run"]
    for name in ("config.json", "best.keras", "best.json"):
        assert (run / name).is_file(), name
    assert not list(run.glob("phase-*")) and not (run / "backup").exists()  # done: no resume state
    assert json.loads((run / "metrics.json").read_text())["n"] == 16
    # Each process names its TensorBoard event files after its pid: one writer, the chief.
    events = list((run / "tensorboard" / "train").iterdir())
    assert [event.name.split(".")[-3] for event in events] == [str(workers[0].pid)]
    # The other worker's scratch run folder is gone; nothing of either is left in temp.
    assert not any((tmp_path / "tmp-1").iterdir())
    assert not any((tmp_path / "tmp-0").iterdir())


@pytest.mark.parametrize(
    ("task", "jobs", "chief"),
    [
        (("worker", 0), {"worker": 2}, True),
        (("worker", 1), {"worker": 2}, False),
        (("worker", 0), {"chief": 1, "worker": 2}, False),
        (("chief", 0), {"chief": 1, "worker": 2}, True),
    ],
)
def test_is_chief_follows_the_multi_worker_guide(task, jobs, chief):
    import tensorflow as tf

    from affectlite.train.devices import is_chief

    spec = {job: [f"127.0.0.1:{2000 + i}" for i in range(n)] for job, n in jobs.items()}

    class Strategy:
        cluster_resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(spec), task_type=task[0], task_id=task[1]
        )

    assert is_chief(Strategy()) is chief


def test_worker_scratch_resumes_from_the_chief_state_and_is_deleted(tmp_path, monkeypatch):
    from affectlite.train.trainer import CONFIG_FILE, worker_scratch

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    run = tmp_path / "run"
    for name in (CONFIG_FILE, "best.json", "phase-head.weights.h5", "backup/finetune/a.json"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(name)
    (run / "tensorboard").mkdir()

    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with worker_scratch(run, resume=True) as scratch:
        assert scratch.parent == tmp_path / "tmp"
        copied = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*") if p.is_file())
        assert copied == sorted([CONFIG_FILE, "best.json", "phase-head.weights.h5",
                                 "backup/finetune/a.json"])  # fmt: skip
    assert not any((tmp_path / "tmp").iterdir())
    assert (run / "best.json").read_text() == "best.json"  # the chief's folder is untouched
