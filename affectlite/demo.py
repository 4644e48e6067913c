"""``affectlite demo``: the whole flow through the functions the commands run, then real faces.

1. synthetic faces (``train.synthetic``, no download) in train, validation and test splits;
2. ``train``: the compact CNN from scratch (``train.trainer.train``), progress inside each epoch;
3. ``calibrate``: the representative set from the training split only;
4. ``convert``: int8 and float32 bundles, each verified on the held-out test split, gated, with
   the softmax temperature fitted and the conversion report written;
5. ``bench``: per-stage latency of both bundles on this machine;
6. real faces: the shipped default bundle on photos that ship inside installed packages
   (scikit-image's astronaut, matplotlib's Grace Hopper) through the device pipeline, written
   as annotated pictures;

then ``report.md`` and ``metrics.json`` in the run folder.

Accuracies on synthetic faces are labelled *synthetic*: they prove the flow works, not how well a
model reads real emotions. Exit status: 0 every goal met, 1 a goal missed, 2 bad input, 3 the
conversion gate refused the int8 model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from rich.console import Console

from affectlite.errors import EXIT_GATE_REFUSED, EXIT_INTERNAL, InputError

console = Console(soft_wrap=True)  # a path or a figure is never broken over lines

GOALS = {"int8_accuracy": 0.90, "agreement": 0.97, "size_ratio": 3.0}
"""Least int8 accuracy and int8/float top-1 agreement on the synthetic test split, and least
float32/int8 classifier size ratio. A run that misses one exits 1."""
STAGES = 6


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo (the defaults fit the 10-minute budget of ``make demo`` on 2 cores).

    The batch is small on purpose: 200 steps an epoch. The compact CNN's first BatchNorm sees
    activations of variance ~0.004 while its moving variance starts at 1 and moves 1 % a step,
    so inference matches training only after roughly 700 steps.
    """

    input_size: int = 48
    train_images: int = 3200
    val_images: int = 400
    test_images: int = 800
    epochs: int = 6
    batch_size: int = 16
    learning_rate: float = 2e-3
    representative: int = 300
    bench_runs: int = 30
    threads: int = 2
    max_drop: float = 1.0
    min_agreement: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.input_size < 32:
            raise InputError(f"--input-size must be at least 32, got {self.input_size}.")
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name not in ("seed", "max_drop", "min_agreement") and value <= 0:
                option = "--" + item.name.replace("_", "-")
                raise InputError(f"{option} must be positive, got {value}.")
        if self.max_drop < 0 or not 0 <= self.min_agreement <= 1:
            raise InputError(
                f"--max-drop must be ≥ 0 points and --min-agreement in 0..1, got "
                f"{self.max_drop} and {self.min_agreement}."
            )


OPTION_HELP = {
    "input_size": "face crop side in pixels",
    "train_images": "synthetic training faces",
    "val_images": "synthetic validation faces (best epoch)",
    "test_images": "synthetic held-out faces (verification, gate, temperature)",
    "epochs": "training epochs",
    "batch_size": "training batch size",
    "learning_rate": "peak learning rate",
    "representative": "int8 calibration images",
    "bench_runs": "timed benchmark rounds",
    "threads": "interpreter threads for bench and the real photos",
    "max_drop": "gate: allowed int8 balanced-accuracy loss, points",
    "min_agreement": "gate: required int8/float top-1 agreement",
    "seed": "random seed of data and training",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Exit status: 0 every goal met, 1 a goal missed, 2 bad input, 3 int8 refused by the gate."
    )
    parser.add_argument("--out", type=Path, help="run folder (default runs/demo-<timestamp>)")
    parser.add_argument(
        "--bundle", default="default", help="bundle for the real-photo stage (default: shipped)"
    )
    for name, value in asdict(DemoConfig()).items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(value),
            default=value,
            help=f"{OPTION_HELP[name]} (default {value})",
        )


def run(args: argparse.Namespace) -> int:
    from affectlite.convert.verify import GateError

    config = DemoConfig(**{item.name: getattr(args, item.name) for item in fields(DemoConfig)})
    out = args.out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} already exists and is not empty; choose another --out.")
    try:
        metrics = run_demo(config, out, args.bundle)
    except GateError as error:
        console.print(f"[red]affectlite demo: the int8 model was refused: {error}[/]")
        return EXIT_GATE_REFUSED
    missed = [name for name, met in metrics["goals_met"].items() if not met]
    console.print(f"\nReport: [bold]{out / 'report.md'}[/]")
    if missed:
        console.print(f"[red]goals missed: {', '.join(missed)}[/]")
        return EXIT_INTERNAL
    return 0


