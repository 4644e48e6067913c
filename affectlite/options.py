"""Options shared by the subcommands, declared once: the same flag, default and check everywhere.

Each ``add_*`` function adds one family of options to a parser; :func:`check_paths` is what a
command calls first, before it imports TensorFlow, decodes data or loads a model. The ``affectlite``
command calls :func:`finish` after parsing: it merges ``--source`` into the positional sources
and fills ``--input-size`` from ``--backbone`` when it was not given.

The one vocabulary: ``--bundle NAME|PATH`` for bundles (names: the folders of
``edge_app/models``), ``--model FILE`` for ``.keras`` and ``.tflite`` files, sources as
positional arguments, ``--detector NAME|PATH``. Old spellings stay as hidden aliases.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from affectlite.errors import InputError
from affectlite.files import write_json

LIMIT_HELP = "use at most N images, drawn at random with --seed (0: all)"
INPUT_SIZES = {"compact": 48}
"""Input side per backbone where it is not :data:`DEFAULT_INPUT_SIZE` (the compact CNN reads
FER-sized faces)."""
DEFAULT_INPUT_SIZE = 112
"""Input side of the keras.applications backbones (ResNet50, MobileNetV3, EfficientNetV2):
112 costs a quarter of the paper's 224 and loses little on face crops."""
DETECTOR_NAMES = ("blazeface", "haar")
"""Face detectors by name (``edge_app.detector.DETECTORS``); a BlazeFace ``.tflite`` path also
works."""
SPLIT_AUTO = "auto"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default in ``--help``, unless it is empty or the help names it;
    keeps the line breaks of the description and of the examples after the options."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text or action.help == argparse.SUPPRESS or action.required:
            return action.help
        unset = action.default is None or action.default in ([], "")
        if unset and action.option_strings and action.nargs != 0:
            return f"{text} (default: none)"
        if unset or action.default is False or action.default is argparse.SUPPRESS:
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
    """``--model``: a ``.keras`` model or a ``.tflite`` (a bundle folder or name is accepted
    too); ``default`` for the bundle the kit ships (also what is used when ``default="default"``
    and none is given)."""
    parser.add_argument(
        "--model",
        type=bundle_path,
        required=required and default is None,
        default=None if default is None else bundle_path(default),
        metavar="FILE",
        help=".keras model or .tflite file (a bundle folder or name works too)",
    )


def add_bundle(
    parser: argparse.ArgumentParser, *, repeatable: bool = False, default: str | None = "default"
) -> None:
    """``--bundle NAME|PATH``: a bundle folder or the name of a shipped one (``default``,
    unless ``default`` says otherwise); or, with ``repeatable``, one or more bundles to
    compare."""
    names = ", ".join(shipped_bundle_names()) or "default"
    said = f" (default: {default})" if default else ""
    if repeatable:
        parser.add_argument(
            "--bundle",
            action="append",
            type=bundle_path,
            default=[],
            metavar="NAME|PATH",
            help=f"a bundle folder or a shipped bundle's name ({names}); repeat to compare, the "
            "first is the baseline of the ratios (default: default, when no --reference)",
        )
    else:
        parser.add_argument(
            "--bundle",
            type=bundle_path,
            default=default,
            metavar="NAME|PATH",
            help=f"a bundle folder or a shipped bundle's name ({names}){said}",
        )


def shipped_bundle_names() -> list[str]:
    """Names of the bundles that ship inside the package (``default`` first)."""
    from affectlite.edge_app.bundle import shipped_bundles

    return list(shipped_bundles())


def bundle_path(text: str) -> Path:
    """An option's bundle or model path; a shipped bundle's name (``default``) is its folder."""
    from affectlite.edge_app.bundle import resolve_bundle

    return resolve_bundle(text)


