"""Soak test: the pipeline on a looping video for minutes, resident memory sampled throughout.

A leak shows as RSS that keeps rising after the first interval (when the interpreters, the
video decoder and the allocator have settled). The report gives RSS at start, after the
first interval and at the end, the growth between the last two, and the least-squares
slope over every sample after the first interval, in MB per minute.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from affectlite import __version__
from affectlite.edge_app.bundle import load_bundle
from affectlite.edge_app.pipeline import Pipeline, PipelineConfig
from affectlite.edge_app.runner import peak_rss_bytes, rss_bytes
from affectlite.edge_app.sources import FrameSource
from affectlite.errors import InputError
from affectlite.files import write_text, write_with
from affectlite.markdown import table

from . import system
from .latency import summarize

SCHEMA = "affectlite-soak"
SCHEMA_VERSION = 1


_SOAK_COLUMNS = (
    "frames", "FPS", "e2e median ms", "e2e p99 ms", "RSS start MB", "RSS after 1st interval MB",
    "RSS end MB", "growth since MB", "slope MB/min", "peak RSS MB",
)  # fmt: skip


def write_loop_video(frames: Sequence[np.ndarray], path: str | Path, fps: float = 15.0) -> Path:
    """Writes RGB ``frames`` as an MJPEG ``.avi`` (OpenCV's always-available codec).

    Raises:
        ValueError: for no frames, frames of different sizes, or a codec OpenCV lacks.
    """
    if not frames:
        raise ValueError("Need at least one frame to write a video.")
    height, width = frames[0].shape[:2]

    def write(temp: Path) -> None:
        writer = cv2.VideoWriter(str(temp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
        try:
            if not writer.isOpened():
                raise ValueError(f"OpenCV {cv2.__version__} cannot write MJPEG video to {path}.")
            for index, frame in enumerate(frames):
                if frame.shape[:2] != (height, width):
                    raise ValueError(
                        f"Frame {index} is {frame.shape[1]}×{frame.shape[0]}; the video is "
                        f"{width}×{height}."
                    )
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()

    return write_with(path, write)


def run_soak(
    bundle: str | Path,
    source: FrameSource,
    seconds: float,
    interval: float = 10.0,
    threads: int | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> dict[str, Any]:
    """Runs the pipeline on ``source`` for ``seconds`` and samples RSS every ``interval``.

    Args:
        bundle: the bundle folder.
        source: an opened source that does not end (a looping video, a camera).
        seconds: how long to run.
        interval: seconds between RSS samples.
        threads: interpreter threads.
        progress: called with ``(elapsed, seconds)`` at every sample.

    Returns:
        The ``soak.json`` document.

    Raises:
        ValueError: for non-positive durations, or a source that ends.
    """
    if seconds <= 0 or interval <= 0:
        raise InputError(f"Need seconds > 0 and interval > 0, got {seconds} and {interval}.")
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    pipeline = Pipeline(load_bundle(bundle), PipelineConfig(num_threads=threads))
    rss_start = rss_bytes()
    temperature_start = system.cpu_temperature_c()
    samples = [{"t_s": 0.0, "rss_bytes": rss_start, "frames": 0, "median_ms": None}]
    latencies: list[float] = []
    window: list[float] = []
    start = time.perf_counter()
    next_sample = interval
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= next_sample or elapsed >= seconds:
            samples.append(
                {
                    "t_s": round(elapsed, 3),
                    "rss_bytes": rss_bytes(),
                    "frames": len(latencies),
                    "median_ms": float(np.median(window)) if window else None,
                }
            )
            window = []
            next_sample += interval
            if progress is not None:
                progress(elapsed, seconds)
            if elapsed >= seconds:
                break
        mark = time.perf_counter()
        frame = source.read()
        if frame is None:
            raise InputError(
                f"{source.name} ended after {len(latencies)} frames; soak needs a "
                "looping source (a video file or folder is looped by the CLI)."
            )
        pipeline.process(frame, source.detection_frame())
        latency = (time.perf_counter() - mark) * 1e3
        latencies.append(latency)
        window.append(latency)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": created,
        "kit_version": __version__,
        "host": system.host_facts(),
        "settings": {
            "bundle": str(bundle),
            "source": source.name,
            "seconds": seconds,
            "interval_s": interval,
            "threads": threads,
        },
        "summary": _summary(samples, latencies),
        "thermal": {"start_c": temperature_start, "end_c": system.cpu_temperature_c()},
        "samples": samples,
    }


def _summary(samples: list[dict[str, Any]], latencies: list[float]) -> dict[str, Any]:
    settled = samples[1:]  # from the end of the first interval on
    times = np.array([s["t_s"] for s in settled])
    rss = np.array([s["rss_bytes"] for s in settled], dtype=np.float64)
    slope = None
    if len(settled) >= 3 and np.ptp(times) > 0:
        slope = float(np.polyfit(times / 60.0, rss / 2**20, 1)[0])
    duration = samples[-1]["t_s"]
    return {
        "frames": len(latencies),
        "fps": len(latencies) / duration if duration > 0 else None,
        "end_to_end_ms": summarize(latencies) if latencies else None,
        "rss_start_bytes": samples[0]["rss_bytes"],
        "rss_after_first_interval_bytes": settled[0]["rss_bytes"] if settled else None,
        "rss_end_bytes": samples[-1]["rss_bytes"],
        "peak_rss_bytes": peak_rss_bytes(),
        "growth_after_first_interval_bytes": int(rss[-1] - rss[0]) if len(rss) else None,
        "rss_slope_mb_per_min": slope,
    }


def soak_markdown(doc: dict[str, Any]) -> str:
    """The soak run as Markdown."""
    s, settings, host = doc["summary"], doc["settings"], doc["host"]

    def mb(value: int | None) -> str:
        return "–" if value is None else f"{value / 2**20:.1f}"

    slope = s["rss_slope_mb_per_min"]
    e2e = s["end_to_end_ms"] or {}
    lines = [
        f"# affectlite soak — {host['host']}, {doc['created']}",
        "",
        f"- {host['cpu_model']}, {host['os']}, {host['runtime']['name']} "
        f"{host['runtime']['version']}",
        f"- Bundle `{settings['bundle']}` on `{settings['source']}` for {settings['seconds']:g} s "
        f"({settings['threads'] or 'default'} threads), RSS every {settings['interval_s']:g} s",
        "",
    ]
    summary = [
        s["frames"],
        f"{s['fps'] or 0:.1f}",
        f"{e2e.get('median', 0):.1f}",
        f"{e2e.get('p99', 0):.1f}",
        mb(s["rss_start_bytes"]),
        mb(s["rss_after_first_interval_bytes"]),
        mb(s["rss_end_bytes"]),
        mb(s["growth_after_first_interval_bytes"]),
        "–" if slope is None else f"{slope:+.3f}",
        mb(s["peak_rss_bytes"]),
    ]
    lines += table(_SOAK_COLUMNS, [summary]) + [""]
    samples = [
        [
            f"{sample['t_s']:.0f}",
            sample["frames"],
            mb(sample["rss_bytes"]),
            "–" if sample["median_ms"] is None else f"{sample['median_ms']:.1f}",
        ]
        for sample in doc["samples"]
    ]
    lines += table(["t (s)", "frames", "RSS MB", "median ms in interval"], samples)
    return "\n".join(lines) + "\n"


def write_soak_report(
    doc: dict[str, Any], out_dir: str | Path, plots: bool = True
) -> dict[str, Path]:
    """Writes ``soak.json``, ``soak.md`` and (with matplotlib) ``soak.png``."""
    out_dir = Path(out_dir)
    paths = {
        "json": write_text(out_dir / "soak.json", json.dumps(doc, indent=1) + "\n"),
        "markdown": write_text(out_dir / "soak.md", soak_markdown(doc)),
    }
    if plots:
        try:
            paths["plot"] = _soak_plot(doc, out_dir / "soak.png")
        except ImportError:
            pass  # The Markdown and JSON carry the same numbers.
    return paths


def _soak_plot(doc: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import save_figure

    samples = doc["samples"]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(
        [s["t_s"] for s in samples], [s["rss_bytes"] / 2**20 for s in samples], "o-", label="RSS"
    )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("resident memory (MB)")
    timed = [s for s in samples if s["median_ms"] is not None]
    twin = ax.twinx()
    twin.plot(
        [s["t_s"] for s in timed],
        [s["median_ms"] for s in timed],
        "s--",
        color="tab:red",
        label="median latency",
    )
    twin.set_ylabel("median end-to-end latency (ms)")
    ax.set_title(f"Soak on {doc['host']['host']}: {doc['settings']['seconds']:g} s", fontsize=9)
    fig.legend(loc="lower right", fontsize=8)
    return save_figure(plt, fig, path)