class StageClock:
    """Announces each stage and records its wall time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextmanager
    def stage(self, key: str, title: str) -> Iterator[None]:
        console.rule(f"[bold]{len(self.seconds) + 1}/{STAGES} {title}")
        start = time.perf_counter()
        yield
        self.seconds[key] = round(time.perf_counter() - start, 1)
        console.print(f"[green]done[/] in {self.seconds[key]:.1f} s")

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 1)


def run_demo(config: DemoConfig, out: Path, real_bundle: str | Path | None = "default") -> dict:
    """Runs every stage, writes the run folder and returns ``metrics.json``'s content.

    Raises:
        GateError: when ``convert``'s gate refuses the int8 model (its report is written).
    """
    from affectlite.convert.converter import load_keras_model

    out.mkdir(parents=True, exist_ok=True)
    console.print(f"run folder: [bold]{out}[/]")
    clock = StageClock()
    with clock.stage("data", f"synthetic faces, {config.input_size}×{config.input_size}"):
        splits = make_splits(config)
    with clock.stage("train", f"train the compact CNN from scratch, {config.epochs} epochs"):
        train_report = train_model(config, splits, out / "train")
        model = load_keras_model(out / "train" / "best.keras")
    with clock.stage("calibrate", "representative set (training split only)"):
        representative = calibrate(config, splits, out / "representative")
    with clock.stage("convert", "convert to int8 and float32: verify, gate, temperature"):
        reports = {
            mode: convert(config, model, mode, representative, splits["test"], out)
            for mode in ("int8", "float32")
        }
    with clock.stage("bench", "latency on this machine (LiteRT)"):
        latency = bench(config, [Path(reports[m]["bundle"]) for m in reports], out / "bench")
    with clock.stage("real_faces", "real photos through the device pipeline"):
        real = real_faces(real_bundle, out / "real-faces", config.threads)
    metrics = summarize(config, train_report, reports, latency, real)
    metrics["stage_seconds"] = clock.seconds
    metrics["wall_seconds"] = clock.total()
    write_outputs(metrics, out)
    _print_summary(metrics)
    return metrics


def make_splits(config: DemoConfig) -> dict[str, Any]:
    """Train, validation and test splits of synthetic faces, each from its own seed."""
    from affectlite.train import synthetic
    from affectlite.train.pipeline import Split, one_hot

    sizes = {"train": config.train_images, "val": config.val_images, "test": config.test_images}
    splits = {}
    for offset, (name, count) in enumerate(sizes.items()):
        images, labels = synthetic.make_dataset(
            count, config.input_size, seed=config.seed * 10 + offset
        )
        splits[name] = Split(images, one_hot(labels), [f"{name}-{i}" for i in range(count)])
        console.print(f"{name}: {count} faces")
    return splits


def train_model(config: DemoConfig, splits: dict[str, Any], run_dir: Path) -> dict:
    """``affectlite train --backbone compact --weights none`` on the synthetic splits."""
    from affectlite.train import synthetic
    from affectlite.train.trainer import TrainConfig, train

    train_config = TrainConfig(
        backbone="compact",
        input_size=config.input_size,
        weights="none",
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        label_smoothing=0.0,
        balance="none",
        augment=False,
        mixed_precision="off",
        seed=config.seed,
    )
    summary = {
        "dataset": "synthetic",
        "note": synthetic.SYNTHETIC_NOTE,
        "train": config.train_images,
        "val": config.val_images,
    }
    terminal = sys.stdout.isatty()
    return train(
        train_config,
        splits["train"],
        splits["val"],
        run_dir,
        verbose=1 if terminal else 0,
        data_summary=summary,
        callbacks=() if terminal else (line_progress(),),
    )


def line_progress():
    """A Keras callback printing a line every quarter epoch: progress for logs and pipes,
    where Keras' own bar would rewrite one line thousands of times."""
    import keras

    class LineProgress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs=None) -> None:
            self.epoch, self.start, self.next_quarter = epoch + 1, time.perf_counter(), 1

        def on_train_batch_end(self, batch: int, logs=None) -> None:
            steps = self.params.get("steps") or 1
            if (batch + 1) * 4 >= self.next_quarter * steps:
                self.next_quarter += 1
                console.print(
                    f"  epoch {self.epoch}/{self.params['epochs']}: {batch + 1}/{steps} batches, "
                    f"loss {(logs or {}).get('loss', float('nan')):.3f}, "
                    f"{time.perf_counter() - self.start:.0f} s"
                )

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            logs = logs or {}
            f1 = logs.get("val_macro_f1", float("nan"))
            balanced = logs.get("val_balanced_accuracy", float("nan"))
            console.print(
                f"  epoch {epoch + 1}: validation macro-F1 {f1:.3f} (picks the checkpoint), "
                f"balanced accuracy {balanced:.3f}"
            )

    return LineProgress()


