"""``affectlite calibrate``: build the int8 representative set, or fit the softmax temperature.

Representative set, from the training split of a dataset::

    affectlite calibrate --data data/ferplus --format ferplus --backbone compact --out rep/

or from the device's own camera domain (faces found by BlazeFace in the frames)::

    affectlite calibrate --source 0 --bundle bundle/ --out rep/         # webcam 0
    affectlite calibrate --source clip.mp4 --input-size 112 --out rep/  # video file
    affectlite calibrate --source photos/ --backbone compact --out rep/ # folder of photos

Temperature, on a labelled split (default ``val``, or the dataset's only split) of a model,
``.tflite`` or bundle::

    affectlite calibrate --fit-temperature --model best.keras --data data/ferplus --format ferplus \
        --out t/

Exit status: 0 written, 2 bad input (missing data or model, no face found, existing output).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from affectlite.edge_app.preprocess import CropPolicy
from affectlite.errors import InputError
from affectlite.files import write_json
from affectlite.options import (
    SPLIT_AUTO,
    add_bundle,
    add_dataset,
    add_detector,
    add_input_size,
    add_model,
    check_new_folder,
    check_paths,
    check_positive,
    choose_split,
    input_size_for,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Exit status: 0 written, 2 bad input."
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    add_dataset(
        parser,
        split=SPLIT_AUTO,
        split_help="labelled split for --fit-temperature (the set uses train)",
    )
    parser.add_argument(
        "--source", help="frames instead of a dataset: webcam index, video, folder, picamera2"
    )
    add_bundle(parser, default=None)
    add_detector(parser)
    parser.add_argument(
        "--every", type=int, default=5, help="use every K-th frame of a video/camera"
    )
    parser.add_argument(
        "--max-frames", type=int, default=10_000, help="stop after this many frames"
    )
    add_input_size(parser, backbone_option=True)
    parser.add_argument("--margin", type=float, help="crop margin (default: bundle's or 0.2)")
    parser.add_argument("--n", type=int, default=300, help="images in the set")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the draw")
    parser.add_argument(
        "--fit-temperature",
        action="store_true",
        help="fit the softmax temperature of --model on --split instead",
    )
    add_model(parser, required=False)


def _frames(source, max_frames: int) -> Iterator[np.ndarray]:
    with source:
        for _ in range(max_frames):
            frame = source.read()
            if frame is None:
                return
            yield frame


def build_set(args: argparse.Namespace):
    """The representative set the arguments describe."""
    from affectlite.edge_app.bundle import load_bundle

    from .representative import from_frames

    bundle = load_bundle(args.bundle) if args.bundle else None
    size = args.input_size or (bundle.input_size if bundle else input_size_for(args.backbone))
    crop = bundle.crop_policy if bundle else CropPolicy()
    if args.margin is not None:
        crop = CropPolicy(args.margin, crop.square, crop.pad_value)
    if args.source is not None:
        from affectlite.edge_app.detector import make_detector
        from affectlite.edge_app.sources import ImageFolderSource, make_source

        source = make_source(args.source)
        return from_frames(
            _frames(source, args.max_frames),
            make_detector(args.detector, bundle),
            size,
            crop,
            args.n,
            every=1 if isinstance(source, ImageFolderSource) else args.every,
            source=source.name,
        )
    if not (args.data and args.format):
        raise InputError("Give --data PATH --format F (training split) or --source (frames).")
    return set_from_dataset(args, size, crop)


def set_from_dataset(args: argparse.Namespace, size: int, crop: CropPolicy):
    """The representative set drawn from the training split of ``--data`` (``--n``, ``--seed``);
    ``affectlite convert`` draws its own the same way when it is given no ``--representative``."""
    from .representative import from_dataset

    return from_dataset(
        args.data,
        args.format,
        args.n,
        args.seed,
        size=size,
        policy=crop,
        ferplus_mode=args.ferplus_mode,
    )


def fit_temperature_files(args: argparse.Namespace) -> dict:
    """Fits the temperature of ``--fit-temperature`` on ``--split`` and writes
    ``temperature.json`` and ``reliability.png`` into ``--out``."""
    from affectlite.train.datasets import load_dataset
    from affectlite.train.evaluate import load_predictor
    from affectlite.train.pipeline import load_split

    from .temperature import calibrate_temperature, reliability_diagram

    if not (args.data and args.format):
        raise InputError("--fit-temperature needs labelled data: --data PATH --format F.")
    predictor = load_predictor(args.model)
    args.split = choose_split(args, "affectlite calibrate")
    index = load_dataset(args.data, args.format, args.split, ferplus_mode=args.ferplus_mode)
    split = load_split(index, predictor.input_size, predictor.crop)
    logits = predictor.logits(split.images)
    fit = calibrate_temperature(logits, split.labels)
    result = {
        **fit.to_dict(),
        "model": str(args.model),
        "data": f"{args.format}:{args.data} ({args.split})",
    }
    write_json(args.out / "temperature.json", result)
    reliability_diagram(logits, split.labels, fit.temperature, args.out / "reliability.png")
    return result


def run(args: argparse.Namespace) -> int:
    from affectlite.train.backend import require_tensorflow

    require_tensorflow()  # export, conversion and .keras scoring run on TensorFlow's Keras
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    check_positive(n=args.n, every=args.every, max_frames=args.max_frames)
    check_paths(data=args.data, bundle=args.bundle, model=args.model)
    if args.fit_temperature != (args.model is not None):
        raise InputError("--fit-temperature and --model go together (the model to calibrate).")
    if args.fit_temperature:
        result = fit_temperature_files(args)
        print(
            f"temperature {result['temperature']:.4f}: ECE {result['ece_before']:.4f} → "
            f"{result['ece_after']:.4f} on {result['n']} images; written to {args.out}"
        )
        return 0
    check_new_folder(args.out, args.overwrite)
    representative = build_set(args)
    representative.save(args.out, overwrite=args.overwrite)
    counts = ", ".join(f"{k} {v}" for k, v in representative.counts().items())
    print(f"{len(representative)} crops of {representative.input_size} px ({counts}) → {args.out}")
    return 0
