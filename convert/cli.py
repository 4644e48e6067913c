"""``affectlite convert``: quantize a Keras model, verify it against the float model, gate, bundle.

Exit status: 0 bundle written; 1 conversion failed; 2 bad input (missing model, labels that do
not match, bad representative set, existing output); 3 the converted model failed the gate (no
bundle written unless ``--force``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.preprocess import CropPolicy
from affectlite.errors import InputError
from affectlite.options import (
    LIMIT_HELP,
    SPLIT_AUTO,
    add_dataset,
    check_new_folder,
    check_paths,
    choose_split,
    detector_spec,
)

from .quantization import FLOAT_LAYER_IO, MODES, check_options
from .verify import WEAK_MARGIN

_IO_TYPES = tuple(dict.fromkeys(io for spec in MODES.values() for io in spec.io_types))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    modes = "; ".join(
        f"{m.name}: {m.description} (io {'|'.join(m.io_types)})" for m in MODES.values()
    )
    parser.epilog = (
        f"Modes: {modes}. --float-layers needs io {'|'.join(FLOAT_LAYER_IO)}. Exit status: 0 "
        "bundle written, 1 conversion failed, 2 bad input, 3 gate failed."
    )
    parser.add_argument("--model", type=Path, required=True, help="the trained Keras model")
    parser.add_argument("--mode", default="int8", help=f"one of {', '.join(MODES)} (default int8)")
    parser.add_argument(
        "--io", help=f"input/output type: {', '.join(_IO_TYPES)} (default: mode's first)"
    )
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    data = parser.add_argument_group("data")
    data.add_argument(
        "--representative", type=Path, help="representative set from `affectlite calibrate`"
    )
    add_dataset(
        parser,
        split=SPLIT_AUTO,
        split_help="labelled split to verify on (its train split calibrates)",
    )
    data.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="verify on the seeded FRACTION of the train split that `affectlite train --holdout` "
        "held out (same --seed), keeping --split unseen",
    )
    data.add_argument("--limit", type=int, default=0, help="verify on " + LIMIT_HELP[4:])
    data.add_argument(
        "--n", type=int, default=300, help="representative images drawn from --data train"
    )
    data.add_argument(
        "--seed", type=int, default=0, help="random seed of the representative draw and --limit"
    )
    data.add_argument("--margin", type=float, help="face crop margin (default: the training run's)")
    data.add_argument("--skip-verify", action="store_true", help="write an unverified bundle")
    data.add_argument(
        "--logit-adjust",
        action="store_true",
        help="fold a logit adjustment for rare classes into the model, its strength chosen on "
        "the verification data against the training run's class counts (calibration/prior.py)",
    )
    checks = parser.add_argument_group("gate and diagnostics")
    checks.add_argument(
        "--max-drop", type=float, default=1.0, help="allowed balanced-accuracy loss, points"
    )
    checks.add_argument(
        "--min-agreement", type=float, default=0.95, help="required top-1 agreement"
    )
    checks.add_argument(
        "--force", action="store_true", help="write the bundle even if the gate fails"
    )
    checks.add_argument(
        "--allow-weak",
        action="store_true",
        help="convert a float model whose balanced accuracy is below chance (1/K) + "
        f"{WEAK_MARGIN:g}; without it such a model is refused with exit 3",
    )
    checks.add_argument(
        "--temperature", type=float, help="fixed softmax temperature (default: fitted)"
    )
    checks.add_argument(
        "--debug",
        type=int,
        nargs="?",
        const=10,
        default=0,
        metavar="K",
        help="list the K (default 10) int8 layers with the largest error",
    )
    checks.add_argument(
        "--float-layers", default="", help="comma-separated layers kept in float (int8)"
    )
    checks.add_argument(
        "--detector",
        type=detector_spec,
        metavar="NAME|PATH",
        help="face detector the bundle carries: blazeface (BlazeFace short-range, the default) "
        "or a BlazeFace .tflite file",
    )
    checks.add_argument(
        "--report", type=Path, help="report folder (default: OUT-report beside OUT)"
    )
    checks.add_argument(
        "--allow-legacy-h5",
        action="store_true",
        help="accept a legacy .h5 model (only one you trust: loading it can run code)",
    )


def _training_run(model_path: Path) -> dict[str, Any]:
    """``config.json`` of the training run folder holding the model, if there is one."""
    path = model_path.parent / "config.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _crop(args, run: dict[str, Any]) -> CropPolicy:
    if args.margin is not None:
        return CropPolicy(margin=args.margin)
    crop = run.get("data", {}).get("crop")
    return CropPolicy.from_dict(crop) if crop else CropPolicy()


def _representative(args, size: int, crop: CropPolicy):
    from affectlite.calibration.cli import set_from_dataset
    from affectlite.calibration.representative import RepresentativeSet

    if args.representative:
        return RepresentativeSet.load(args.representative)
    if args.data and args.format:
        return set_from_dataset(args, size, crop)
    return None


def _verification(args, size: int, crop: CropPolicy):
    from affectlite.train.datasets import limit_samples, load_dataset, split_holdout
    from affectlite.train.pipeline import load_split

    if args.holdout:
        train = load_dataset(args.data, args.format, "train", ferplus_mode=args.ferplus_mode)
        index = split_holdout(train, args.holdout, args.seed)[1]
        name = f"holdout {args.holdout} of train, seed {args.seed}"
    else:
        index = load_dataset(args.data, args.format, args.split, ferplus_mode=args.ferplus_mode)
        name = args.split
    index = limit_samples(index, args.limit, args.seed)
    split = load_split(index, size, crop)
    return split.images, split.labels, f"{args.format}:{args.data} ({name})"


def _adjust(model, run_info: dict[str, Any], images, labels) -> dict[str, Any]:
    """Fits and folds the logit adjustment (before quantization, so int8 carries it)."""
    from affectlite.calibration.prior import fit_logit_adjustment, fold_into_model

    counts = run_info.get("data", {}).get("train_counts")
    if images is None or not isinstance(counts, dict):
        raise InputError(
            "--logit-adjust needs verification data and the training run's config.json "
            "(with train_counts) beside the model."
        )
    logits = model.predict(images.astype(np.float32), batch_size=256, verbose=0)
    adjustment = fit_logit_adjustment(logits, labels, np.array([counts[k] for k in LABELS]))
    fold_into_model(model, adjustment)
    print(
        f"logit adjustment tau {adjustment.tau}: held-out {adjustment.before} → {adjustment.after}"
    )
    return adjustment.to_dict()


def _tie_break(run_info: dict[str, Any]) -> tuple[str, ...] | None:
    """The training run's rarest class first, when its class counts are known."""
    from affectlite.calibration.prior import rarest_first

    counts = run_info.get("data", {}).get("train_counts")
    if not isinstance(counts, dict) or not all(label in counts for label in LABELS):
        return None
    return rarest_first(counts, LABELS)


