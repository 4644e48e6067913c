"""``report.md`` of ``affectlite demo``: the measured numbers, the goals and the pictures."""

from __future__ import annotations

from pathlib import Path

from affectlite.markdown import table


def markdown(metrics: dict, out: Path) -> str:
    """The whole report; file links are relative to the run folder ``out``."""
    sections = [
        _synthetic_section(metrics),
        _goals_section(metrics),
        _latency_section(metrics["latency"]),
        _real_faces_section(metrics["real_faces"]),
        _files_section(metrics, out),
    ]
    return "\n".join(line for section in sections for line in [*section, ""])


def _synthetic_section(metrics: dict) -> list[str]:
    test, sizes = metrics["test"], metrics["sizes_bytes"]
    rows = [
        [name, *(f"{test[key][m]:.4f}" for m in ("accuracy", "balanced_accuracy", "macro_f1"))]
        for name, key in (
            ("Keras float", "keras_float"),
            ("TFLite float32", "float32_tflite"),
            ("TFLite int8", "int8_tflite"),
        )
    ]
    temperature = test["int8_temperature"]
    return [
        "# affectlite demo",
        "",
        "The accuracies here are measured on the kit's **synthetic** faces: they prove the flow "
        "(synthetic data → `train` → `calibrate` → `convert` → `bench`) works end to end, not "
        "how well a model reads real emotions. See `benchmarks/RESULTS.md` for real FER+ figures "
        "and the *Real faces* section below for the shipped model on real photos.",
        "",
        f"## Synthetic held-out test split (n = {test['n']}, argmax metrics)",
        "",
        *table(["model", "accuracy", "balanced accuracy", "macro-F1"], rows),
        "",
        f"- int8 top-1 agreement with the float model: {test['int8_agreement_with_float']:.4f}",
        f"- int8 mean KL divergence from the float model: {test['int8_kl_divergence']:.5f}",
        f"- int8 softmax temperature: {temperature['temperature']:.3f}"
        + (" (fitted)" if temperature.get("fitted") else " (kept at 1)"),
        f"- classifier size: float32 {sizes['float32'] / 1e6:.2f} MB, int8 "
        f"{sizes['int8'] / 1e6:.2f} MB (×{sizes['float32_over_int8']:.2f} smaller)",
    ]


def _goals_section(metrics: dict) -> list[str]:
    lines = ["## Goals", ""]
    for name, met in metrics["goals_met"].items():
        lines.append(f"- {'met' if met else '**MISSED**'}: {name} (goal {metrics['goals'][name]})")
    return lines


def _latency_section(latency: dict) -> list[str]:
    rows = [
        [
            name,
            str(v["threads"]),
            f"{v['classifier_only_median_ms']:.2f}",
            f"{v['end_to_end_median_ms']:.2f}",
            f"{v['fps']:.1f}",
        ]
        for name, v in latency["variants"].items()
    ]
    return [
        "## Latency on this machine",
        "",
        "Median per frame (LiteRT; face detection, crop and classification of 640×480 frames). "
        f"Per-stage tables and plots: [`{latency['report']}`]({latency['report']}).",
        "",
        *table(["bundle", "threads", "classifier ms", "end-to-end ms", "FPS"], rows),
    ]


def _real_faces_section(real: dict) -> list[str]:
    lines = ["## Real faces", ""]
    if "skipped" in real:
        return [*lines, f"Skipped: {real['skipped']}."]
    lines += [
        f"Bundle `{real['bundle']}` on photos shipped inside installed packages, through the "
        "device pipeline (BlazeFace → crop → int8 classifier; no TensorFlow).",
        "",
    ]
    for photo in real["photos"]:
        faces = "; ".join(f"{face['label']} {face['confidence']:.2f}" for face in photo["faces"])
        lines += [
            f"### {photo['photo']}: {faces or 'no face found'}",
            "",
            f"![{photo['photo']}]({photo['picture']})",
            "",
        ]
    return lines


def _files_section(metrics: dict, out: Path) -> list[str]:
    bundles = ", ".join(f"`{Path(path).relative_to(out)}/`" for path in metrics["bundles"].values())
    pictures = [photo["picture"] for photo in metrics["real_faces"].get("photos", [])]
    stages = ", ".join(
        f"{name} {seconds:.0f} s" for name, seconds in metrics["stage_seconds"].items()
    )
    return [
        "## Files",
        "",
        f"- {bundles}: bundles for the device (`affectlite run --bundle …`), each with its "
        "conversion report in `…-report/` (`conversion.md`, `reliability.png`)",
        "- `train/`: the training run (`history.csv`, `curves.png`, `confusion.png`, `best.keras`)",
        "- `representative/`: the int8 calibration set and its manifest",
        *(f"- `{picture}`: annotated real photo" for picture in pictures),
        "- `metrics.json`: every number above",
        "",
        f"Wall time {metrics['wall_seconds']:.0f} s ({stages}).",
    ]
