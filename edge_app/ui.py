"""The window of ``affectlite app`` (Kivy): preview, Open photo, Snapshot, Settings.

Threads: capture and inference run in :class:`~.worker.Worker` threads; everything in this
module runs on the Kivy main thread (marked ``[UI thread]``) except the Android permission and
file-picker answers, which are handed back to it through ``@mainthread``. Settings, snapshots
and the command line live in :mod:`.app`, which imports no Kivy.
"""

# ruff: noqa: E402  (the environment must be set before Kivy is imported)
from __future__ import annotations

import os

# The affectlite CLI owns the command line; without this Kivy would parse (and reject) it.
os.environ.setdefault("KIVY_NO_ARGS", "1")

import functools
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from affectlite.quiet import quiet_kivy

quiet_kivy()  # before Kivy logs its first line

from kivy.app import App
from kivy.clock import Clock, mainthread
from kivy.config import Config
from kivy.core.text import Label as CoreLabel
from kivy.graphics.texture import Texture
from kivy.metrics import dp
from kivy.properties import (
    BooleanProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.popup import Popup
from kivy.uix.settings import SettingItem, SettingsWithNoMenu
from kivy.uix.widget import Widget
from kivy.utils import platform

from . import overlay
from .app import (
    DEFAULTS,
    PRIVACY_NOTE,
    SECTION,
    Settings,
    config_path,
    open_frame_source,
    save_snapshot,
    settings_panel,
)
from .bundle import BundleError, load_bundle
from .detector import DetectorUnavailable
from .labels import LABELS
from .pipeline import FrameResult, Pipeline, PipelineConfig
from .preprocess import ImageError, read_still
from .runtime import RuntimeUnavailable
from .sources import IMAGE_SUFFIXES, ReconnectingSource, SourceError
from .worker import Update, Worker

log = logging.getLogger(__name__)

KV_FILE = Path(__file__).with_name("affectlite.kv")
PHOTO_FILTERS = sorted({f"*{suffix}" for suffix in IMAGE_SUFFIXES} | {"*.JPG", "*.PNG"})
STARTUP_ERRORS = (
    ValueError,
    BundleError,
    SourceError,
    DetectorUnavailable,
    RuntimeUnavailable,
    FileNotFoundError,
)


def set_fullscreen() -> None:
    """Asks for a fullscreen window (kiosk); call before the app runs."""
    Config.set("graphics", "fullscreen", "auto")


class FramePreview(Widget):
    """Draws the current frame texture letterboxed in the widget (see ``affectlite.kv``).

    One textured rectangle placed by :func:`overlay.fit_rect`, so the bands beside the frame
    stay black (``kivy.uix.image.Image`` painted them white in the offscreen Mesa window that
    the tests use)."""

    texture = ObjectProperty(None, allownone=True)
    display_rect = ListProperty([0.0, 0.0, 0.0, 0.0])

    def on_texture(self, *args: Any) -> None:
        self._place()

    def on_size(self, *args: Any) -> None:
        self._place()

    def on_pos(self, *args: Any) -> None:
        self._place()

    def _place(self) -> None:
        if self.texture is not None:
            self.display_rect = overlay.fit_rect(self.texture.size, self.pos, self.size)


def rgb_texture(picture_rgb: np.ndarray, texture: Texture | None = None) -> Texture:
    """``picture_rgb`` in a texture (``texture`` is reused when its size matches)."""
    height, width = picture_rgb.shape[:2]
    if texture is None or texture.size != (width, height):
        texture = Texture.create(size=(width, height), colorfmt="rgb")
        texture.flip_vertical()  # NumPy rows run top-down, OpenGL's bottom-up.
    texture.blit_buffer(
        np.ascontiguousarray(picture_rgb).tobytes(), colorfmt="rgb", bufferfmt="ubyte"
    )
    return texture


MESSAGE_SECONDS = 4.0
"""How long a transient message (saved, no frame yet, a photo that cannot open) stays."""
STATS_SECONDS = 0.25
"""Shortest time between two FPS and latency texts of a moving source: each new text is laid
out again on the UI thread, and it changes every frame."""


@functools.lru_cache(maxsize=16)
def _line_height(font_size: float, bold: bool) -> float:
    """The height of one line of text at ``font_size``."""
    return CoreLabel(text="Mg", font_size=font_size, bold=bold).get_extents("Mg")[1]


class PanelLabel(Label):
    """A label that wraps to its width and shows its first :attr:`max_shown` lines, as tall
    as those (0 when empty), with an optional ``background`` colour."""

    max_shown = NumericProperty(3)
    background = ListProperty([0.0, 0.0, 0.0, 0.0])

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        fit = self.fit
        self.bind(text=fit, width=fit, font_size=fit, bold=fit, max_shown=fit)

    def fit(self, *args: Any) -> None:
        if not self.text:
            self.height = 0
            return
        width = max(1.0, self.width - dp(12))
        core = CoreLabel(
            text=self.text, font_size=self.font_size, bold=self.bold, text_size=(width, None)
        )
        _, full = core.render()  # lays the lines out without drawing them
        lines = max(1, round(full / _line_height(self.font_size, self.bold)))
        shown = math.ceil(full * min(lines, self.max_shown) / lines) + 1
        self.text_size = (width, shown)
        self.height = shown + dp(8)


class ClassBar(BoxLayout):
    """One row of the results panel: the class's full name, a bar, the percentage."""

    name = StringProperty("")
    value = NumericProperty(0.0)
    percent = StringProperty("")
    colour = ListProperty([1.0, 1.0, 1.0, 1.0])


class PreviewScreen(BoxLayout):
    """The root widget: the state banner above the picture and, beside them (landscape) or
    below them (portrait), the panel: the results as per-class bars, FPS and latency,
    messages (or the settings), and the buttons. Nothing is drawn over the picture. Layout in
    ``affectlite.kv``."""

    status_text = StringProperty("")
    """A state that lasts (camera lost, reconnecting, a setting to fix); empty when fine."""
    message_text = StringProperty("")
    """A transient message; :meth:`flash` clears it after a few seconds."""
    privacy_text = StringProperty(PRIVACY_NOTE)
    title_text = StringProperty("Waiting for frames...")
    source_text = StringProperty("")
    """The photo on screen: its file name and place in its folder."""
    stats_text = StringProperty("")
    preview = ObjectProperty(None)
    panel = ObjectProperty(None)
    portrait = BooleanProperty(False)
    one_row = BooleanProperty(False)
    """The buttons sit in one row (portrait, or a short and wide panel), else in two."""
    photo_mode = BooleanProperty(False)
    """A chosen photo is on screen and the source is stopped."""
    stills_mode = BooleanProperty(False)
    """The source is a folder of photos, shown one at a time (Next, or the slide timer)."""
    settings_open = BooleanProperty(False)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._message_event: Any = None
        self._stats_at: float | None = None  # when a moving source's stats_text last changed
        self._results: list[Widget] = []
        self.set_labels(LABELS)
        self.bind(size=self.arrange, settings_open=self.arrange)
        self.panel.bind(minimum_height=self.arrange)
        self.arrange()

    def arrange(self, *args: Any) -> None:
        """Picture and panel side by side in a landscape window, stacked in a portrait one;
        the panel keeps a readable width (landscape) or its content's height (portrait)."""
        self.portrait = self.height > self.width
        self.orientation = "vertical" if self.portrait else "horizontal"
        self.one_row = self.portrait
        panel = self.panel
        if self.portrait:
            panel.size_hint = (1, None)
            fit = min(panel.minimum_height, self.height * 0.7)
            panel.height = self.height * 0.55 if self.settings_open else fit
        else:
            panel.size_hint = (None, 1)
            short = self.height < dp(460)  # e.g. a phone turned sideways: wider, fewer lines
            share, low, high = (0.42, dp(250), dp(420)) if short else (0.3, dp(250), dp(380))
            if self.settings_open:
                share, low, high = 0.55, dp(300), dp(560)
            panel.width = min(max(self.width * share, low), high, self.width)
            self.one_row = short and panel.width >= dp(360)

    def set_labels(self, labels: Sequence[str]) -> None:
        """One bar per class, in the model's order."""
        bars = self.ids.bars
        bars.clear_widgets()
        for name in labels:
            colour = [c / 255 for c in overlay.label_colour(name)] + [1.0]
            bars.add_widget(ClassBar(name=name, colour=colour))

    def show_result(self, result: FrameResult | None, fps: float | None, name: str = "") -> None:
        """The results of a frame: the largest face's bars and caption, FPS and latency (a
        photo shows its latency only, ``fps`` None)."""
        faces = result.faces if result is not None else []
        face = faces[0] if faces else None
        for row in self.ids.bars.children:
            value = face.probabilities.get(row.name, 0.0) if face is not None else 0.0
            row.value = value
            row.percent = f"{value:.0%}" if face is not None else "-"
        self.title_text = results_title(result)
        self.source_text = name
        now, moving = time.monotonic(), result is not None and fps is not None
        if not moving or self._stats_at is None or now - self._stats_at >= STATS_SECONDS:
            self.stats_text = "" if result is None else stats_lines(fps, result.timings_ms)
            self._stats_at = now if moving else None

    def flash(self, text: str, seconds: float = MESSAGE_SECONDS) -> None:
        """Shows a transient message, cleared after ``seconds`` (unless replaced)."""
        if self._message_event is not None:
            self._message_event.cancel()
        self.message_text = text
        self._message_event = Clock.schedule_once(self._clear_message, seconds)

    def _clear_message(self, dt: float = 0.0) -> None:
        self.message_text = ""
        self._message_event = None

    def show_settings(self, settings: Widget) -> None:
        """Puts the settings in the panel, in place of the results; the picture stays."""
        body = self.ids.body
        self._results = list(reversed(body.children))
        body.clear_widgets()
        body.add_widget(settings)
        self.settings_open = True

    def hide_settings(self) -> None:
        body = self.ids.body
        body.clear_widgets()
        for widget in self._results:
            body.add_widget(widget)
        self.settings_open = False


def fit_setting(item: SettingItem) -> None:
    """Makes a setting's row a touch target of at least 56 dp and keeps its value inside the
    row: one line, the start cut off when too long (a path keeps its last folders)."""

    def at_least(widget: Widget, height: float) -> None:
        if height < dp(56):
            widget.height = dp(56)

    item.bind(height=at_least)
    at_least(item, item.height)
    for label in item.content.children:
        if isinstance(label, Label):
            label.bind(size=label.setter("text_size"))
            label.text_size = label.size
            label.shorten, label.shorten_from = True, "left"
            label.halign, label.valign = "center", "middle"


def stats_lines(fps: float | None, timings_ms: dict[str, float]) -> str:
    """``"14.8 FPS | 52.0 ms a frame"`` and, below, the milliseconds of each stage (a photo
    has no FPS)."""
    first = [f"{fps:.1f} FPS"] if fps is not None else []
    if "total" in timings_ms:
        first.append(f"{timings_ms['total']:.1f} ms a frame")
    stages = [f"{s} {timings_ms[s]:.1f}" for s in overlay.STAGES[:-1] if s in timings_ms]
    return " | ".join(first) + ("\n" + ", ".join(stages) + " ms" if stages else "")


def results_title(result: FrameResult | None) -> str:
    """``"happy 87%"``, ``"2 faces; largest: happy 87%"``, ``"no face found"``, or that
    frames are awaited."""
    if result is None:
        return "Waiting for frames..."
    if not result.faces:
        return "no face found"
    caption = overlay.face_caption(result.faces[0])
    count = len(result.faces)
    return caption if count == 1 else f"{count} faces; largest: {caption}"


def is_photo(folder: str, name: str) -> bool:
    """The file chooser's filter: image files by suffix, in any letter case."""
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


class PhotoChooser(BoxLayout):
    """Kivy's file chooser with Open and Cancel (layout in ``affectlite.kv``), shown in a
    popup by :meth:`open`; Open calls ``on_choice`` with the selected file.

    Args:
        on_choice: called with the chosen path.
        start: the folder shown first.
    """

    start = StringProperty("")

    def __init__(self, on_choice: Any, start: str, **kwargs: Any) -> None:
        self.on_choice = on_choice
        super().__init__(start=start, **kwargs)
        self.popup = Popup(title="Open photo", content=self, size_hint=(0.92, 0.92))

    def open(self) -> None:
        self.popup.open()

    def dismiss(self) -> None:
        # Without the fade: a dismissal during the opening fade was undone by it.
        self.popup.dismiss(animation=False)

    def choose(self, selection: list[str]) -> None:
        if selection:
            self.dismiss()
            self.on_choice(selection[0])


class AffectliteApp(App):
    """Owns the lifecycle: settings, worker start/stop, camera permission, preview updates,
    photos and folder sources (one photo at a time).

    Args:
        overrides: settings given on the command line; they win over the saved config.
        refresh_hz: how often the UI polls the worker for a new frame.
    """

    title = "affectlite"
    kv_file = str(KV_FILE)  # loaded once, by App.run (a second load binds every handler twice)
    use_kivy_settings = False
    settings_cls = SettingsWithNoMenu  # shown in the panel, beside the picture

    def __init__(
        self, overrides: dict[str, str] | None = None, refresh_hz: float = 30.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.overrides = {k: str(v) for k, v in (overrides or {}).items()}
        self.refresh_hz = refresh_hz
        self.worker: Worker | None = None
        self.stills: Any = None
        """The folder (or photo) source shown one photo at a time, when that is the source."""
        self.pipeline: Pipeline | None = None
        self.last_update: Update | None = None
        self.chooser: PhotoChooser | None = None
        self._texture: Texture | None = None
        self._slides: Any = None

    # --- configuration [UI thread] -------------------------------------------------------
    def get_application_config(self, defaultpath: str = "%(appdir)s/%(appname)s.ini") -> str:
        # Beside the user's data, never inside the installed package; the same file that
        # `affectlite app` reads before Kivy starts.
        path = config_path() or Path(self.user_data_dir) / "affectlite.ini"
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)

    def build_config(self, config: Any) -> None:
        config.setdefaults(SECTION, DEFAULTS)

    def build_settings(self, settings: Any) -> None:
        settings.add_json_panel("affectlite", self.config, data=json.dumps(settings_panel()))

    def display_settings(self, settings: Any) -> bool:
        if self.root.settings_open:
            return False
        for item in settings.walk():
            if isinstance(item, SettingItem):
                fit_setting(item)
        self.root.show_settings(settings)
        return True

    def close_settings(self, *args: Any) -> bool:
        if not self.root.settings_open:
            return False
        self.root.hide_settings()
        return True

    def settings(self) -> Settings:
        return Settings.from_config(dict(self.config.items(SECTION)))

    def snapshot_folder(self) -> Path:
        return self.settings().snapshot_dir or Path(self.user_data_dir) / "snapshots"

    def photo_folder(self) -> str:
        """Where the file chooser starts: the folder of the last photo opened, else the
        working folder."""
        saved = self.config.get(SECTION, "photo_folder")
        folder = Path(saved).expanduser() if saved else None
        return str(folder if folder is not None and folder.is_dir() else Path.cwd())

    def on_config_change(self, config: Any, section: str, key: str, value: Any) -> None:
        if section == SECTION and key not in ("snapshot_dir", "photo_folder"):
            self.restart_worker()

    # --- lifecycle [UI thread] -----------------------------------------------------------
    def build(self) -> PreviewScreen:
        for key, value in self.overrides.items():
            self.config.set(SECTION, key, value)
        root = PreviewScreen()
        Clock.schedule_interval(self.refresh, 1.0 / self.refresh_hz)
        return root

    def on_start(self) -> None:
        if platform == "android":
            from .android import request_camera_permission

            self.root.status_text = "Waiting for camera permission..."
            request_camera_permission(self._permission_answered)
        else:
            self.start_worker()

    @mainthread
    def _permission_answered(self, granted: bool) -> None:
        """Called from Android's thread; ``@mainthread`` runs it on the UI thread."""
        if granted:
            self.start_worker()
        else:
            self.root.status_text = "Camera permission denied: allow it in Android's settings."

    def on_pause(self) -> bool:
        self.stop_worker()  # Release the camera while in the background.
        return True

    def on_resume(self) -> None:
        if not self.root.photo_mode:
            self.start_worker()

    def on_stop(self) -> None:
        self.stop_worker()

    # --- worker [UI thread] --------------------------------------------------------------
    def start_worker(self) -> None:
        """Builds the pipeline and the source from the settings and starts the threads (a
        folder source instead shows its first photo); a failure is shown on screen and the
        app stays up so the settings can be fixed."""
        if self.worker is not None or self.stills is not None:
            return
        try:
            settings = self.settings()
            pipeline = self.build_pipeline(settings)
            source = open_frame_source(settings)
            if source.still:
                source.open()  # lists the folder: an empty one is reported here
        except STARTUP_ERRORS as error:
            log.error("cannot start: %s", error)
            self.root.status_text = f"{error} (open Settings to fix)"
            return
        self.root.status_text = ""
        if source.still:
            self.start_stills(source, settings.slide_seconds)
            return
        on_exit = None
        if platform == "android":
            from jnius import detach  # Threads that touched pyjnius must detach before exiting.

            on_exit = detach
        if settings.source == "android":
            source.open()  # Kivy's Android camera must be opened on the UI thread.
        annotate = functools.partial(overlay.annotate, labels=pipeline.labels, bars=False)
        worker = Worker(source, pipeline.process, annotate, on_thread_exit=on_exit)
        if isinstance(source, ReconnectingSource):
            source.on_error = worker.source_failed
        self.worker = worker.start()

    def build_pipeline(self, settings: Settings) -> Pipeline:
        """A new pipeline from the settings, kept as :attr:`pipeline` for photos."""
        config = PipelineConfig(
            num_threads=settings.threads,
            detector=settings.detector,
            smoothing=settings.smoothing,
        )
        self.pipeline = Pipeline(load_bundle(settings.bundle), config)
        self.root.set_labels(self.pipeline.labels)
        return self.pipeline

    def stop_worker(self) -> None:
        if self.worker is not None:
            worker, self.worker = self.worker, None
            worker.stop()
        if self._slides is not None:
            self._slides.cancel()
            self._slides = None
        if self.stills is not None:
            stills, self.stills = self.stills, None
            stills.close()
        self.root.stills_mode = False

    def restart_worker(self) -> None:
        """Starts the source again from the settings, on a blank preview."""
        self.stop_worker()
        self.clear_preview()
        self.start_worker()

    def clear_preview(self) -> None:
        self.root.preview.texture = self._texture = self.last_update = None
        self.root.show_result(None, None)

    # --- folder sources: one photo at a time [UI thread] ---------------------------------
    def start_stills(self, source: Any, seconds: float) -> None:
        """Shows the folder's photos one at a time, as stills (no tracking, no smoothing):
        the next one on Next, or every ``seconds`` when that is above 0."""
        self.stills = source
        self.root.stills_mode = True
        if seconds > 0:
            self._slides = Clock.schedule_interval(lambda dt: self.next_still(), seconds)
        self.next_still()

    def next_still(self) -> None:
        """Shows the folder's next photo (after the last, the first again)."""
        if self.stills is None or self.pipeline is None:
            return
        frame = self.stills.read()
        path = self.stills.current_path
        if frame is None or path is None:
            self.root.status_text = f"{self.stills.name}: no readable photo."
            return
        position = f"{self.stills.paths.index(path) + 1} of {len(self.stills.paths)}"
        self.show_still(frame, f"{path.name} ({position})")

    def show_still(self, frame: np.ndarray, name: str) -> None:
        """Classifies one picture on its own (no tracking, no smoothing) and shows it with
        its boxes and, in the panel, its bars."""
        assert self.pipeline is not None
        result = self.pipeline.process(frame, still=True)
        picture = overlay.annotate(frame, result, labels=self.pipeline.labels, bars=False)
        self.show(picture)
        self.last_update = Update(picture, result, 0.0, 0)
        self.root.show_result(result, None, name)

    # --- preview [UI thread] -------------------------------------------------------------
    def refresh(self, dt: float = 0.0) -> None:
        """Shows the worker's newest frame and its results, if any, and what is wrong, if
        anything (the red banner is empty while frames flow). Runs from ``Clock``."""
        if self.worker is None:
            return
        update = self.worker.latest()
        if update is not None:
            self.show(update.frame)
            self.root.show_result(update.result, update.fps or None)
            self.last_update = update
        self.root.status_text = self.worker.status

    def show(self, frame_rgb: np.ndarray) -> None:
        """Uploads a frame into the preview's texture (reused while the size is unchanged)."""
        self._texture = rgb_texture(frame_rgb, self._texture)
        self.root.preview.texture = self._texture
        self.root.preview.canvas.ask_update()  # same texture object, new pixels

    def snapshot(self) -> Path | None:
        """Saves the annotated frame on screen; the only place the app writes a frame."""
        if self.last_update is None:
            self.root.flash("No frame yet: nothing saved.")
            return None
        try:
            path = save_snapshot(self.last_update.frame, self.snapshot_folder())
        except (OSError, ValueError) as error:
            self.root.flash(f"Snapshot failed: {error}")
            return None
        self.root.flash(f"Saved {path.name} in {path.parent}")
        return path

    # --- photos [UI thread] --------------------------------------------------------------
    def open_photo_chooser(self) -> None:
        """Lets the user pick a photo: Android's own picker where plyer provides it, else
        Kivy's file chooser in a popup, in the last folder used (else the working folder)."""
        if platform == "android" and self._android_picker():
            return
        self.chooser = PhotoChooser(self.show_photo, self.photo_folder())
        self.chooser.open()

    def _android_picker(self) -> bool:
        try:
            from plyer import filechooser  # optional: Android's picker, where plyer is packaged
        except ImportError:
            return False
        filechooser.open_file(on_selection=self._picked)
        return True

    @mainthread
    def _picked(self, selection: list[str] | None) -> None:
        """Called from the picker's thread; ``@mainthread`` runs it on the UI thread."""
        if selection:
            self.show_photo(selection[0])

    def show_photo(self, path: str | Path) -> None:
        """Classifies one photo (no tracking, no smoothing) and shows it; the source stops
        until Back is pressed."""
        path = Path(path)
        try:
            frame = read_still(path).rgb
            self.stop_worker()  # The worker's pipeline is idle from here on.
            if self.pipeline is None:
                self.build_pipeline(self.settings())
        except (ImageError, *STARTUP_ERRORS) as error:
            self.root.flash(f"Cannot open the photo: {error}", MESSAGE_SECONDS * 2)
            return
        self.config.set(SECTION, "photo_folder", str(path.parent.resolve()))
        self.config.write()
        self.root.photo_mode = True
        self.root.status_text = ""
        self.show_still(frame, path.name)

    def back_to_source(self) -> None:
        """Leaves the photo and starts the camera (or the folder) again."""
        self.root.photo_mode = False
        self.clear_preview()
        self.start_worker()


class PictureViewer(App):
    """``affectlite predict --show`` where OpenCV has no GUI: the annotated pictures one at a
    time, Next and Close, drawn like the app's preview.

    Args:
        pictures: the picture files to show.
    """

    title = "affectlite predict"
    kv_file = str(KV_FILE)  # FramePreview's drawing rule

    def __init__(self, pictures: list[Path], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pictures = list(pictures)
        self.index = 0

    def build(self) -> BoxLayout:
        # Widgets made here, after App.run loaded the kv file with FramePreview's rule.
        self.preview = FramePreview()
        self.caption = Label()
        root = BoxLayout(orientation="vertical")
        bar = BoxLayout(size_hint_y=None, height=dp(48), spacing=dp(6), padding=dp(4))
        self.next_button = Button(text="Next", size_hint_x=None, width=dp(110))
        self.next_button.bind(on_release=lambda *_: self.step(1))
        close = Button(text="Close", size_hint_x=None, width=dp(110))
        close.bind(on_release=lambda *_: self.stop())
        for widget in (self.caption, self.next_button, close):
            bar.add_widget(widget)
        root.add_widget(self.preview)
        root.add_widget(bar)
        self.step(0)
        return root

    def step(self, delta: int) -> None:
        """Shows the picture ``delta`` places on (wrapping around)."""
        self.index = (self.index + delta) % len(self.pictures)
        path = self.pictures[self.index]
        self.preview.texture = rgb_texture(read_still(path).rgb)
        self.caption.text = f"{path.name}  ({self.index + 1} of {len(self.pictures)})"