def calibrate(config: DemoConfig, splits: dict[str, Any], folder: Path):
    """``affectlite calibrate``: a class-stratified set from the training split, saved and
    loaded back (checksum-verified) as ``convert --representative`` does."""
    from affectlite.calibration.representative import RepresentativeSet, build_representative

    train = splits["train"]
    representative = build_representative(
        train.images,
        train.labels,
        train.ids,
        n=config.representative,
        seed=config.seed,
        source="synthetic train split",
        exclude_ids=splits["val"].ids + splits["test"].ids,
    )
    representative.save(folder)
    console.print(f"{len(representative)} crops → {folder}")
    return RepresentativeSet.load(folder)


def convert(config: DemoConfig, model, mode: str, representative, test, out: Path) -> dict:
    """``affectlite convert --mode MODE``: verified on the test split, gated, temperature
    fitted, report in ``bundle-MODE-report/``; returns the conversion report."""
    from affectlite.convert.export import BundleOptions, convert_to_bundle
    from affectlite.convert.quantization import QuantizationConfig
    from affectlite.convert.verify import Gate

    int8 = mode == "int8"
    quantization = QuantizationConfig.from_options(mode, None, representative if int8 else None)
    training_run = json.loads((out / "train" / "config.json").read_text())
    report = convert_to_bundle(
        model,
        quantization,
        out / f"bundle-{mode}",
        test.images,
        test.labels,
        BundleOptions(
            # The demo's own accuracy goal judges the float model (exit 1 when missed).
            gate=Gate(config.max_drop, config.min_agreement, allow_weak=True),
            training_data=training_run,
            calibration=representative.summary() if int8 else None,
            data_description="synthetic test split (held out)",
            report_dir=out / f"bundle-{mode}-report",
        ),
    )
    verification = report["verification"]
    console.print(
        f"{mode}: {report['sizes']['tflite_bytes'] / 1e6:.2f} MB, accuracy "
        f"{verification['converted']['accuracy']:.4f} (synthetic), agreement with float "
        f"{verification['agreement']:.4f}, temperature {report['temperature']['temperature']:.3f}"
    )
    return report


def bench(config: DemoConfig, bundles: list[Path], folder: Path) -> dict:
    """``affectlite bench --bundle … --threads N``: interleaved per-stage latency."""
    from affectlite.benchmarks.latency import make_variants, run_benchmark, sample_frames
    from affectlite.benchmarks.report import write_report

    frames, origin = sample_frames()
    result = run_benchmark(
        make_variants(bundles, [], [config.threads]),
        frames,
        runs=config.bench_runs,
        warmup=5,
        frames_origin=origin,
    )
    paths = write_report(result, folder)
    variants = {}
    for variant in result.variants:
        stages = variant["stages_ms"]
        variants[variant["name"]] = {
            "threads": variant["threads"],
            "classifier_only_median_ms": stages["classifier_only"]["median"],
            "end_to_end_median_ms": stages["end_to_end"]["median"],
            "fps": variant["fps"],
        }
        console.print(f"{variant['name']}: {variant['fps']:.1f} FPS end to end")
    return {"variants": variants, "report": str(paths["markdown"].relative_to(folder.parent))}


def real_photos() -> dict[str, Path]:
    """Photos of real faces that ship inside installed packages (absent ones left out)."""
    photos = {}
    try:
        import skimage.data

        photos["astronaut"] = Path(skimage.data.__file__).parent / "astronaut.png"
    except ImportError:
        pass
    try:
        from matplotlib import cbook

        photos["grace_hopper"] = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    except ImportError:
        pass
    return {name: path for name, path in photos.items() if path.is_file()}


