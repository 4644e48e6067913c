"""``affectlite train``: the ResNet50 recipe on AffectNet, FER2013, FER+, RAF-DB or folders."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.preprocess import CropPolicy
from affectlite.errors import InputError
from affectlite.options import LIMIT_HELP, add_dataset, add_input_size, check_paths
from affectlite.train.config import (
    BACKBONE_NAMES,
    BACKENDS,
    BALANCE_MODES,
    DISTRIBUTE_MODES,
    PRECISION_MODES,
    TrainConfig,
    default_backend,
)

_HELP = {
    "backbone": "resnet50 (paper; a GPU's: about 35 s a step on 2 CPU cores), mobilenetv3large, "
    "efficientnetv2b0 or compact (from scratch; the one for a CPU)",
    "weights": "imagenet, none (from scratch) or a backbone weights .h5 path",
    "epochs": "total epochs, head warm-up included",
    "head_epochs": "epochs with the backbone frozen (pretrained weights only)",
    "balance": "class balancing: loss (inverse frequency), sqrt (its square root), sampling "
    "or none",
    "mixed_precision": "auto (bf16 on accelerators that have it, else float16 on a GPU, float32 "
    "on a CPU), bf16 (mixed bfloat16), on (mixed float16) or off",
    "distribute": "auto, none, data-parallel (jax: every batch split over all devices), "
    "mirrored or multiworker (tensorflow; multiworker reads TF_CONFIG)",
    "backend": "Keras backend: jax or tensorflow (default: KERAS_BACKEND, else tensorflow); "
    "a resumed run keeps its own",
    "checkpoint_every": "save the resume state every N epochs (3) or at the end of the first "
    "epoch N minutes after the last save (5m)",
    "init": "start from a trained model (.keras) of the same backbone and input size, head "
    "included, and train it further in one phase (e.g. longer, or with --balance)",
    "batch_size": "images per training step",
    "learning_rate": "peak learning rate (AdamW, cosine decay): the head warm-up, or the whole "
    "run from scratch",
    "finetune_learning_rate": "peak learning rate of the full fine-tuning phase (pretrained "
    "weights only)",
    "warmup_epochs": "epochs of linear learning-rate warm-up at the start of each phase",
    "weight_decay": "AdamW weight decay",
    "label_smoothing": "label smoothing of the cross-entropy loss",
    "augment": "flip, small rotation/zoom/shift, brightness/contrast and random erasing",
    "dropout": "dropout rate before the logits",
    "seed": "random seed of weights, shuffling, augmentation and --holdout/--limit draws",
    "teacher": "distil from a trained model: a .keras file, a bundle folder or a shipped bundle's "
    "name (its outputs on the plain training faces are cached once)",
    "distill_temperature": "softening temperature T of the teacher's and student's outputs",
    "distill_alpha": "weight of the teacher term; 1 - alpha weighs the labels",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    choices = {
        "backbone": BACKBONE_NAMES,
        "balance": BALANCE_MODES,
        "mixed_precision": PRECISION_MODES,
        "distribute": DISTRIBUTE_MODES,
        "backend": BACKENDS,
    }

    add_dataset(parser, split_help="split used for validation", packed=True)
    parser.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="validate on a fixed stratified FRACTION of the training split (seeded) instead of "
        "--split, which then stays unseen until a final `affectlite evaluate`",
    )
    parser.add_argument("--limit", type=int, default=0, help=LIMIT_HELP)
    parser.add_argument("--val-limit", type=int, default=0, help="the same for validation images")
    parser.add_argument(
        "--margin", type=float, default=CropPolicy().margin, help="face crop margin"
    )
    parser.add_argument("--out", type=Path, help="run folder (default runs/<format>-<time>)")
    parser.add_argument("--resume", type=Path, help="continue an interrupted run folder")
    parser.add_argument(
        "--measure-pipeline",
        type=int,
        metavar="BATCHES",
        default=0,
        help="only time the input pipeline over BATCHES batches (images/s), no training",
    )
    add_input_size(parser)
    for field in (f for f in fields(TrainConfig) if f.name != "input_size"):
        flag = "--" + field.name.replace("_", "-")
        if field.name == "backend":  # None: not given (a resumed run keeps its own)
            parser.add_argument(flag, choices=BACKENDS, help=_HELP["backend"])
        elif isinstance(field.default, bool):
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=field.default,
                help=_HELP.get(field.name),
            )
        else:
            parser.add_argument(
                flag,
                type=type(field.default),
                default=field.default,
                choices=choices.get(field.name),
                help=_HELP.get(field.name),
            )


def _load(args, config, policy):
    from affectlite.train.datasets import load_dataset
    from affectlite.train.pipeline import load_split

    if args.format == "packed":
        if args.holdout:
            raise InputError(
                f"--holdout {args.holdout}: a packed folder validates on a split packed with it "
                "(--split); drop --holdout."
            )
        train, val = _packed(args.data, args.split, config.input_size)
        train = train.limited(args.limit, config.seed)
        return train, val.limited(args.val_limit, config.seed).load()  # validation in memory
    from affectlite.train.datasets import limit_samples, split_holdout

    indexes = {}
    train_index = load_dataset(args.data, args.format, "train", ferplus_mode=args.ferplus_mode)
    if args.holdout:
        indexes["train"], indexes["val"] = split_holdout(train_index, args.holdout, config.seed)
    else:
        indexes["train"] = train_index
        indexes["val"] = load_dataset(
            args.data, args.format, args.split, ferplus_mode=args.ferplus_mode
        )
    splits = {}
    for role, index in indexes.items():
        limit = args.limit if role == "train" else args.val_limit
        index = limit_samples(index, limit, config.seed)
        splits[role] = load_split(index, config.input_size, policy)
    return splits["train"], splits["val"]


def _packed(directory: str, split: str, input_size: int):
    """A packed folder's training and validation splits (streamed from disk).

    Faces packed smaller than ``input_size`` are resized in the train step as ``crop_face``
    would upsample them; larger ones are refused (crop_face shrinks with another filter).
    """
    from affectlite.train.readers.packed import open_packed

    train = open_packed(directory, "train")
    if train.size > input_size:
        raise InputError(
            f"--data {directory}: faces are packed at {train.size} px, larger than --input-size "
            f"{input_size}; pack at {input_size} px or train with --input-size {train.size}."
        )
    return train, open_packed(directory, split)


def run(args: argparse.Namespace) -> int:
    check_paths(data=args.data, resume=args.resume)
    if args.resume:
        saved = (
            json.loads((args.resume / "config.json").read_text())
            if (args.resume / "config.json").is_file()
            else None
        )
        if saved is None:
            raise InputError(f"--resume {args.resume}: holds no config.json to resume.")
        config = TrainConfig.load(args.resume / "config.json")
        if args.backend and args.backend != config.backend:
            raise InputError(
                f"--resume {args.resume}: this run trains on the {config.backend} backend; it "
                f"cannot continue on {args.backend} (drop --backend)."
            )
        data = saved.get("data", {})
        args.data, args.format = args.data or data.get("root"), args.format or data.get("format")
        args.ferplus_mode = data.get("ferplus_mode", args.ferplus_mode)
        args.limit, args.val_limit = data.get("limit", 0), data.get("val_limit", 0)
        args.split, args.margin = data.get("val_split", "val"), data.get("margin", args.margin)
        args.holdout = data.get("holdout", 0.0)
        run_dir = args.resume
    else:
        options = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
        config = TrainConfig(**{**options, "backend": args.backend or default_backend()})
        check_paths(init=config.init or None)
        run_dir = args.out or Path("runs") / f"{args.format}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not args.data or not args.format:
        raise InputError("--data and --format are required (or --resume RUN).")
    check_paths(data=args.data)
    if not args.measure_pipeline:  # before the data is loaded: a refused --out costs nothing
        from affectlite.train.run_folder import check_run_dir

        check_run_dir(Path(run_dir), resume=bool(args.resume))
    from affectlite.train.backend import use_backend

    use_backend(config.backend)  # before anything imports Keras
    teacher = _teacher(config.teacher) if config.teacher else None
    policy = CropPolicy(margin=args.margin)
    train_split, val_split = _load(args, config, policy)
    if args.measure_pipeline:
        return _measure_pipeline(train_split, config, args.measure_pipeline)
    from affectlite.train import provenance

    summary = {
        "command": provenance.command_line(),
        "git_commit": provenance.git_commit(),
        "licence": provenance.licence(args.format),
        **({"init": provenance.init_source(config.init)} if config.init else {}),
        **({"teacher": teacher} if teacher else {}),
        "root": str(args.data),
        "format": args.format,
        "ferplus_mode": args.ferplus_mode,
        "val_split": f"holdout {args.holdout} of train" if args.holdout else args.split,
        "holdout": args.holdout,
        "limit": args.limit,
        "val_limit": args.val_limit,
        "margin": args.margin,
        "crop": policy.to_dict(),
        "train_counts": dict(zip(LABELS, _class_counts(train_split))),
        "val_counts": dict(zip(LABELS, val_split.class_counts().tolist())),
        "skipped": {
            "train": len(getattr(train_split, "skipped", ())),
            "val": len(val_split.skipped),
        },
    }
    print(f"train {len(train_split)} images, validation {len(val_split)} images → {run_dir}")
    from affectlite.train.callbacks import EpochProgress
    from affectlite.train.trainer import train

    try:
        report = train(
            config,
            train_split,
            val_split,
            run_dir,
            resume=bool(args.resume),
            data_summary=summary,
            verbose=1 if sys.stdout.isatty() else 2,
            callbacks=() if sys.stdout.isatty() else (EpochProgress(),),
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; the last complete epoch is saved. Continue with:\n"
            f"  affectlite train --resume {run_dir}",
            file=sys.stderr,
        )
        return 130
    print(
        f"best model {run_dir / 'best.keras'}: accuracy {report['accuracy']:.4f}, balanced "
        f"accuracy {report['balanced_accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f} "
        f"(validation, n={report['n']})"
    )
    return 0


def _class_counts(source) -> list[int]:
    return np.bincount(source.targets.argmax(axis=1), minlength=len(LABELS)).tolist()


def _teacher(source: str) -> dict:
    """Opens the teacher before any data is read (a bad one fails at once); its provenance."""
    from affectlite.train import distill

    return distill.describe(distill.load_teacher(source))


def _measure_pipeline(train_split, config, batches: int) -> int:
    """Prints how many images per second the input pipeline alone delivers."""
    from affectlite.train.pipeline import FaceBatches, measure_throughput

    data = FaceBatches(train_split, config.batch_size, balance=config.balance, seed=config.seed)
    rate = measure_throughput(data, batches)
    print(
        f"input pipeline: {rate:.0f} images/s ({batches} batches of {config.batch_size}, "
        f"{config.input_size}px, balance={config.balance}, one thread; augmentation runs in "
        "the train step)"
    )
    return 0
