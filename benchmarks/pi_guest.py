"""The device-side half of ``make pi-check``: runs inside the arm64 root file system.

``python -m affectlite.benchmarks.pi_guest imports`` prints, as JSON, what the installed stack
is (machine, Python, NumPy and where it comes from, OpenCV, the LiteRT runtime) after importing
every device module, and whether TensorFlow is installed or was imported.

``python -m affectlite.benchmarks.pi_guest app --bundle B --source S --out DIR`` starts the Kivy
app on the display in ``$DISPLAY`` (Xvfb in the check), waits until its worker has classified a
few frames and shows a face, saves a screenshot and ``app.json`` into DIR and stops. TensorFlow
is blocked.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

DEVICE_MODULES = (
    "affectlite.edge_app.runner",
    "affectlite.edge_app.pipeline",
    "affectlite.edge_app.sources",
    "affectlite.edge_app.app",
    "affectlite.edge_app.ui",
    "affectlite.benchmarks.cli",
)


def stack_report() -> dict[str, Any]:
    """Imports the device modules and describes the stack they run on."""
    for name in DEVICE_MODULES:
        importlib.import_module(name)
    import cv2
    import numpy

    from affectlite.edge_app.runtime import runtime_info

    runtime = runtime_info()
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numpy_path": str(Path(numpy.__file__).parent),
        "opencv": cv2.__version__,
        "runtime": {"name": runtime.name, "version": runtime.version},
        "tensorflow_installed": importlib.util.find_spec("tensorflow") is not None,
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }


def has_face(update: Any) -> bool:
    return update is not None and bool(update.result.faces)


def run_app(bundle: Path, source: Path, out: Path, frames: int, timeout: float) -> dict[str, Any]:
    """Runs the app until ``frames`` frames of a camera or video are classified and the latest
    has a face (a folder source: its first photo has one), then takes a screenshot."""
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KIVY_HOME", str(out / "kivy"))
    os.environ.setdefault("XDG_CONFIG_HOME", str(out / "config"))
    sys.modules["tensorflow"] = None  # importing TensorFlow now raises ImportError
    from kivy.clock import Clock
    from kivy.core.window import Window

    from affectlite.edge_app.ui import AffectliteApp

    overrides = {"bundle": str(bundle), "source": str(source), "threads": "2"}
    overrides["snapshot_dir"] = str(out / "snapshots")
    app = AffectliteApp(overrides)
    report: dict[str, Any] = {"processed": 0, "screenshot": None}
    start = time.monotonic()

    def tick(dt: float) -> None:
        if app.worker is not None:
            report["processed"] = app.worker.processed
        if time.monotonic() - start > timeout:
            report["timed_out"] = True
            report["status"] = app.root.status_text
            app.stop()
        elif report.get("frozen"):
            report["screenshot"] = Window.screenshot(name=str(out / "app.png"))
            report["window_size"] = list(Window.size)
            app.stop()
        elif (app.stills is not None or report["processed"] >= frames) and has_face(
            app.last_update
        ):  # a folder source shows one still photo at a time: nothing to freeze
            if app.stills is None:
                app.stop_worker()  # freeze the preview on the last classified frame
            report["faces"] = [f.label for f in app.last_update.result.faces]
            report["frozen"] = True

    Clock.schedule_interval(tick, 0.2)
    app.run()
    report["seconds"] = round(time.monotonic() - start, 1)
    report["tensorflow_loaded"] = sys.modules.get("tensorflow") is not None
    (out / "app.json").write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pi_guest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("imports", help="print the device stack as JSON")
    app = commands.add_parser("app", help="run the Kivy app and take a screenshot")
    app.add_argument("--bundle", type=Path, required=True)
    app.add_argument("--source", type=Path, required=True)
    app.add_argument("--out", type=Path, required=True)
    app.add_argument("--frames", type=int, default=3, help="classified frames before the shot")
    app.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.command == "imports":
        print(json.dumps(stack_report()))
        return 0
    report = run_app(args.bundle, args.source, args.out, args.frames, args.timeout)
    print(json.dumps(report))
    return 0 if report["screenshot"] and not report["tensorflow_loaded"] else 1


if __name__ == "__main__":
    sys.exit(main())
