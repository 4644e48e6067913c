"""``affectlite demo``: the whole flow on the embedded synthetic faces, no download.

generate → train ResNet50 (from scratch, small input) → representative set → full-integer int8
→ verify float vs int8 on a held-out split → benchmark latency → run folder with the bundle,
``metrics.json``, ``report.md`` and PNG plots. Every accuracy printed here is on *synthetic*
faces: it shows the kit works end to end, not how well it reads real emotions.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from affectlite.edge_app.labels import LABELS

console = Console()

GOALS = {"int8_accuracy": 0.90, "agreement": 0.98, "size_ratio": 3.5}


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; the defaults finish in under 10 minutes on 2 CPU cores."""

    input_size: int = 48
    train_images: int = 4000
    val_images: int = 600
    test_images: int = 800
    epochs: int = 5
    batch_size: int = 32
    representative: int = 300
    bench_runs: int = 50
    threads: int = 2
    seed: int = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoConfig()
    parser.add_argument("--out", type=Path, help="run folder (default runs/demo-<timestamp>)")
    for name, value in vars(defaults).items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)


def _stage(number: int, text: str) -> float:
    console.rule(f"[bold]{number}/6 {text}")
    return time.perf_counter()


def _done(start: float, text: str = "") -> None:
    console.print(f"[green]done[/] in {time.perf_counter() - start:.1f} s {text}")


def run(args: argparse.Namespace) -> int:
    config = DemoConfig(**{k: getattr(args, k) for k in vars(DemoConfig())})
    out = args.out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    report = run_demo(config, out)
    failed = [k for k, ok in report["goals_met"].items() if not ok]
    console.print(f"\nReport: [bold]{out / 'report.md'}[/]  bundle: [bold]{out / 'bundle-int8'}[/]")
    if failed:
        console.print(f"[yellow]goals missed: {', '.join(failed)}[/]")
    return 0


def run_demo(config: DemoConfig, out: Path) -> dict:
    """Runs every stage and writes the run folder; returns ``metrics.json``'s content."""
    import keras

    from affectlite.calibration.representative import build_representative
    from affectlite.convert.converter import convert_model
    from affectlite.convert.export import export_bundle
    from affectlite.convert.quantization import QuantizationConfig
    from affectlite.convert.verify import verify
    from affectlite.train import plots, synthetic
    from affectlite.train.pipeline import Split, one_hot
    from affectlite.train.trainer import TrainConfig, train

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=False)
    size = config.input_size

    t = _stage(1, f"generate synthetic faces ({size}×{size})")
    splits = {}
    for offset, (name, n) in enumerate(
        (("train", config.train_images), ("val", config.val_images), ("test", config.test_images))
    ):
        images, labels = synthetic.make_dataset(n, size, seed=config.seed * 10 + offset)
        splits[name] = Split(images, one_hot(labels), [f"{name}-{i}" for i in range(n)])
    _done(t, f"({sum(len(s.ids) for s in splits.values())} images)")

    t = _stage(2, f"train ResNet50 from scratch, {config.epochs} epochs")
    train_config = TrainConfig(
        input_size=size,
        weights="none",
        epochs=config.epochs,
        batch_size=config.batch_size,
        augment=False,
        label_smoothing=0.0,
        seed=config.seed,
    )
    summary = {
        "dataset": "synthetic",
        "note": synthetic.SYNTHETIC_NOTE,
        "train": len(splits["train"].ids),
        "val": len(splits["val"].ids),
    }
    float_report = train(
        train_config, splits["train"], splits["val"], out / "train", verbose=2, data_summary=summary
    )
    model = keras.models.load_model(out / "train" / "best.keras")
    _done(t, f"(val balanced accuracy {float_report['balanced_accuracy']:.3f}, synthetic)")

    t = _stage(3, "representative set (training split only)")
    representative = build_representative(
        splits["train"].images,
        splits["train"].labels,
        splits["train"].ids,
        n=config.representative,
        seed=config.seed,
        source="synthetic train split",
        exclude_ids=splits["val"].ids + splits["test"].ids,
    )
    representative.save(out / "representative")
    _done(t, f"({len(representative.ids)} crops)")

    t = _stage(4, "convert: float32 reference and full-integer int8")
    test = splits["test"]
    results = {}
    for mode, quantization in (
        ("float32", QuantizationConfig.for_float32()),
        ("int8", QuantizationConfig.for_int8(representative.images)),
    ):
        tflite = convert_model(model, quantization, out / f"convert-{mode}")
        verification = verify(model, tflite, test.images, test.labels)
        bundle = export_bundle(
            tflite,
            out / f"bundle-{mode}",
            quantization,
            metrics={"test_synthetic": verification},
            training_data=summary,
            model_name=model.name,
        )
        results[mode] = {
            "bundle": bundle,
            "verification": verification,
            "bytes": bundle.classifier_path.stat().st_size,
        }
    _done(t)
    metrics = _metrics(config, float_report, results, time.perf_counter() - started)

    t = _stage(5, "benchmark latency on this machine")
    metrics["latency"] = _benchmark(results, config, out)
    _done(t)

    t = _stage(6, "report")
    metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for mode in results:
        verification = results[mode]["verification"]
        report = {
            **verification["converted"],
            "n": verification["n"],
            "labels": list(LABELS),
            "confusion": verification["confusion"]["converted"],
        }
        plots.confusion_png(
            report, out / f"confusion-{mode}.png", f"{mode} TFLite, held-out synthetic test split"
        )
    (out / "report.md").write_text(_markdown(metrics, out))
    _done(t)
    _summary(metrics)
    return metrics