def real_faces(bundle_name: str | Path | None, folder: Path, threads: int) -> dict:
    """The bundle on each real photo through the device pipeline (detect → crop → classify,
    no TensorFlow); writes an annotated picture per photo. Skipped, with the reason, when the
    bundle (e.g. the shipped default, before it is trained) or the photos are absent."""
    from affectlite.edge_app.bundle import MANIFEST, load_bundle, resolve_bundle

    path = resolve_bundle(bundle_name)
    photos = real_photos()
    reason = None
    if not (path / MANIFEST).is_file():
        reason = f"no bundle at {path} yet"
    elif not photos:
        reason = "no sample photo found (install scikit-image or matplotlib)"
    if reason:
        console.print(f"[yellow]skipped: {reason}[/]")
        return {"skipped": reason}
    from affectlite.edge_app.pipeline import PipelineConfig
    from affectlite.edge_app.recognizer import EmotionRecognizer

    recognizer = EmotionRecognizer(load_bundle(path), PipelineConfig(num_threads=threads))
    results = [_classify_photo(recognizer, name, photo, folder) for name, photo in photos.items()]
    return {"bundle": str(path), "photos": results}


def _classify_photo(recognizer, name: str, photo: Path, folder: Path) -> dict:
    """One photo through the Python API (a still: no tracking or smoothing), annotated."""
    import cv2

    from affectlite.files import write_with

    faces = recognizer.predict(photo)
    picture = folder / f"{name}.jpg"
    bgr = cv2.cvtColor(recognizer.annotate(photo, faces), cv2.COLOR_RGB2BGR)

    def save(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), bgr):
            raise OSError(f"OpenCV could not write {picture}.")

    write_with(picture, save)
    faces = [face.to_dict() for face in faces]
    labels = ", ".join(f"{f['label']} {f['confidence']:.2f}" for f in faces) or "no face"
    console.print(f"{name}: {labels} → {picture}")
    relative = f"{folder.name}/{picture.name}"
    return {"photo": name, "source": str(photo), "picture": relative, "faces": faces}


def summarize(config, train_report: dict, reports: dict, latency: dict, real: dict) -> dict:
    """``metrics.json``: what was measured, and which goals were met."""
    int8, float32 = reports["int8"], reports["float32"]
    ratio = float32["sizes"]["tflite_bytes"] / int8["sizes"]["tflite_bytes"]
    keys = ("accuracy", "balanced_accuracy", "macro_f1")
    test = {
        "n": int8["verification"]["n"],
        "keras_float": int8["verification"]["float"],
        "float32_tflite": float32["verification"]["converted"],
        "int8_tflite": int8["verification"]["converted"],
        "int8_agreement_with_float": int8["verification"]["agreement"],
        "int8_kl_divergence": int8["verification"]["kl_divergence"],
        "int8_balanced_accuracy_drop_points": int8["verification"]["balanced_accuracy_drop_points"],
        "int8_temperature": int8["temperature"],
    }
    goals_met = {
        "int8_accuracy": test["int8_tflite"]["accuracy"] >= GOALS["int8_accuracy"],
        "agreement": test["int8_agreement_with_float"] >= GOALS["agreement"],
        "size_ratio": ratio >= GOALS["size_ratio"],
    }
    if "photos" in real:
        goals_met["real_faces"] = all(photo["faces"] for photo in real["photos"])
    return {
        "dataset": "synthetic",
        "note": "accuracies are on synthetic faces (the kit's embedded demo data), not real ones",
        "config": asdict(config),
        "validation_keras": {k: train_report[k] for k in (*keys, "best_epoch")},
        "test": test,
        "sizes_bytes": {
            "float32": float32["sizes"]["tflite_bytes"],
            "int8": int8["sizes"]["tflite_bytes"],
            "float32_over_int8": round(ratio, 2),
        },
        "bundles": {mode: report["bundle"] for mode, report in reports.items()},
        "latency": latency,
        "real_faces": real,
        "goals": {**GOALS, "real_faces": "at least one face found in every photo"},
        "goals_met": goals_met,
    }


def write_outputs(metrics: dict, out: Path) -> None:
    """``metrics.json`` and ``report.md`` (paths in them relative to ``out``)."""
    from affectlite.files import write_json, write_text

    from .demo_report import markdown

    write_json(out / "metrics.json", metrics)
    write_text(out / "report.md", markdown(metrics, out))


def _print_summary(metrics: dict) -> None:
    test, int8 = metrics["test"], metrics["test"]["int8_tflite"]
    console.print(
        f"\n[bold]synthetic[/] held-out test (n={test['n']}): int8 accuracy "
        f"{int8['accuracy']:.4f}, balanced {int8['balanced_accuracy']:.4f}, agreement with "
        f"float {test['int8_agreement_with_float']:.4f}, size ×"
        f"{metrics['sizes_bytes']['float32_over_int8']:.2f} smaller; "
        f"{metrics['wall_seconds']:.0f} s in all"
    )
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in metrics["stage_seconds"].items())
    console.print(f"stages: {stages}")
