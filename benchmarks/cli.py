"""``affectlite bench``: per-stage latency of bundles on this device, and a memory soak test.

Examples::

    affectlite bench                                  # the shipped default bundle
    affectlite bench --bundle bundles/int8 --bundle bundles/float32 --threads 1,2,4
    affectlite bench --bundle bundles/int8 --reference mobilenet_v2.tflite --runs 200
    affectlite bench clip.mp4 --bundle bundles/int8 --json - > bench.json
    affectlite bench day.mp4 night.mp4 --bundle bundles/int8    # the two clips in turn
    affectlite bench --bundle bundles/int8 --soak 600

Results go to ``benchmarks/results/<host>-<date>/`` (``bench.json``, ``bench.md``, PNG plots)
unless ``--out`` says otherwise. Runs without TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from affectlite.edge_app.bundle import DEFAULT_BUNDLE
from affectlite.edge_app.runtime import default_threads
from affectlite.edge_app.sources import FrameSource, SourceError, open_source
from affectlite.errors import InputError
from affectlite.options import add_bundle, add_json, add_sources, check_paths, emit_json

from . import system
from .latency import make_variants, run_benchmark, sample_frames
from .report import markdown, write_report
from .soak import run_soak, soak_markdown, write_loop_video, write_soak_report

RESULTS = Path("benchmarks") / "results"


def parse_threads(text: str) -> list[int]:
    """``"1,2,4"`` → ``[1, 2, 4]``.

    Raises:
        argparse.ArgumentTypeError: for anything but positive integers.
    """
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2,4, got {text!r}")
    return list(dict.fromkeys(values))


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` → ``(640, 480)``.

    Raises:
        argparse.ArgumentTypeError: for anything but WIDTHxHEIGHT of at least 64×64.
    """
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        width = height = 0
    if width < 64 or height < 64:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT (at least 64x64), got {text!r}")
    return width, height


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_bundle(parser, repeatable=True)
    parser.add_argument(
        "--reference",
        action="append",
        type=Path,
        default=[],
        help="an external .tflite classifier to time alone (repeatable)",
    )
    parser.add_argument(
        "--threads",
        type=parse_threads,
        default=None,
        help=f"interpreter thread counts, comma-separated (default: {default_threads()} here)",
    )
    parser.add_argument("--runs", type=_positive(int), default=50, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first")
    add_sources(
        parser,
        "read frames from a camera (0, picamera2), video file or image folder instead of the "
        "built-in frames; several are read in turn, a round from each, and measured together "
        "(one row per bundle and thread count: the latency of that mix of scenes, as with the "
        "built-in frames); bench each SOURCE alone for a figure per scene",
        required=False,
    )
    parser.add_argument(
        "--frame-size",
        type=parse_size,
        default=(640, 480),
        help="size of the built-in frames, WIDTHxHEIGHT",
    )
    parser.add_argument(
        "--frames",
        type=_positive(int),
        default=6,
        help="number of built-in frames, used in turn",
    )
    parser.add_argument(
        "--out", type=Path, help="output folder (default: benchmarks/results/<host>-<date>)"
    )
    add_json(parser, "bench.json (or soak.json) also")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument(
        "--no-probe", action="store_true", help="skip the MAC count and the peak probes"
    )
    parser.add_argument(
        "--soak",
        type=_positive(float),
        metavar="SECONDS",
        help="instead: run the first bundle on a looping video for SECONDS "
        "and record resident memory (soak test)",
    )
    parser.add_argument(
        "--soak-interval",
        type=_positive(float),
        default=10.0,
        help="seconds between memory samples in --soak",
    )


def default_out_dir(root: Path = RESULTS) -> Path:
    """``root/<host>-<YYYY-MM-DD>``, with ``-2``, ``-3``… when that folder exists."""
    base = root / f"{system.host_name()}-{time.strftime('%Y-%m-%d')}"
    candidate, number = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{number}")
        number += 1
    return candidate


def _progress(total_label: str):
    try:
        from tqdm import tqdm
    except ImportError:
        return None, None
    bar = tqdm(total=0, desc=total_label, unit="round", file=sys.stderr, disable=None)

    def update(done: float, total: float) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar


class InTurn:
    """Several opened sources read as one: ``per_turn`` frames from each in turn (a round of
    the benchmark reads one frame per bundle variant, so all variants of a round see the same
    source)."""

    def __init__(self, sources: list[FrameSource], per_turn: int = 1) -> None:
        self.sources, self.per_turn = sources, per_turn
        self.name = " + ".join(source.name for source in sources)
        self.live = any(source.live for source in sources)
        self._reads = 0
        self._current = sources[0]

    def read(self) -> np.ndarray | None:
        self._current = self.sources[self._reads // self.per_turn % len(self.sources)]
        self._reads += 1
        return self._current.read()

    def detection_frame(self) -> np.ndarray | None:
        return self._current.detection_frame()

    def close(self) -> None:
        for source in self.sources:
            source.close()


def _open(specs: list[str], per_turn: int = 1) -> tuple[FrameSource | InTurn, np.ndarray]:
    """Opens the sources (files and folders loop; cameras never end), several read in turn,
    and reads the first frame of the first one.

    Raises:
        SourceError: for a source that cannot be opened or gives no frame (none is left open).
    """
    sources: list[FrameSource] = []
    try:
        for spec in specs:
            looped = Path(spec).exists()
            sources.append(open_source(spec, reconnect=False, **({"loop": True} if looped else {})))
        first = sources[0].read()
        if first is None:
            raise SourceError(f"{sources[0].name}: no frame to read.")
    except BaseException:
        for source in sources:
            source.close()
        raise
    return (sources[0] if len(sources) == 1 else InTurn(sources, per_turn)), first


def _bench(args: argparse.Namespace, threads: list[int]) -> int:
    variants = make_variants(args.bundle, args.reference, threads)
    source = None
    frames, origin = [], "none (reference models only)"
    try:
        if args.sources and args.bundle:
            per_round = sum(variant.kind == "bundle" for variant in variants)
            source, first = _open(args.sources, per_round)
            frames, origin = [first], source.name
        elif args.bundle:
            frames, origin = sample_frames(args.frame_size, args.frames)
        update, bar = _progress("bench")
        result = run_benchmark(
            variants,
            frames,
            args.runs,
            args.warmup,
            source=source,
            frames_origin=origin,
            probe=not args.no_probe,
            progress=update,
        )
        if bar is not None:
            bar.close()
    finally:
        if source is not None:
            source.close()
    doc = result.to_dict()
    if args.json:
        emit_json(args.json, doc)
    if args.json != "-":
        print(markdown(doc))
    out_dir = args.out or default_out_dir()
    return _save(lambda plots: write_report(doc, out_dir, plots), out_dir, args.no_plots)


def _save(write: Callable[[bool], dict[str, Path]], out_dir: Path, no_plots: bool) -> int:
    """Saves the numbers first (``write(False)``), then tries again with plots: a failed plot
    is a warning, a failed save of the numbers exit 1."""
    try:
        paths = write(False)
    except OSError as error:
        print(f"affectlite bench: cannot save the results in {out_dir}: {error}", file=sys.stderr)
        return 1
    if not no_plots:
        try:
            paths = write(True)
        except (OSError, RuntimeError, ValueError) as error:
            print(
                f"affectlite bench: warning: plots not saved ({error}); the JSON and Markdown "
                "results are.",
                file=sys.stderr,
            )
    for name, path in paths.items():
        print(f"{name}: {path}", file=sys.stderr)
    return 0


def _soak(args: argparse.Namespace, threads: list[int]) -> int:
    if len(args.bundle) != 1 or len(threads) != 1 or args.reference:
        raise InputError(
            f"--soak runs one bundle at one thread count; got {len(args.bundle)} bundles, "
            f"{len(args.reference)} references and threads {threads}."
        )
    out_dir = args.out or default_out_dir()
    with tempfile.TemporaryDirectory(prefix="affectlite-soak-") as work:
        specs = args.sources
        if not specs:
            frames, _ = sample_frames(args.frame_size, args.frames)
            specs = [str(write_loop_video(frames, Path(work) / "loop.avi"))]
        source, _ = _open(specs)
        try:
            update, bar = _progress("soak")
            doc = run_soak(
                args.bundle[0], source, args.soak, args.soak_interval, threads[0], update
            )
            if bar is not None:
                bar.close()
        finally:
            source.close()
    if not args.sources:
        doc["settings"]["source"] = (
            f"built-in frames ({args.frames}) as a looping MJPEG video, "
            f"{args.frame_size[0]}×{args.frame_size[1]}"
        )
    if args.json:
        emit_json(args.json, doc)
    if args.json != "-":
        print(soak_markdown(doc))
    return _save(lambda plots: write_soak_report(doc, out_dir, plots), out_dir, args.no_plots)


def run(args: argparse.Namespace) -> int:
    threads = args.threads or [default_threads()]
    if not args.bundle and not args.reference:
        args.bundle = [DEFAULT_BUNDLE]
        print(f"affectlite bench: using the default bundle {DEFAULT_BUNDLE}", file=sys.stderr)
    if args.sources and not args.bundle:
        raise InputError("a SOURCE feeds bundles; add a --bundle.")
    if args.warmup < 0:
        raise InputError(f"--warmup must be >= 0, got {args.warmup}.")
    for reference in args.reference:
        check_paths(reference=reference)
    return _soak(args, threads) if args.soak else _bench(args, threads)