def detector_spec(text: str) -> str:
    """``--detector``'s value: a detector name, or the path of a BlazeFace ``.tflite``.

    Raises:
        argparse.ArgumentTypeError: for anything else (argparse: exit 2, one line).
    """
    if text in DETECTOR_NAMES:
        return text
    if text.endswith(".tflite"):
        if not Path(text).is_file():
            raise argparse.ArgumentTypeError(f"{text}: no such file")
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a detector; choose {', '.join(DETECTOR_NAMES)} or a BlazeFace .tflite"
    )


def add_detector(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: str | None = "blazeface"
) -> None:
    """``--detector NAME|PATH``: ``blazeface`` (the bundle's own model), ``haar`` (OpenCV) or a
    BlazeFace ``.tflite``."""
    parser.add_argument(
        "--detector",
        type=detector_spec,
        default=default,
        metavar="NAME|PATH",
        help=f"face detector: {', '.join(DETECTOR_NAMES)} or a BlazeFace .tflite file",
    )


class _Sources(argparse.Action):
    """Adds its values to the list of sources (positional SOURCE and ``--source`` alike)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        values = [values] if isinstance(values, str) else list(values or [])
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), *values])


def add_sources(parser: argparse.ArgumentParser, help: str, *, required: bool = True) -> None:
    """Positional ``SOURCE`` arguments, one or more (``--source`` kept as a hidden alias,
    repeatable): ``args.sources`` is their list. :func:`finish` checks that one is given
    when ``required``."""
    parser.add_argument(
        "sources", nargs="*", action=_Sources, default=None, metavar="SOURCE", help=help
    )
    parser.add_argument("--source", dest="sources", action=_Sources, help=argparse.SUPPRESS)
    parser.set_defaults(_sources_required=required)


def add_input_size(parser: argparse.ArgumentParser, *, backbone_option: bool = False) -> None:
    """``--input-size`` whose default comes from the backbone (one table, :data:`INPUT_SIZES`);
    with ``backbone_option`` also ``--backbone``, for commands that only need the size."""
    sizes = ", ".join(f"{size} for {name}" for name, size in INPUT_SIZES.items())
    parser.add_argument(
        "--input-size",
        type=int,
        default=None,
        help=f"crop side in pixels (default: from --backbone, {sizes}, "
        f"{DEFAULT_INPUT_SIZE} for the others)",
    )
    if backbone_option:
        from affectlite.train.config import BACKBONE_NAMES

        parser.add_argument(
            "--backbone",
            choices=BACKBONE_NAMES,
            default="resnet50",
            help="the classifier the crops are for; sets the default --input-size",
        )
    parser.set_defaults(_input_size_from_backbone=True)


def input_size_for(backbone: str | None) -> int:
    """The default input side of ``backbone``."""
    return INPUT_SIZES.get(backbone or "", DEFAULT_INPUT_SIZE)


def finish(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What parsing alone cannot do: check that a required SOURCE is given (``parser.error``:
    exit 2) and fill ``--input-size`` from ``--backbone`` (unless a bundle sets it)."""
    if hasattr(args, "_sources_required"):
        args.sources = args.sources or []
        if args._sources_required and not args.sources:
            parser.error("give a SOURCE")
    if getattr(args, "_input_size_from_backbone", False) and args.input_size is None:
        if not getattr(args, "bundle", None):
            args.input_size = input_size_for(getattr(args, "backbone", None))


def choose_split(args: argparse.Namespace, prog: str) -> str:
    """``--split``, or when it is ``auto``: the dataset's only split (said on standard error),
    else ``val``."""
    if args.split != SPLIT_AUTO:
        return args.split
    from affectlite.train.datasets import available_splits

    splits = available_splits(args.data, args.format)
    if len(splits) == 1:
        print(f"{prog}: {args.data} has one split, {splits[0]}; using it", file=sys.stderr)
        return splits[0]
    return "val"


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
    if split == SPLIT_AUTO:
        group.add_argument(
            "--split",
            default=SPLIT_AUTO,
            choices=(SPLIT_AUTO, *SPLITS),
            help=f"{split_help} (auto: the dataset's only split, else val)",
        )
    elif split is not None:
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