def _metrics(config: DemoConfig, float_report: dict, results: dict, seconds: float) -> dict:
    from dataclasses import asdict

    int8, float32 = results["int8"], results["float32"]
    summary_keys = ("accuracy", "balanced_accuracy", "macro_f1")
    ratio = float32["bytes"] / int8["bytes"]
    metrics = {
        "dataset": "synthetic",
        "note": "accuracies are on synthetic faces (the kit's embedded demo data), not real ones",
        "config": asdict(config),
        "validation_keras": {k: float_report[k] for k in (*summary_keys, "best_epoch")},
        "test": {
            "n": int8["verification"]["n"],
            "keras_float": int8["verification"]["float"],
            "float32_tflite": float32["verification"]["converted"],
            "int8_tflite": int8["verification"]["converted"],
            "int8_agreement_with_float": int8["verification"]["agreement"],
            "int8_kl_divergence": int8["verification"]["kl_divergence"],
            "int8_balanced_accuracy_drop_points": int8["verification"][
                "balanced_accuracy_drop_points"
            ],
        },
        "sizes_bytes": {
            "float32": float32["bytes"],
            "int8": int8["bytes"],
            "float32_over_int8": round(ratio, 2),
        },
        "seconds_before_benchmark": round(seconds, 1),
    }
    metrics["goals"] = GOALS
    metrics["goals_met"] = {
        "int8_accuracy": metrics["test"]["int8_tflite"]["accuracy"] >= GOALS["int8_accuracy"],
        "agreement": metrics["test"]["int8_agreement_with_float"] >= GOALS["agreement"],
        "size_ratio": ratio >= GOALS["size_ratio"],
    }
    return metrics


