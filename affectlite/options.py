"""Options shared by the subcommands, declared once: the same flag, default and check everywhere.

Each ``add_*`` function adds one family of options to a parser; :func:`check_paths` is what a
command calls first, before it imports TensorFlow, decodes data or loads a model.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from affectlite.errors import InputError
from affectlite.files import write_json

LIMIT_HELP = "use at most N images, drawn at random with --seed (0: all)"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in ``--help``, unless it is empty or the help names it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, [], "", argparse.SUPPRESS) or "default" in (
            action.help or ""
        ):
            return action.help
        return super()._get_help_string(action)


def check_paths(**paths: str | Path | None) -> None:
    """Raises :class:`InputError` for the first given path that does not exist.

    Keyword names are flag names with ``_`` for ``-``: ``check_paths(data=args.data)``.
    """
    for name, path in paths.items():
        if path is not None and not Path(path).exists():
            raise InputError(f"--{name.replace('_', '-')} {path}: no such file or folder.")


def check_new_folder(path: Path, overwrite: bool) -> None:
    """Refuses an existing output folder unless ``overwrite``."""
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another --out or pass --overwrite.")


def check_positive(**values: float | None) -> None:
    """Raises :class:`InputError` naming the first option that is below 1 or not a finite
    number (``nan`` and ``inf`` would turn a limit off)."""
    for name, value in values.items():
        flag = f"--{name.replace('_', '-')}"
        if value is not None and not math.isfinite(value):
            raise InputError(f"{flag} must be a finite number, got {value}.")
        if value is not None and value < 1:
            raise InputError(f"{flag} must be at least 1, got {value}.")


def add_max_pixels(parser: argparse.ArgumentParser, default: float) -> None:
    """``--max-pixels N``: still images over N pixels are refused from their header."""
    parser.add_argument(
        "--max-pixels",
        type=float,
        default=default,
        help="refuse still images over this many pixels, from their header (default 40e6)",
    )


def add_overwrite(parser: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: allow replacing ``what`` when it already exists."""
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what}")


def add_json(parser: argparse.ArgumentParser, what: str = "the report") -> None:
    """``--json PATH``: also write ``what`` as JSON; ``-`` prints it to standard output."""
    parser.add_argument(
        "--json", metavar="PATH", help=f"write {what} as JSON to PATH ('-': standard output)"
    )


def add_model(
    parser: argparse.ArgumentParser, required: bool = True, default: str | None = None
) -> None:
    """``--model``: a ``.keras`` model, a ``.tflite`` or a bundle folder; ``default`` for the
    bundle the kit ships (also what is used when ``default="default"`` and none is given)."""
    parser.add_argument(
        "--model",
        type=bundle_path,
        required=required and default is None,
        default=None if default is None else bundle_path(default),
        help="bundle folder, .tflite or .keras model ('default': the shipped bundle)",
    )


def add_bundle(parser: argparse.ArgumentParser, *, repeatable: bool = False) -> None:
    """``--bundle``: a bundle folder, ``default`` (the shipped one) unless given; or, with
    ``repeatable``, one or more bundles to compare."""
    if repeatable:
        parser.add_argument(
            "--bundle",
            action="append",
            type=bundle_path,
            default=[],
            help="a bundle folder ('default': the shipped one); repeat to compare, the first "
            "is the baseline of the ratios",
        )
    else:
        parser.add_argument(
            "--bundle", type=bundle_path, default="default", help="the model bundle folder"
        )


def bundle_path(text: str) -> Path:
    """An option's bundle or model path; ``default`` is the bundle the kit ships."""
    from affectlite.edge_app.bundle import resolve_bundle

    return resolve_bundle(text)


def add_dataset(
    parser: argparse.ArgumentParser,
    *,
    required: bool = False,
    split: str | None = "val",
    split_help: str = "dataset split",
    packed: bool = False,
) -> None:
    """``--data``, ``--format``, ``--ferplus-mode`` and (unless ``split`` is None) ``--split``;
    formats and modes come from the reader registry."""
    from affectlite.train.datasets import FERPLUS_MODES, FORMATS, SPLITS

    formats = FORMATS + (("packed",) if packed else ())
    group = parser.add_argument_group("dataset")
    group.add_argument(
        "--data", type=Path, required=required, help="dataset root (or the FER2013 CSV)"
    )
    layout = "dataset layout" + (
        " (packed: a folder from `affectlite data pack`)" if packed else ""
    )
    group.add_argument("--format", required=required, choices=formats, help=layout)
    group.add_argument(
        "--ferplus-mode",
        default="majority",
        choices=FERPLUS_MODES,
        help="how FER+ votes become labels",
    )
    if split is not None:
        group.add_argument("--split", default=split, choices=SPLITS, help=split_help)


def add_limit(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    """``--limit N`` (random, seeded: see :func:`affectlite.train.datasets.limit_samples`)."""
    parser.add_argument("--limit", type=int, default=0, help=LIMIT_HELP)
    if seed:
        parser.add_argument("--seed", type=int, default=0, help="random seed")


def emit_json(target: str | Path | None, document: dict) -> None:
    """Writes ``document`` as JSON to ``target`` atomically; ``-`` prints it; None does nothing."""
    if target is None:
        return
    if str(target) == "-":
        print(json.dumps(document, indent=2, allow_nan=False))
        return
    write_json(target, document)
    print(f"report: {target}")
