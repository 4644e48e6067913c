"""The offline-GPU recipe (train/offline_gpu.py): what travels, what comes back, the rebuild."""

from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from affectlite.errors import EnvironmentProblem, InputError
from affectlite.train import offline_gpu
from affectlite.train.offline_gpu import DRY_LIMITS, Limits


def test_the_travelling_tree_counts_tracked_untracked_and_carried_but_not_ignored(tmp_path):
    repo = tmp_path / "repo"
    (repo / "carry").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", repo], check=True)
    (repo / ".gitignore").write_text("/carry/\n/big/\n")
    (repo / "tracked.txt").write_bytes(b"x" * 100)
    subprocess.run(["git", "-C", repo, "add", "tracked.txt", ".gitignore"], check=True)
    (repo / "untracked.txt").write_bytes(b"y" * 10)
    (repo / "big").mkdir()
    (repo / "big" / "ignored.bin").write_bytes(b"z" * 10_000)
    (repo / "carry" / "data.tar.xz").write_bytes(b"w" * 1000)
    sizes = offline_gpu.travelling_bytes(repo, [repo / "carry"])
    assert sizes == {"working tree": 100 + 10 + len("/carry/\n/big/\n"), "carry": 1000}
    assert offline_gpu.check_travel(repo, [repo / "carry"], Limits(tree=1124)) == sizes
    with pytest.raises(
        EnvironmentProblem,
        match=r"MiB would travel \(working tree 0.0 MiB, carry 0.0 MiB\), over the",
    ):
        offline_gpu.check_travel(repo, [repo / "carry"], Limits(tree=1123))


