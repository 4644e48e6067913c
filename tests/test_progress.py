"""Long work shows progress: a tqdm bar on a terminal, a line per 10 % in a pipe or a log."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
import pytest

from affectlite.progress import Progress, batched, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def immediate(monkeypatch):
    """Lines from the first 10 % on (the real threshold spares work under a second)."""
    monkeypatch.setattr(Progress, "quiet_seconds", 0.0)


def test_a_pipe_gets_a_line_per_ten_percent(immediate):
    out = io.StringIO()
    with Progress(50, "crop val", file=out) as bar:
        for _ in range(50):
            bar.update()
    lines = out.getvalue().splitlines()
    done = [int(re.match(r"crop val: (\d+)/50 \(\d+ %, \d+ s\)$", line).group(1)) for line in lines]
    assert done == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]


def test_quick_work_in_a_pipe_gets_its_end_line_only():
    out = io.StringIO()
    with Progress(1000, "inspect train", file=out) as bar:
        bar.update(1000)
    assert out.getvalue() == "inspect train: 1000/1000 (100 %, 0 s)\n"


def test_a_terminal_gets_a_tqdm_bar():
    out = Terminal()
    with Progress(4, "verify", file=out) as bar:
        bar.update(4)
    assert "\r" in out.getvalue() and "4/4" in out.getvalue() and "%|" in out.getvalue()


def test_progress_and_batched_give_back_everything(immediate, capsys):
    assert list(progress(range(7), desc="n")) == list(range(7))
    images = np.arange(10)[:, None]
    np.testing.assert_array_equal(batched(lambda x: x * 2, images, 3, "double"), images * 2)
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("double: 10/10 (100 %") and len(lines) > 2


def test_evaluate_in_a_pipe_reports_progress(tmp_path, tiny_bundle, write_face_folders):
    root = write_face_folders(tmp_path / "faces", 0, 40)
    done = subprocess.run(
        [sys.executable, "-m", "affectlite", "evaluate", "--bundle", str(tiny_bundle.path),
         "--data", str(root), "--format", "folder", "--split", "val"],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "crop val: 40/40 (100 %" in done.stderr and "classify: 40/40 (100 %" in done.stderr
    assert "\r" not in done.stderr  # no bar in a pipe


def test_training_in_a_pipe_gets_a_line_per_ten_percent_of_each_epoch(immediate, capsys):
    """``affectlite train`` in a pipe: Keras prints one line an epoch, this callback the rest."""
    import keras

    from affectlite.train.callbacks import EpochProgress

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8)])
    model.compile("sgd", "mse")
    x, y = np.zeros((40, 2), np.float32), np.zeros((40, 8), np.float32)
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[EpochProgress()])
    lines = capsys.readouterr().out.splitlines()
    for epoch in (1, 2):
        done = [
            int(re.match(rf"epoch {epoch}/2: (\d+)/20 \(\d+ %, \d+ s\)$", line).group(1))
            for line in lines
            if line.startswith(f"epoch {epoch}/2:")
        ]
        assert done == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
