"""Benchmark output: ``bench.json`` for machines, ``bench.md`` and PNG plots for people.

Every function here takes the ``bench.json`` document (a dict), so a saved run can be
re-rendered later. Files are written atomically (temp file, then ``os.replace``). Plots need
matplotlib; without it the JSON and Markdown are still written and the report says so.

``bench.json`` (``schema: "affectlite-bench"``, ``schema_version: 1``) holds:

* ``created``, ``kit_version``;
* ``host``: ``host``, ``cpu_model``, ``board``, ``machine``, ``logical_cpus``,
  ``usable_cores``, ``cpu_max_mhz``, ``cpu_governor``, ``os``, ``python``, ``numpy``,
  ``opencv``, ``runtime`` {``name``, ``version``}, ``kit_version``, ``total_memory_bytes``;
* ``settings``: ``runs``, ``warmup``, ``order``, ``threads``, ``input_stage`` {``kind``:
  ``jpeg-decode`` | ``source-read``, …}, ``frames`` {``count``, ``shapes``, ``origin``},
  ``baseline`` (first variant's name), ``timed_seconds``;
* ``memory``: ``peak_rss_bytes`` (process high-water mark), ``rss_bytes_end``;
* ``thermal``: ``start_c``, ``end_c`` (SoC °C, ``null`` where unreadable);
* ``load_average``: ``start``, ``end`` (1-, 5-, 15-minute load: other work on the CPU);
* ``probes``: [{``name``, ``dtype``, ``threads``, ``shape`` [M, K, N], ``best_ms``,
  ``macs_per_s``, ``runtime``}];
* ``variants``: [{``name``, ``kind`` (``bundle`` | ``reference``), ``threads``, ``model``
  {``classifier_file``, ``classifier_bytes``, …}, ``runtime``, ``rss_increase_bytes``,
  ``stages_ms`` {stage: {``min``, ``median``, ``p90``, ``p99``, ``mean``, ``std``}},
  ``samples_ms`` {stage: [every timed value]}, ``fps``, ``faces_per_frame``, ``accuracy``
  ({``metric``, ``value``, ``source``, ``data``} or ``null``), ``limit`` ({``macs``,
  ``compute_dtype``, ``achieved_macs_per_s``, ``peak_probe``, ``peak_macs_per_s``,
  ``fraction_of_peak``, ``by_op``} or ``null``), ``ratios_vs_baseline``
  {``median_end_to_end``, ``fps``, ``median_classifier_only``}}]; stages are ``input``,
  ``detect``, ``crop``, ``classify``, ``post``, ``pipeline``, ``end_to_end`` (bundles) and
  ``classifier_only`` (all);
* ``problems``: what could not be measured, and why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from affectlite.files import write_figure, write_text
from affectlite.markdown import table

STACKED = ("input", "detect", "crop", "classify", "post")


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _mb(value: int | None) -> str:
    return "–" if value is None else f"{value / 2**20:.1f}"


def _giga(value: float | None) -> str:
    return "–" if value is None else f"{value / 1e9:.2f}"


def _count(value: float | None) -> str:
    """A MAC count with its unit: ``4.09 G``, ``36.9 M``, ``960 k``."""
    if value is None:
        return "–"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f}"


def _load(values: list[float] | None) -> str:
    return "–" if not values else "/".join(f"{v:.2f}" for v in values)


def input_label(doc: dict[str, Any]) -> str:
    """Column name of the input stage: ``decode`` (JPEG) or ``capture`` (live source)."""
    return "capture" if doc["settings"]["input_stage"]["kind"] == "source-read" else "decode"


def markdown(doc: dict[str, Any], images: list[str] | None = None) -> str:
    """The run as Markdown: host, latency table, limit table, probes, problems, and links to
    the ``images`` (file names beside the Markdown file)."""
    host, settings = doc["host"], doc["settings"]
    runtime = host["runtime"]
    lines = [
        f"# affectlite bench — {host['host']}, {doc['created']}",
        "",
        f"- CPU: {host['cpu_model']} ({host['machine']}, {host['usable_cores']} usable of "
        f"{host['logical_cpus']} logical CPUs, governor {host['cpu_governor'] or '–'})",
        f"- Board: {host['board'] or '–'}; OS: {host['os']}; Python {host['python']}",
        f"- Runtime: {runtime['name']} {runtime['version']}; NumPy {host['numpy']}; "
        f"OpenCV {host['opencv']}; affectlite {doc['kit_version']}",
        f"- {settings['runs']} timed rounds after {settings['warmup']} warm-up, variants "
        f"interleaved (rotating order); frames: {settings['frames']['origin']}",
        f"- Peak RSS {_mb(doc['memory']['peak_rss_bytes'])} MB; SoC temperature "
        f"{doc['thermal']['start_c'] or '–'} → {doc['thermal']['end_c'] or '–'} °C; load "
        f"average {_load(doc['load_average']['start'])} → {_load(doc['load_average']['end'])}",
        "",
        "## Latency (ms, median unless marked)",
        "",
    ]
    stage = input_label(doc)
    header = [
        "variant",
        "threads",
        stage,
        "detect",
        "crop",
        "classify",
        "post",
        "end-to-end",
        "e2e p90",
        "e2e p99",
        "FPS",
        "classifier only",
        "clf p90",
        "× median",
        "× FPS",
        "model MB",
        "RSS +MB",
    ]
    rows = []
    for v in doc["variants"]:
        s = v["stages_ms"]

        def med(key: str, stat: str = "median", s=s) -> str:
            return _ms(s[key][stat]) if key in s else "–"

        ratios = v["ratios_vs_baseline"]
        size = v["model"]["classifier_bytes"] + (v["model"].get("detector_bytes") or 0)
        rows.append(
            [
                v["name"],
                str(v["threads"]),
                med("input"),
                med("detect"),
                med("crop"),
                med("classify"),
                med("post"),
                med("end_to_end"),
                med("end_to_end", "p90"),
                med("end_to_end", "p99"),
                "–" if v["fps"] is None else f"{v['fps']:.1f}",
                med("classifier_only"),
                med("classifier_only", "p90"),
                _ratio(ratios["median_end_to_end"] or ratios["median_classifier_only"]),
                _ratio(ratios["fps"]),
                _mb(size),
                _mb(v["rss_increase_bytes"]),
            ]
        )
    lines += table(header, rows)
    lines += [
        "",
        f"Ratios are against `{settings['baseline']}` (end-to-end median, or classifier-only "
        "median for reference models; FPS = 1000 / mean end-to-end). Model MB counts the "
        "classifier and the face detector; RSS +MB is the resident memory added while the "
        "variant was built.",
    ]
    lines += _limit_section(doc)
    if images:
        lines += ["", "## Plots", ""] + [f"![{Path(i).stem}]({i})" for i in images]
    if doc["problems"]:
        lines += ["", "## Not measured", ""] + [f"- {p}" for p in doc["problems"]]
    return "\n".join(lines) + "\n"


def _limit_section(doc: dict[str, Any]) -> list[str]:
    limited = [v for v in doc["variants"] if v["limit"]]
    if not limited and not doc["probes"]:
        return []
    lines = ["", "## Arithmetic against this machine's measured peak", ""]
    rows = []
    for v in limited:
        lim = v["limit"]
        fraction = lim["fraction_of_peak"]
        rows.append(
            [
                v["name"],
                _count(lim["macs"]),
                lim["compute_dtype"],
                _giga(lim["achieved_macs_per_s"]),
                lim["peak_probe"] or "–",
                _giga(lim["peak_macs_per_s"]),
                "–" if fraction is None else f"{100 * fraction:.0f} %",
            ]
        )
    lines += table(
        [
            "variant",
            "MACs / inference",
            "compute",
            "achieved GMAC/s",
            "peak probe",
            "probe GMAC/s",
            "of peak",
        ],
        rows,
    )
    lines += ["", "Probes (best of repeated runs):", ""]
    probe_rows = [
        [
            p["name"],
            "BLAS" if p["threads"] is None else str(p["threads"]),
            "×".join(map(str, p["shape"])),
            _ms(p["best_ms"]),
            _giga(p["macs_per_s"]),
            p["runtime"],
        ]
        for p in doc["probes"]
    ]
    lines += table(["probe", "threads", "M×K×N", "best ms", "GMAC/s", "runtime"], probe_rows)
    lines += [
        "",
        "MACs are counted from the .tflite graph (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, "
        "BATCH_MATMUL, TRANSPOSE_CONV, CONV_3D); achieved = MACs / classifier-only median. The "
        "peak is a dense FULLY_CONNECTED run by the same runtime and thread count, a practical "
        "GEMM ceiling rather than the silicon's theoretical peak.",
    ]
    return lines


def write_plots(doc: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """PNG plots: per-stage stacked bars, latency distributions and, when bundles carry a
    measured accuracy, accuracy against latency. Returns ``{name: path}``.

    Raises:
        ImportError: if matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    bundles = [v for v in doc["variants"] if v["kind"] == "bundle"]
    if bundles:
        figure = _stages_figure(plt, doc, bundles)
        paths["stages"] = save_figure(plt, figure, out_dir / "stages.png")
    paths["distribution"] = save_figure(
        plt, _distribution_figure(plt, doc), out_dir / "distribution.png"
    )
    scored = [v for v in doc["variants"] if v["accuracy"]]
    if scored:
        paths["accuracy_latency"] = save_figure(
            plt, _accuracy_figure(plt, scored), out_dir / "accuracy_latency.png"
        )
    return paths


