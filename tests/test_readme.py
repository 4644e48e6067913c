"""The README's commands run as written: every command of its ``bash`` blocks is parsed as
written, then run, in order, on synthetic datasets in the layouts it names (AffectNet, FER+),
with the scaled-down options of :data:`SUBSTITUTIONS`. Commands that need a camera, a display
or the network are parsed only (:data:`PARSE_ONLY`); ``make`` and ``pip`` lines are not
``affectlite`` commands (:data:`NOT_AFFECTLITE`). Each list says why."""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from affectlite.cli import COMMANDS, build_parser
from affectlite.options import finish

REPO = Path(__file__).resolve().parents[1]

NOT_AFFECTLITE = {
    "make demo": "rebuilds .venv and runs the demo: tests/test_demo.py runs the demo's flow",
    "make test": "this test suite itself",
    "pip install": "installs packages from the network",
}
PARSE_ONLY = {
    "affectlite train --resume": "needs an interrupted run: tests/test_train.py stops and "
    "resumes one",
    "affectlite app": "opens a Kivy window: needs a display (tests/test_app.py runs it offscreen)",
    "affectlite run picamera2": "needs a Raspberry Pi camera (picamera2)",
}
SUBSTITUTIONS: list[tuple[str, str, str]] = [
    ("/data/AffectNet", "{affectnet}", "a synthetic dataset in AffectNet's layout"),
    ("data/ferplus", "{ferplus}", "a synthetic dataset in FER+'s layout"),
    (
        r"--backbone resnet50 --input-size 112 --weights (imagenet|none)",
        "--backbone compact --input-size 48 --weights none",
        "ImageNet weights need the network and ResNet50 a GPU: the compact CNN stands in",
    ),
    (r"--input-size 112", "--input-size 48", "the compact CNN's input side"),
    (r"--epochs \d+", "--epochs 1", "one epoch: the flow, not the accuracy"),
    (r"--batch-size 256", "--batch-size 32", "a batch the small training set fills"),
    (
        r"--mode (int8|float32)",
        r"--mode \1 --allow-weak --force",
        "a one-epoch model is at chance, which the gate rightly refuses (tests/test_convert.py "
        "tests the gate)",
    ),
    (
        r"--threads 1,2,4",
        "--threads 1,2 --runs 3 --warmup 1 --frames 1 --no-probe --no-plots",
        "fewer rounds, no probes and no plots",
    ),
]


def readme_commands() -> list[str]:
    """Every command line of the README's ``bash`` blocks, continuation lines joined."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def kind(command: str) -> tuple[str, str]:
    """``("skip" | "parse" | "run", reason)``."""
    for prefix, reason in NOT_AFFECTLITE.items():
        if command.startswith(prefix):
            return "skip", reason
    for prefix, reason in PARSE_ONLY.items():
        if command.startswith(prefix):
            return "parse", reason
    return "run", ""


def parse(words: list[str]) -> None:
    """``affectlite WORDS`` parsed (and finished) exactly as the command would."""
    assert words[0] == "affectlite", words
    name = words[1]
    parser = build_parser(name, importlib.import_module(COMMANDS[name][0]))
    finish(parser, parser.parse_args(words[2:]))


def substituted(command: str, paths: dict[str, Path]) -> str:
    for pattern, replacement, _ in SUBSTITUTIONS:
        command = re.sub(pattern, replacement, command)
    return command.format(**{name: str(path) for name, path in paths.items()})


COMMANDS_IN_README = readme_commands()


def test_every_readme_command_parses_and_every_exception_is_used():
    assert len(COMMANDS_IN_README) >= 20
    for command in COMMANDS_IN_README:
        if kind(command)[0] != "skip":
            parse(shlex.split(command))
    for listed in (*NOT_AFFECTLITE, *PARSE_ONLY):
        assert any(command.startswith(listed) for command in COMMANDS_IN_README), listed
    for pattern, _, _ in SUBSTITUTIONS:
        assert any(re.search(pattern, command) for command in COMMANDS_IN_README), pattern


def test_the_recipe_of_the_shipped_model_matches_the_makefile():
    makefile = (REPO / "Makefile").read_text()
    recipe = [c for c in COMMANDS_IN_README if "runs/ferplus-compact-48" in c]
    assert len(recipe) == 4
    shared = makefile.split("FERPLUS_ARGS :=")[1].split("default-bundle: setup")[0]
    for option in re.findall(r"--[a-z-]+ [^\s\\$]+", shared):
        if option != "--input-size 48":  # the compact backbone's default
            assert all(option in c for c in recipe[:2]), option
    for option in ("--epochs 30", "--learning-rate 0.0015", "--balance none", "--dropout 0.4"):
        assert option in recipe[0] and option in makefile
    for option in ("--epochs 22", "--learning-rate 0.0008", "--balance sqrt", "--dropout 0.3"):
        assert option in recipe[1] and option in makefile
    for option in ("--mode int8", "--n 500", "--logit-adjust", "--holdout 0.1"):
        assert option in recipe[2] and option in makefile


@pytest.mark.slow
def test_readme_commands_run_on_synthetic_datasets(tmp_path, sample_photos):
    from affectlite.train.synthetic import write_dataset

    paths = {
        "affectnet": write_dataset(tmp_path / "affectnet", "affectnet", 160, 48, size=64),
        "ferplus": write_dataset(tmp_path / "ferplus", "ferplus", 240, 48),
    }
    work = tmp_path / "work"
    work.mkdir()
    photo = cv2.cvtColor(sample_photos["astronaut"], cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(work / "photo.jpg"), photo)
    ran = []
    for command in COMMANDS_IN_README:
        if kind(command)[0] != "run":
            continue
        words = shlex.split(substituted(command, paths))
        done = subprocess.run(
            [sys.executable, "-m", "affectlite", *words[1:]],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{shlex.join(words)}\n{done.stdout[-2000:]}{done.stderr}"
        ran.append(words[1])
    assert ran.count("train") == 6 and ran.count("convert") == 3 and "bench" in ran
    assert (work / "bundles" / "affectnet-r50-float32" / "bundle.json").is_file()
    assert (work / "runs" / "ferplus-compact-48-ft" / "ferplus-valid.json").is_file()
    assert (work / "affectnet.json").is_file()