def _markdown(metrics: dict, out: Path) -> str:
    test = metrics["test"]
    rows = [
        ("Keras float", test["keras_float"]),
        ("TFLite float32", test["float32_tflite"]),
        ("TFLite int8", test["int8_tflite"]),
    ]
    sizes = metrics["sizes_bytes"]
    lines = [
        "# affectlite demo (synthetic faces)",
        "",
        "Every number here is measured on the kit's **synthetic** faces: it proves the flow "
        "(data → ResNet50 → representative set → int8 TFLite → LiteRT) works end to end, not how "
        "well a model reads real emotions. See `benchmarks/RESULTS.md` for real FER+ figures.",
        "",
        f"Held-out synthetic test split, n = {test['n']} (argmax metrics):",
        "",
        "| model | accuracy | balanced accuracy | macro-F1 |",
        "|---|---|---|---|",
        *(
            f"| {name} | {r['accuracy']:.4f} | {r['balanced_accuracy']:.4f} | {r['macro_f1']:.4f} |"
            for name, r in rows
        ),
        "",
        f"- int8 top-1 agreement with the float model: {test['int8_agreement_with_float']:.4f}",
        f"- int8 mean KL divergence from the float model: {test['int8_kl_divergence']:.5f}",
        f"- classifier size: float32 {sizes['float32'] / 1e6:.2f} MB, int8 "
        f"{sizes['int8'] / 1e6:.2f} MB (×{sizes['float32_over_int8']:.2f} smaller)",
        "",
        "## Goals",
        "",
        *(
            f"- {'✅' if ok else '❌'} {name} (goal {metrics['goals'][name]})"
            for name, ok in metrics["goals_met"].items()
        ),
        "",
        "## Latency",
        "",
        *_latency_lines(metrics["latency"]),
        "",
        "## Files",
        "",
        "- `bundle-int8/`, `bundle-float32/`: bundles for the device (`affectlite run --bundle`)",
        "- `train/`: training run (history.csv, curves.png, confusion.png, best.keras)",
        "- `confusion-int8.png`, `confusion-float32.png`, `train/curves.png`",
        "- `metrics.json`: every number above",
        f"- total wall time: {metrics.get('wall_seconds', 0):.0f} s",
        "",
    ]
    return "\n".join(lines)


def _latency_lines(latency: dict) -> list[str]:
    rows = [
        f"| {name} | {v['threads']} | {v['classifier_only_median_ms']:.2f} | "
        f"{v['end_to_end_median_ms']:.2f} | {v['fps']:.1f} |"
        for name, v in latency["variants"].items()
    ]
    return [
        "Median latency on this machine (LiteRT; face detection + crop + classification of "
        "640×480 frames). Per-stage tables and plots: "
        f"[`{latency['report']}`]({latency['report']}).",
        "",
        "| bundle | threads | classifier ms | end-to-end ms | FPS |",
        "|---|---|---|---|---|",
        *rows,
    ]


def _summary(metrics: dict) -> None:
    test, int8 = metrics["test"], metrics["test"]["int8_tflite"]
    console.print(
        f"\n[bold]synthetic[/] held-out test (n={test['n']}): int8 accuracy "
        f"{int8['accuracy']:.4f}, balanced {int8['balanced_accuracy']:.4f}, agreement with "
        f"float {test['int8_agreement_with_float']:.4f}, size ×"
        f"{metrics['sizes_bytes']['float32_over_int8']:.2f} smaller, "
        f"{metrics['wall_seconds']:.0f} s"
    )


def _benchmark(results: dict, config: DemoConfig, out: Path) -> dict:
    """Interleaved per-stage latency of the int8 and float32 bundles on this machine."""
    from affectlite.benchmarks.latency import make_variants, run_benchmark, sample_frames
    from affectlite.benchmarks.report import write_report

    bundles = [results["int8"]["bundle"].path, results["float32"]["bundle"].path]
    variants = make_variants(bundles, [], [config.threads])
    frames, origin = sample_frames()
    result = run_benchmark(variants, frames, runs=config.bench_runs, warmup=5, frames_origin=origin)
    paths = write_report(result, out / "bench")
    summary = {}
    for variant in result.variants:
        stages = variant["stages_ms"]
        summary[variant["name"]] = {
            "end_to_end_median_ms": stages["end_to_end"]["median"],
            "classifier_only_median_ms": stages["classifier_only"]["median"],
            "fps": variant["fps"],
            "threads": variant["threads"],
        }
    return {"variants": summary, "report": str(paths["markdown"].relative_to(out))}