def save_figure(plt, fig, path: Path) -> Path:
    """Saves a matplotlib figure as PNG atomically and closes it."""
    return write_figure(path, fig, dpi=120, bbox_inches="tight")


def _stages_figure(plt, doc: dict[str, Any], bundles: list[dict[str, Any]]):
    names = [v["name"] for v in bundles]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(names) + 1.6))
    left = [0.0] * len(names)
    labels = {"input": input_label(doc)}
    for stage in STACKED:
        widths = [v["stages_ms"][stage]["median"] for v in bundles]
        ax.barh(names, widths, left=left, label=labels.get(stage, stage))
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for y, v in enumerate(bundles):
        e2e = v["stages_ms"]["end_to_end"]["median"]
        ax.text(left[y], y, f"  {e2e:.1f} ms end-to-end", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("median latency per stage (ms)")
    ax.set_title(
        f"Per-stage latency on {doc['host']['host']} ({doc['host']['cpu_model']})", fontsize=9
    )
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xlim(0, max(left) * 1.35)
    return fig


def _distribution_figure(plt, doc: dict[str, Any]):
    variants = doc["variants"]
    bundles = [v for v in variants if "end_to_end" in v["samples_ms"]]
    panels = [("classifier only", variants, "classifier_only")]
    if bundles:
        panels.insert(0, ("end-to-end", bundles, "end_to_end"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (title, chosen, stage) in zip(axes[0], panels, strict=True):
        data = [v["samples_ms"][stage] for v in chosen]
        ax.violinplot(data, showextrema=False)
        ax.boxplot(data, widths=0.15, showfliers=True, flierprops={"markersize": 3})
        ax.set_xticks(
            range(1, len(chosen) + 1),
            [v["name"] for v in chosen],
            rotation=30,
            ha="right",
            fontsize=8,
        )
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{title}, {doc['settings']['runs']} rounds", fontsize=9)
    fig.tight_layout()
    return fig


def _accuracy_figure(plt, scored: list[dict[str, Any]]):
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for v in scored:
        stage = "end_to_end" if "end_to_end" in v["stages_ms"] else "classifier_only"
        x, y = v["stages_ms"][stage]["median"], 100 * v["accuracy"]["value"]
        ax.scatter(x, y)
        ax.annotate(v["name"], (x, y), fontsize=8, xytext=(4, 4), textcoords="offset points")
    metric = scored[0]["accuracy"]["metric"].replace("_", " ")
    data = {str(v["accuracy"].get("data")) for v in scored}
    ax.set_xlabel("median end-to-end latency (ms)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title("Accuracy against latency; accuracy on: " + "; ".join(sorted(data)), fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def write_report(result: Any, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Writes ``bench.json``, ``bench.md`` and the plots into ``out_dir``.

    Args:
        result: a :class:`~affectlite.benchmarks.latency.BenchResult` or its document.
        out_dir: the folder (created if needed).
        plots: also draw the PNG plots (skipped with a note when matplotlib is missing).

    Returns:
        ``{"json": …, "markdown": …, "stages": …, "distribution": …,
        "accuracy_latency": …}`` for the files written.
    """
    doc = result.to_dict() if hasattr(result, "to_dict") else result
    out_dir = Path(out_dir)
    paths = {
        "json": write_text(out_dir / "bench.json", json.dumps(doc, indent=1) + "\n"),
    }
    if plots:
        try:
            paths.update(write_plots(doc, out_dir))
        except ImportError:
            doc.setdefault("problems", []).append(
                "plots: matplotlib is not installed (pip install matplotlib)"
            )
            paths["json"] = write_text(out_dir / "bench.json", json.dumps(doc, indent=1) + "\n")
    images = [p.name for key, p in paths.items() if key != "json"]
    paths["markdown"] = write_text(out_dir / "bench.md", markdown(doc, images))
    return paths
