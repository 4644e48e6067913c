"""The ``affectlite`` command: one entry point, one module per subcommand.

Each subcommand's module is imported only when that subcommand runs, so device commands
(``run``, ``app``, ``bench``) never import TensorFlow. A subcommand module provides
``add_arguments(parser)`` and ``run(args) -> int``; its top-level imports stay light (no
TensorFlow, no Kivy), so ``--help`` answers at once and has no side effects.

TensorFlow's, absl's, CUDA's and XNNPACK's start-up chatter is hidden unless ``--verbose``
(:mod:`affectlite.quiet`); an :class:`~affectlite.errors.AffectliteError` becomes one line on
standard error and its exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap
import traceback
from types import ModuleType

from affectlite import __version__
from affectlite.errors import AffectliteError
from affectlite.options import HelpFormatter, finish
from affectlite.quiet import VERBOSE_ENV, quiet_tensorflow, quiet_third_parties

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("affectlite.demo", "whole flow on the embedded synthetic faces, no download"),
    "data": ("affectlite.train.data_cli", "inspect or pack an expression dataset"),
    "train": (
        "affectlite.train.cli",
        "train the classifier (ResNet50 on a GPU, the compact CNN on a CPU)",
    ),
    "evaluate": (
        "affectlite.train.evaluate",
        "score a Keras model, .tflite or bundle on a dataset",
    ),
    "calibrate": ("affectlite.calibration.cli", "build the representative set / fit temperature"),
    "convert": ("affectlite.convert.cli", "quantize to TFLite, verify, gate and write a bundle"),
    "bench": ("affectlite.benchmarks.cli", "measure per-stage latency of bundles on this device"),
    "predict": (
        "affectlite.edge_app.predict",
        "your photos, folders, videos or camera: annotated pictures and JSON lines out",
    ),
    "run": ("affectlite.edge_app.runner", "headless camera/video/folder runner, JSON lines out"),
    "app": ("affectlite.edge_app.app", "the Kivy app (Raspberry Pi, Android, desktop)"),
}


EXAMPLES: dict[str, tuple[str, ...]] = {
    "demo": ("affectlite demo", "affectlite demo --out runs/demo --epochs 4"),
    "data inspect": (
        "affectlite data inspect data/ferplus --format ferplus --json ferplus.json",
        "affectlite data inspect faces/ --format folder --split train",
    ),
    "data pack": (
        "affectlite data pack data/ferplus --format ferplus --backbone compact --out packed/",
    ),
    "train": (
        "affectlite train --data data/ferplus --format ferplus --backbone compact --weights none "
        "--epochs 30 --out runs/ferplus-compact",
        "affectlite train --resume runs/ferplus-compact",
    ),
    "evaluate": (
        "affectlite evaluate --data data/ferplus --format ferplus --split val",
        "affectlite evaluate --model runs/ferplus-compact/best.keras --data faces/ --format folder "
        "--json val.json",
    ),
    "calibrate": (
        "affectlite calibrate --data data/ferplus --format ferplus --backbone compact --out rep/",
        "affectlite calibrate --source 0 --bundle default --out rep/",
    ),
    "convert": (
        "affectlite convert --model runs/ferplus-compact/best.keras --data data/ferplus "
        "--format ferplus --out bundles/int8",
        "affectlite convert --model best.keras --mode float32 --data faces/ --format folder "
        "--out bundles/float32",
    ),
    "bench": (
        "affectlite bench",
        "affectlite bench --bundle bundles/int8 --bundle bundles/float32 --threads 1,2,4",
    ),
    "predict": (
        "affectlite predict photo.jpg",
        "affectlite predict photos/ clip.mp4 --out runs/mine",
    ),
    "run": (
        "affectlite run 0 --jsonl faces.jsonl",
        "affectlite run picamera2 --bundle bundles/int8",
    ),
    "app": ("affectlite app", "affectlite app --bundle bundles/int8 --fullscreen"),
}
"""Examples shown at the end of each command's ``--help``."""


def _overview() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    return (
        f"usage: affectlite <command> [options] [--verbose]\n\naffectlite {__version__}: "
        f"on-device facial emotion recognition.\n\ncommands:\n{rows}\n\n"
        "Run `affectlite <command> --help` for a command's options. --verbose shows the "
        "TensorFlow/LiteRT, OpenCV and converter log lines that are hidden by default and the "
        "traceback behind an error; it may stand anywhere on the line."
    )


def build_parser(name: str, module: ModuleType) -> argparse.ArgumentParser:
    """The parser of ``affectlite NAME``: the module's options, ``--verbose`` and the
    examples (:data:`EXAMPLES`) after any epilog the module wrote."""
    parser = argparse.ArgumentParser(
        prog=f"affectlite {name}", description=COMMANDS[name][1], formatter_class=HelpFormatter
    )
    module.add_arguments(parser)
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show the log lines hidden by default and the traceback behind an error",
    )
    _add_examples(name, parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                _add_examples(f"{name} {sub}", subparser)
    return parser


def _add_examples(name: str, parser: argparse.ArgumentParser) -> None:
    examples = EXAMPLES.get(name)
    if not examples:
        return
    text = textwrap.fill(parser.epilog, 79) + "\n\n" if parser.epilog else ""
    parser.epilog = text + "examples:\n" + "\n".join(f"  {example}" for example in examples)


def _say_default_bundle(name: str, args: argparse.Namespace) -> None:
    """One line on stderr when a command runs the shipped default bundle."""
    from affectlite.edge_app.bundle import DEFAULT_BUNDLE, resolve_bundle

    for option in ("bundle", "model"):
        values = getattr(args, option, None)
        values = values if isinstance(values, list) else [values]
        if any(v is not None and resolve_bundle(v) == DEFAULT_BUNDLE for v in values):
            print(
                f"affectlite {name}: using the default bundle {DEFAULT_BUNDLE} (compact CNN "
                "trained on FER+, int8; --bundle NAME|PATH for another)",
                file=sys.stderr,
            )
            return


def _take_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--verbose``, wherever it stands (before a ``--``), and whether it
    was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [arg for arg in argv[:end] if arg != "--verbose"] + argv[end:]
    return kept, len(kept) < len(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs one subcommand and returns its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, verbose = _take_verbose(argv)
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    quiet_tensorflow()
    quiet_third_parties()
    if not argv or argv[0] in ("-h", "--help"):
        print(_overview())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"affectlite {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"affectlite: unknown command {name!r}.\n\n{_overview()}", file=sys.stderr)
        return 2
    module_name, text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            missing = error.name or "a dependency"
            print(
                f"affectlite {name}: needs the package {missing!r}, which is not installed. "
                "Install the matching extra, e.g. pip install 'affectlite[train]' or "
                "'affectlite[edge]'.",
                file=sys.stderr,
            )
        else:
            print(f"affectlite {name}: this stage is not built yet.", file=sys.stderr)
        return 2
    parser = build_parser(name, module)
    args = parser.parse_args(rest)
    finish(parser, args)
    _say_default_bundle(name, args)
    try:
        return int(module.run(args) or 0)
    except AffectliteError as error:
        # The one place a domain error becomes its exit code; anything else is a bug and
        # keeps its traceback.
        if verbose:
            traceback.print_exc()
        action = getattr(args, "action", None)  # `data inspect`, `data pack`
        prog = f"affectlite {name}" + (f" {action}" if action else "")
        print(f"{prog}: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"affectlite {name}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
