"""Screenshots of ``affectlite app`` at the screens it is made for, and a layout check.

    python -m affectlite.edge_app.screenshots docs/screenshots

Three screens: the official Raspberry Pi touch display (800×480, fullscreen), a phone in
portrait (1080×2340 at 420 dpi, Kivy density 2.625) and a 1280×800 desktop window. In each,
three states: a photo's result (scikit-image's astronaut, as a folder source), a missing
camera, and the settings. Each screen runs the real app in its own process, in a real SDL2
window (``SDL_VIDEODRIVER=offscreen``, Mesa renders it), with the shipped default bundle.

:func:`layout_problems` walks the widget tree and lists every widget that covers the picture,
leaves the window, holds text larger than itself, or is a touch target under 48 dp;
with ``check=True``, :func:`shoot` runs it in each state with the longest names and messages
instead of the normal ones (the app test asserts there are no problems, at these screens and
at two more: :data:`ALSO_CHECKED`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SCREENS: dict[str, tuple[int, int, float]] = {
    "pi-800x480": (800, 480, 1.0),
    "phone-1080x2340": (1080, 2340, 2.625),
    "desktop-1280x800": (1280, 800, 1.0),
}
ALSO_CHECKED: dict[str, tuple[int, int, float]] = {
    "phone-landscape-2340x1080": (2340, 1080, 2.625),  # the phone turned sideways
    "pi-portrait-480x800": (480, 800, 1.0),  # the touch display mounted upright
}
STATES = ("photo", "settings", "no-camera")
LONG_LABEL = "surprise-mixed-with-contempt-and-disgust"
LONG_STATUS = (
    "camera 9: cannot open /dev/video9 (no such device; is the cable in, and is the camera "
    "enabled in raspi-config?) | camera 9: reconnecting (attempt 12) in 5 s | "
    "inference failed: the interpreter ran out of memory while classifying 5 faces"
)
LONG_MESSAGE = (
    "Saved affectlite-20261204-193512-123.png in /home/pi/a/very/deep/folder/of/snapshots"
)
Rect = tuple[float, float, float, float]


def _box(widget: Any) -> Rect:
    x, y = widget.to_window(*widget.pos)
    return x, y, x + widget.width, y + widget.height


def _overlap(a: Rect, b: Rect) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _visible(widget: Any) -> bool:
    return widget.opacity > 0 and widget.width > 0 and widget.height > 0


def _widgets(widget: Any, clipped: bool = False) -> Any:
    """``(widget, clipped)`` for each visible widget under ``widget``; ``clipped``: it is in a
    scroll view, which clips it (the scroll view's own box is what shows)."""
    from kivy.uix.scrollview import ScrollView

    for child in widget.children:
        if _visible(child):
            yield child, clipped
            yield from _widgets(child, clipped or isinstance(child, ScrollView))


def layout_problems(window: Any, root: Any) -> list[str]:
    """What is wrong with the layout on screen: widgets over the picture or outside the
    window, text larger than its label, touch targets under 48 dp."""
    from kivy.metrics import dp
    from kivy.uix.behaviors import ButtonBehavior
    from kivy.uix.label import Label
    from kivy.uix.settings import SettingItem

    width, height = window.size
    preview = root.preview
    x, y, w, h = (
        preview.display_rect if preview.texture is not None else (*preview.pos, *preview.size)
    )
    x, y = preview.to_window(x, y)
    picture = (x, y, x + w, y + h)
    problems = []
    ancestors = _ancestors(preview)  # the preview and the layouts holding it
    for widget, clipped in [(root, False), *_widgets(window)]:
        name = f"{type(widget).__name__} {getattr(widget, 'text', '')[:30]!r}"
        box = _box(widget)
        outside = box[0] < -0.5 or box[1] < -0.5 or box[2] > width + 0.5 or box[3] > height + 0.5
        if outside and not clipped:
            problems.append(f"{name} at {box} leaves the {width}x{height} window")
        inside = any(widget == ancestor for ancestor in ancestors)  # == sees through proxies
        if not inside and not clipped and _overlap(box, picture) > 0:
            problems.append(f"{name} at {box} covers the picture {picture}")
        if isinstance(widget, Label) and widget.text:
            tw, th = widget.texture_size
            if tw > widget.width + 1 or th > widget.height + 1:
                problems.append(f"{name}: text {tw}x{th} overflows its {widget.size}")
        target = isinstance(widget, ButtonBehavior | SettingItem)
        if target and min(widget.size) < dp(48) - 0.5:
            problems.append(f"{name}: touch target {widget.size} under 48 dp ({dp(48)} px)")
    return problems


def _ancestors(widget: Any) -> list[Any]:
    chain = []
    while widget is not None and widget.parent is not widget:
        chain.append(widget)
        widget = widget.parent
    return chain


DRIVER = """
import json, sys, time
from pathlib import Path
sys.modules["tensorflow"] = None  # the app never imports TensorFlow
from kivy.config import Config
job = json.loads(sys.argv[1])
Config.set("graphics", "width", str(job["width"]))
Config.set("graphics", "height", str(job["height"]))
Config.set("graphics", "resizable", "0")
from kivy.clock import Clock
from kivy.core.window import Window
from affectlite.edge_app import screenshots
from affectlite.edge_app.app import SECTION
from affectlite.edge_app.ui import AffectliteApp

app = AffectliteApp(job["overrides"])
report = {"problems": {}, "shots": {}}
state = {"index": 0, "since": time.monotonic(), "started": time.monotonic()}
states = job["states"]


def enter(name):
    if name == "no-camera":
        app.close_settings()
        app.config.set(SECTION, "source", "9")  # no /dev/video9: the camera is missing
        app.restart_worker()
    elif name == "settings":
        app.open_settings()
    if job["check"]:
        stress(name)


def stress(name):
    # The longest texts the layout has to hold.
    root = app.root
    labels = list(app.pipeline.labels)
    labels[3] = screenshots.LONG_LABEL
    root.set_labels(labels)
    if app.last_update is not None:
        result = app.last_update.result
        for face in result.faces:
            face.probabilities = dict.fromkeys(labels, 1.0 / len(labels))
            face.label, face.uncertain = "uncertain", True
        root.show_result(result, 999.9, "a-photo-with-a-rather-long-file-name-2026-12-04.jpeg")
    root.flash(screenshots.LONG_MESSAGE, 60)
    if name == "no-camera":
        app.stop_worker()  # freeze the banner on the long status below
    root.status_text = screenshots.LONG_STATUS


def ready(name, waited):
    if name == "photo":
        return app.last_update is not None and waited > 1.0
    if name == "no-camera":
        return "Retrying" in app.root.status_text or waited > 6.0
    return waited > 1.0


def tick(dt):
    if time.monotonic() - state["started"] > job["timeout"]:
        report["timed_out"] = True
        return app.stop()
    name = states[state["index"]]
    waited = time.monotonic() - state["since"]
    if state.get("entered") != name:
        enter(name)
        state["entered"], state["since"] = name, time.monotonic()
        return
    if not ready(name, waited):
        return
    if state.get("settled") != name:  # one more frame after the last change
        state["settled"] = name
        return
    report["problems"][name] = screenshots.layout_problems(Window, app.root)
    report["shots"][name] = Window.screenshot(name=str(Path(job["out"]) / f"{name}.png"))
    report["status"] = app.root.status_text
    state["index"] += 1
    state["since"] = time.monotonic()
    if state["index"] == len(states):
        app.stop()


Clock.schedule_interval(tick, 0.2)
app.run()
report["window"] = list(Window.size)
(Path(job["out"]) / "report.json").write_text(json.dumps(report))
"""


def shoot(
    screen: str,
    out: Path,
    photos: Path,
    check: bool = False,
    states: tuple[str, ...] = STATES,
    bundle: str = "default",
    timeout: float = 90.0,
) -> dict:
    """Runs the app at one screen size in a subprocess; returns its report: the screenshot
    of each state and the layout problems found in it."""
    width, height, density = (SCREENS | ALSO_CHECKED)[screen]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="affectlite-shots-") as temporary:
        home = Path(temporary)
        env = dict(
            os.environ,
            KIVY_NO_ARGS="1",
            KIVY_NO_CONSOLELOG="1",
            KIVY_HOME=str(home / "kivy"),
            XDG_CONFIG_HOME=str(home / "config"),
            KIVY_METRICS_DENSITY=str(density),
            SDL_VIDEODRIVER="offscreen",
        )
        env.pop("KIVY_GL_BACKEND", None)  # "mock" draws nothing
        overrides = {"bundle": bundle, "source": str(photos), "snapshot_dir": str(home / "snaps")}
        job = {
            "width": width,
            "height": height,
            "out": str(out),
            "overrides": overrides,
            "check": check,
            "states": list(states),
            "timeout": timeout - 15,
        }
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, json.dumps(job)],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    report_path = out / "report.json"
    if done.returncode != 0 or not report_path.exists():
        raise RuntimeError(f"the app exited with {done.returncode}:\n{done.stderr[-4000:]}")
    report = json.loads(report_path.read_text())
    report_path.unlink()
    report["stderr"] = done.stderr
    return report


def astronaut_folder() -> Path:
    """A folder holding scikit-image's astronaut photo, as a PNG."""
    import cv2
    from skimage import data

    folder = Path(tempfile.mkdtemp(prefix="affectlite-photos-"))
    cv2.imwrite(str(folder / "astronaut.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return folder


def shrink(path: Path, target: Path, max_side: int = 1200) -> None:
    """Writes the screenshot to ``target`` as a small PNG: at most ``max_side`` pixels tall
    or wide, in 256 colours."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        image.quantize(256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the PNGs (e.g. docs/screenshots)")
    parser.add_argument("--bundle", default="default", help="bundle folder (default: default)")
    args = parser.parse_args(argv)
    photos = astronaut_folder()
    args.out.mkdir(parents=True, exist_ok=True)
    failed = False
    for screen in SCREENS:
        with tempfile.TemporaryDirectory() as raw:
            report = shoot(screen, Path(raw), photos, bundle=args.bundle)
            for state, path in report["shots"].items():
                target = args.out / f"{screen}-{state}.png"
                shrink(Path(path), target)
                problems = report["problems"][state]
                failed |= bool(problems)
                print(f"{target} ({target.stat().st_size // 1024} kB)", *problems, sep="\n  ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