def test_return_limits_name_what_is_over():
    limits = Limits(files=3, file=100, total=250)
    limits.check_return({"a": 100, "b": 100, "c": 50})
    with pytest.raises(ValueError, match="4 files to return, limit 3"):
        limits.check_return({"a": 1, "b": 1, "c": 1, "d": 1})
    with pytest.raises(ValueError, match="over 100 bytes: {'a': 101}"):
        limits.check_return({"a": 101})
    with pytest.raises(ValueError, match="300 bytes to return, limit 250"):
        limits.check_return({"a": 100, "b": 100, "c": 100})


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A run folder as `affectlite train` leaves it: the compact model (weights moved off their
    initial values), config.json, metrics.json and history.csv."""
    from affectlite.train.config import TrainConfig
    from affectlite.train.model import build_model

    run = tmp_path_factory.mktemp("run")
    config = TrainConfig(backbone="compact", input_size=48, weights="none", dropout=0.3)
    model = build_model("compact", 48, None, 0.3)
    rng = np.random.default_rng(0)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, 0.1, variable.shape).astype(variable.dtype))
    model.save(run / "best.keras")
    (run / "config.json").write_text(json.dumps({**asdict(config), "data": {"format": "packed"}}))
    (run / "metrics.json").write_text(json.dumps({"schema_version": 1, "accuracy": 0.5}))
    with open(run / "history.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["epoch", "loss", "val_loss"], [0, 2.0, 2.1], [1, 1.5, 1.7]])
    return run


def test_weights_come_back_in_half_precision_chunks_and_rebuild_the_model(trained_run, tmp_path):
    import keras

    returned, rebuilt = tmp_path / "returned", tmp_path / "rebuilt"
    index = offline_gpu.export_weights(trained_run, returned, DRY_LIMITS)
    assert index["stored_precision"] == "float16"  # float32 (2.5 MB) is over the 2 MB limit
    files = {p.name: p.stat().st_size for p in returned.iterdir()}
    assert len(files) == 8 and sum(files.values()) <= DRY_LIMITS.total
    assert max(files.values()) <= DRY_LIMITS.file
    assert sorted(name for name in files if name.startswith("weights-")) == [
        f"weights-{i:02d}.bin" for i in range(4)
    ]

    path = offline_gpu.rebuild(returned, rebuilt, DRY_LIMITS)
    assert json.loads((rebuilt / "rebuilt.json").read_text())["half_precision_rounded"] is True
    assert (rebuilt / "curves.png").stat().st_size > 0
    assert json.loads((rebuilt / "metrics.json").read_text())["accuracy"] == 0.5
    original = keras.models.load_model(trained_run / "best.keras")
    again = keras.models.load_model(path)
    for before, after in zip(original.weights, again.weights):
        assert before.path == after.path
        expected = np.asarray(before.numpy()).astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(np.asarray(after.numpy()), expected)
    faces = np.random.default_rng(1).integers(0, 256, (4, 48, 48, 3)).astype(np.float32)
    np.testing.assert_allclose(
        again.predict(faces, verbose=0), original.predict(faces, verbose=0), atol=0.05
    )


def test_float32_comes_back_exactly_when_it_fits(trained_run, tmp_path):
    index = offline_gpu.export_weights(trained_run, tmp_path / "returned", Limits())
    assert index["stored_precision"] == "float32" and not index["half_precision_rounded"]
    assert len(index["chunks"]) == 1


def test_a_damaged_or_missing_chunk_is_refused(trained_run, tmp_path):
    returned = tmp_path / "returned"
    offline_gpu.export_weights(trained_run, returned, DRY_LIMITS)
    chunk = returned / "weights-01.bin"
    data = bytearray(chunk.read_bytes())
    data[10] ^= 1
    chunk.write_bytes(bytes(data))
    with pytest.raises(InputError, match="weights-01.bin: missing or damaged"):
        offline_gpu.rebuild(returned, tmp_path / "rebuilt", DRY_LIMITS)
    chunk.unlink()
    with pytest.raises(InputError, match="weights-01.bin: missing or damaged"):
        offline_gpu.rebuild(returned, tmp_path / "rebuilt", DRY_LIMITS)
    (returned / "metrics.json").unlink()
    with pytest.raises(InputError, match="returned files missing: metrics.json"):
        offline_gpu.rebuild(returned, tmp_path / "rebuilt", DRY_LIMITS)
    assert not (tmp_path / "rebuilt").exists()


def test_weights_of_another_architecture_are_refused(trained_run, tmp_path):
    returned = tmp_path / "returned"
    offline_gpu.export_weights(trained_run, returned, DRY_LIMITS)
    config = json.loads((returned / "config.json").read_text())
    (returned / "config.json").write_text(json.dumps({**config, "backbone": "resnet50"}))
    with pytest.raises(InputError, match="weights do not match the resnet50 model"):
        offline_gpu.rebuild(returned, tmp_path / "rebuilt", DRY_LIMITS)


def test_weights_that_cannot_fit_are_refused_at_the_machine(trained_run, tmp_path):
    with pytest.raises(SystemExit, match="cannot come back within the limits"):
        offline_gpu.export_weights(trained_run, tmp_path / "out", Limits(files=5, file=8 * 1024))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "weights-07.bin").write_bytes(b"old")
    with pytest.raises(SystemExit, match="not empty"):
        offline_gpu.export_weights(trained_run, tmp_path / "used", Limits())


@pytest.mark.slow
def test_the_dry_run_trains_on_jax_without_tensorflow_and_converts_what_comes_back(tmp_path):
    """prepare → remote (a venv over TensorFlow-free packages, wheels installed offline, one
    JAX epoch) → finish (rebuild, int8 convert, evaluate), on 128 synthetic faces."""
    run = offline_gpu.dry_run(tmp_path)

    venv_python = tmp_path / "venv" / "bin" / "python"
    env = {"PYTHONPATH": str(tmp_path / "machine"), "PYTHONNOUSERSITE": "1", "KERAS_BACKEND": "jax"}
    probe = "import keras\nprint(keras.__file__)\nimport tensorflow\n"
    result = subprocess.run(
        [venv_python, "-c", probe], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert "No module named 'tensorflow'" in result.stderr  # the "machine" has no TensorFlow
    assert result.stdout.startswith(str(tmp_path / "venv"))  # Keras came from the carried wheel

    trained = json.loads((tmp_path / "runs" / "stage-1" / "config.json").read_text())
    assert trained["backend"] == "jax" and trained["data"]["format"] == "packed"
    returned = {p.name: p.stat().st_size for p in (tmp_path / "returned").iterdir()}
    DRY_LIMITS.check_return(returned)
    assert len([name for name in returned if name.startswith("weights-")]) == 4
    assert json.loads((run / "rebuilt.json").read_text())["half_precision_rounded"] is True
    report = (run / "int8-report" / "conversion.md").read_text()
    assert "gate passed" in report
    scored = json.loads((run / "val-int8.json").read_text())
    assert scored["n"] == 32


def test_prepare_options_reach_prepare():
    args = offline_gpu._parser().parse_args(
        ["prepare", "--data", "ferplus", "--stage", "--epochs 1", "--stage", "--epochs 2"]
    )
    assert args.command == "prepare" and args.stage == ["--epochs 1", "--epochs 2"]
    assert offline_gpu._parser().parse_args(["prepare", "--data", "d"]).max_file_mib == 16.0


@pytest.mark.parametrize(
    ("stage", "says"),
    [
        ("--backbone resnet50 --input-size 96", "--weights imagenet cannot be fetched"),
        ("--backbone compact --weights none --out elsewhere", "--out is set by `remote`"),
        ("--backbone compact --weights none --input-size 8", "--input-size must be at least"),
        ("--backbone compact --weights none --epochs", "refused by `affectlite train`"),
        ("--backbone compact --weights none --distribute mirrored", "not available on the jax"),
    ],
)
def test_prepare_refuses_a_stage_the_machine_would_refuse_before_packing(tmp_path, stage, says):
    (tmp_path / "faces").mkdir()
    work = tmp_path / "work"
    argv = ["prepare", "--data", str(tmp_path / "faces"), "--work", str(work)]
    with pytest.raises(SystemExit) as stopped:
        offline_gpu.main([*argv, "--stage", "--backbone compact --weights none", "--stage", stage])
    assert str(stopped.value).startswith("--stage 2 (") and says in str(stopped.value)
    assert not work.exists()


def test_the_makefile_resnet50_recipe_parses_here_and_for_the_gpu_machine():
    from test_readme import parse

    shown = subprocess.run(
        ["make", "-n", "--no-print-directory", "resnet50-bundle", "resnet50-offline"],
        cwd=offline_gpu.REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = re.sub(r"\\\n\s*", "", shown).splitlines()
    commands = [
        shlex.split(line.split("/bin/", 1)[1]) for line in lines if "bin/affectlite " in line
    ]
    assert [words[1] for words in commands] == ["train", "convert", "evaluate"]
    for words in commands:
        parse(words)
    trained = shlex.join(commands[0])
    assert "--backend jax" in trained and "--backbone resnet50" in trained
    (prepare,) = [shlex.split(line) for line in lines if "offline_gpu prepare" in line]
    stage = prepare[prepare.index("--stage") + 1]
    offline_gpu.check_stages([shlex.split(stage)])
    assert stage in trained
    (publish,) = [line for line in lines if "convert.publish" in line]
    assert "--dest edge_app/models/resnet50" in publish


def test_the_default_stages_are_the_makefiles_default_bundle_trainings():
    shown = subprocess.run(
        ["make", "-n", "--no-print-directory", "default-bundle"],
        cwd=offline_gpu.REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = re.sub(r"\\\n\s*", "", shown).splitlines()
    trainings = [shlex.split(line) for line in lines if "bin/affectlite train " in line]
    set_there = ("--data", "--format", "--ferplus-mode", "--holdout", "--out", "--init")
    stages = []
    for words in trainings:
        options = words[words.index("train") + 1 :]
        pairs = [options[i : i + 2] for i in range(0, len(options), 2)]
        stages.append(sorted(tuple(pair) for pair in pairs if pair[0] not in set_there))
    mine = [sorted(zip(words[::2], words[1::2])) for words in map(shlex.split, offline_gpu.STAGES)]
    assert stages == mine
