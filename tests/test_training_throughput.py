"""The training-throughput benchmark runs real fit steps and reports them with the CPU flags."""

from __future__ import annotations

import json

from affectlite.benchmarks.training import main


def test_training_throughput_writes_json_and_markdown(tmp_path, capsys):
    assert (
        main(
            [
                "--backbones",
                "compact",
                "--input-size",
                "32",
                "--batch-size",
                "8",
                "--steps",
                "2",
                "--rounds",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "training.json").read_text())
    row = result["backbones"]["compact"]
    assert len(row["rounds"]) == 2 and all(rate > 0 for rate in row["rounds"])
    assert row["parameters"] > 100_000
    assert result["cpu_flags"]
    assert "| compact |" in (tmp_path / "training.md").read_text()
    assert "images/s" in capsys.readouterr().out
