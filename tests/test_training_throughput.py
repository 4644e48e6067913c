"""The training benchmark runs the kit's own train step on each backend in its own process,
interleaves the rounds and reports them with the CPU flags (structure only: no timing asserts)."""

from __future__ import annotations

import json

import pytest

from affectlite.benchmarks.training import main
from affectlite.errors import InputError


def test_training_benchmark_interleaves_both_backends(tmp_path, capsys):
    args = "--backend jax,tensorflow --backbones compact --input-size 32 --batch-size 8"
    args += f" --steps 2 --rounds 2 --breakdown --out {tmp_path}"
    assert main(args.split()) == 0
    result = json.loads((tmp_path / "training.json").read_text())
    assert set(result["variants"]) == {"jax/compact", "tensorflow/compact"}
    for name, row in result["variants"].items():
        assert row["backend"] == name.split("/")[0]
        assert row["steps"] == [2, 2]  # each round ran real optimizer steps
        assert len(row["rounds"]) == 2 and all(rate > 0 for rate in row["rounds"])
        assert all(loss == loss for loss in row["loss"])  # finite, not NaN
        assert row["parameters"] > 100_000
        assert row["device"]["platform"] == "cpu"
        assert row["data"] == "synthetic faces"
        parts = row["milliseconds_per_batch"]
        assert set(parts) == {"augment", "forward", "forward_backward"}
        assert all(ms > 0 for ms in parts.values())
    assert result["variants"]["jax/compact"]["jit_compile"] is True
    ratio = result["jax_over_tensorflow"]["compact"]
    jax_rate = result["variants"]["jax/compact"]["images_per_second"]
    tf_rate = result["variants"]["tensorflow/compact"]["images_per_second"]
    assert ratio == pytest.approx(jax_rate / tf_rate, rel=1e-2)
    assert result["cpu_flags"]
    markdown = (tmp_path / "training.md").read_text()
    assert "| jax | compact |" in markdown and "| tensorflow | compact |" in markdown
    assert result["cpu_flags"] in markdown
    err = capsys.readouterr().err
    order = [line.split()[2] for line in err.splitlines() if line.startswith("round ")]
    assert order == ["jax/compact", "tensorflow/compact", "tensorflow/compact", "jax/compact"]


def test_training_benchmark_reads_a_pack(tmp_path, write_face_folders, capfd):
    """Faces packed at 32 px train at 40 px: read from the pack and resized in the step."""
    from affectlite.train.datasets import load_dataset
    from affectlite.train.readers import packed

    faces = write_face_folders(tmp_path / "faces", 24, 1)
    index = load_dataset(faces, "folder", "train")
    pack = tmp_path / "pack"
    packed.pack([index], pack, 32, source={"root": str(faces), "format": "folder"}, progress=False)
    args = f"--backend jax --input-size 40 --batch-size 8 --steps 3 --rounds 1 --data {pack}"
    assert main([*args.split(), "--out", str(tmp_path / "out")]) == 0
    row = json.loads((tmp_path / "out" / "training.json").read_text())["variants"]["jax/compact"]
    assert row["data"] == f"pack {pack} (train split)"
    assert row["steps"] == [3]
    assert row["loader_images_per_second"] > 0
    before = (tmp_path / "out" / "training.json").read_bytes()
    assert main([*args.split(), "--out", str(tmp_path / "out")]) == InputError.exit_code
    assert (tmp_path / "out" / "training.json").read_bytes() == before  # never overwritten
    too_many = args.replace("--steps 3", "--steps 4")  # 24 faces: 3 batches of 8
    assert main(too_many.split()) == InputError.exit_code
    err = capfd.readouterr().err  # the worker's line, then the parent's
    assert "fewer than --steps 4" in err and "worker jax/compact: refused" in err


@pytest.mark.parametrize(
    "args",
    ["--backend torch", "--backbones resnet5", "--data /no/such/folder", "--rounds 0"],
)
def test_training_benchmark_refuses_bad_options(args, capsys):
    assert main(args.split()) == InputError.exit_code
    err = capsys.readouterr().err.strip()
    assert err.startswith("training benchmark: --") and "\n" not in err