def run(args: argparse.Namespace) -> int:
    from affectlite.train.backend import require_tensorflow

    require_tensorflow()  # export, conversion and .keras scoring run on TensorFlow's Keras
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    float_layers = tuple(name.strip() for name in args.float_layers.split(",") if name.strip())
    io = check_options(args.mode, args.io, float_layers)
    if args.detector == "haar":
        raise InputError("--detector haar cannot go into a bundle; give a BlazeFace .tflite.")
    args.detector = None if args.detector == "blazeface" else args.detector
    check_paths(
        model=args.model,
        representative=args.representative,
        data=args.data,
        detector=args.detector,
    )
    check_new_folder(args.out, args.overwrite)
    if not args.skip_verify and not (args.data and args.format):
        raise InputError("verification needs --data PATH --format F (or pass --skip-verify).")
    if args.data and args.format and not args.holdout:
        args.split = choose_split(args, "affectlite convert")
    if args.temperature is not None and args.temperature <= 0:
        raise InputError(f"--temperature must be positive, got {args.temperature}.")
    from .verify import Gate

    gate = Gate(args.max_drop, args.min_agreement, args.allow_weak)

    from affectlite.train.provenance import command_line

    from .converter import check_model, load_keras_model
    from .export import BundleOptions, convert_to_bundle
    from .quantization import QuantizationConfig

    model = load_keras_model(args.model, args.allow_legacy_h5)
    size = check_model(model, LABELS)
    run_info = {**_training_run(args.model), "conversion_command": command_line()}
    crop = _crop(args, run_info)
    representative = _representative(args, size, crop) if args.mode == "int8" else None
    config = QuantizationConfig.from_options(args.mode, io, representative, float_layers)
    images = labels = None
    description = ""
    if not args.skip_verify:
        images, labels, description = _verification(args, size, crop)
    if args.logit_adjust:
        run_info["logit_adjustment"] = _adjust(model, run_info, images, labels)
    options = BundleOptions(
        gate=gate,
        tie_break=_tie_break(run_info),
        force=args.force,
        temperature=args.temperature,
        crop=crop,
        detector=args.detector,
        training_data=run_info,
        calibration=representative.summary() if representative is not None else None,
        data_description=description,
        report_dir=args.report or args.out.with_name(f"{args.out.name}-report"),
        debug_layers=args.debug,
        overwrite=args.overwrite,
    )
    report = convert_to_bundle(model, config, args.out, images, labels, options)
    _print_summary(report)
    return 0


def _print_summary(report: dict[str, Any]) -> None:
    from .export import markdown_report

    print(markdown_report(report), end="")
    print(f"bundle: {report['bundle']}")
