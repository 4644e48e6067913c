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
from pathlib import Path
from typing import Any

import numpy as np
from kivy.app import App
from kivy.clock import Clock, mainthread
from kivy.config import Config
from kivy.graphics.texture import Texture
from kivy.metrics import dp
from kivy.properties import BooleanProperty, ListProperty, ObjectProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.label import Label
from kivy.uix.popup import Popup
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


class PreviewScreen(FloatLayout):
    """The root widget; its layout is in ``affectlite.kv``."""

    status_text = StringProperty("")
    message_text = StringProperty("")
    privacy_text = StringProperty(PRIVACY_NOTE)
    preview = ObjectProperty(None)
    photo_mode = BooleanProperty(False)
    """A chosen photo is on screen and the camera is stopped."""


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


def photo_summary(name: str, result: FrameResult) -> str:
    """``"photo.jpg: happy 87%, uncertain (sad 31%)"``, or that no face was found."""
    if not result.faces:
        return f"{name}: no face found."
    return f"{name}: " + ", ".join(overlay.face_caption(face) for face in result.faces)


class AffectliteApp(App):
    """Owns the lifecycle: settings, worker start/stop, camera permission, preview updates.

    Args:
        overrides: settings given on the command line; they win over the saved config.
        refresh_hz: how often the UI polls the worker for a new frame.
    """

    title = "affectlite"
    kv_file = str(KV_FILE)  # loaded once, by App.run (a second load binds every handler twice)
    use_kivy_settings = False

    def __init__(
        self, overrides: dict[str, str] | None = None, refresh_hz: float = 30.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.overrides = {k: str(v) for k, v in (overrides or {}).items()}
        self.refresh_hz = refresh_hz
        self.worker: Worker | None = None
        self.pipeline: Pipeline | None = None
        self.last_update: Update | None = None
        self.chooser: PhotoChooser | None = None
        self._photo_folder = Path.home()
        self._texture: Texture | None = None

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

    def settings(self) -> Settings:
        return Settings.from_config(dict(self.config.items(SECTION)))

    def snapshot_folder(self) -> Path:
        return self.settings().snapshot_dir or Path(self.user_data_dir) / "snapshots"

    def on_config_change(self, config: Any, section: str, key: str, value: Any) -> None:
        if section == SECTION and key != "snapshot_dir":  # read at each snapshot
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
        """Builds the pipeline and the source from the settings and starts the threads; a
        failure is shown on screen and the app stays up so the settings can be fixed."""
        if self.worker is not None:
            return
        try:
            settings = self.settings()
            pipeline = self.build_pipeline(settings)
            source = open_frame_source(settings)
        except STARTUP_ERRORS as error:
            log.error("cannot start: %s", error)
            self.root.status_text = f"{error} (open Settings to fix)"
            return
        on_exit = None
        if platform == "android":
            from jnius import detach  # Threads that touched pyjnius must detach before exiting.

            on_exit = detach
        if settings.source == "android":
            source.open()  # Kivy's Android camera must be opened on the UI thread.
        annotate = functools.partial(overlay.annotate, labels=pipeline.labels)
        worker = Worker(source, pipeline.process, annotate, on_thread_exit=on_exit)
        if isinstance(source, ReconnectingSource):
            source.on_error = worker.source_failed
        self.worker = worker.start()
        self.root.status_text = ""

    def build_pipeline(self, settings: Settings) -> Pipeline:
        """A new pipeline from the settings, kept as :attr:`pipeline` for photos."""
        config = PipelineConfig(
            num_threads=settings.threads,
            detector=settings.detector,
            smoothing=settings.smoothing,
        )
        self.pipeline = Pipeline(load_bundle(settings.bundle), config)
        return self.pipeline

    def stop_worker(self) -> None:
        if self.worker is not None:
            worker, self.worker = self.worker, None
            worker.stop()

    def restart_worker(self) -> None:
        self.stop_worker()
        self.start_worker()

    # --- preview [UI thread] -------------------------------------------------------------
    def refresh(self, dt: float = 0.0) -> None:
        """Shows the worker's newest frame, if any, and what is wrong, if anything (the red
        banner is empty while frames flow). Runs from ``Clock``."""
        if self.worker is None:
            return
        update = self.worker.latest()
        if update is not None:
            self.show(update.frame)
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
            self.root.message_text = "No frame yet: nothing saved."
            return None
        try:
            path = save_snapshot(self.last_update.frame, self.snapshot_folder())
        except (OSError, ValueError) as error:
            self.root.message_text = f"Snapshot failed: {error}"
            return None
        self.root.message_text = f"Saved {path}"
        return path

    # --- photos [UI thread] --------------------------------------------------------------
    def open_photo_chooser(self) -> None:
        """Lets the user pick a photo: Android's own picker where plyer provides it, else
        Kivy's file chooser in a popup."""
        if platform == "android" and self._android_picker():
            return
        self.chooser = PhotoChooser(self.show_photo, str(self._photo_folder))
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
        """Classifies one photo (no tracking, no smoothing) and shows it with its boxes and
        probability bars; the camera stops until Camera is pressed."""
        path = Path(path)
        try:
            frame = read_still(path).rgb
            self.stop_worker()  # The worker's pipeline is idle from here on.
            pipeline = self.pipeline or self.build_pipeline(self.settings())
        except (ImageError, *STARTUP_ERRORS) as error:
            self.root.message_text = f"Cannot open the photo: {error}"
            return
        self._photo_folder = path.parent
        result = pipeline.process(frame, still=True)
        picture = overlay.annotate(frame, result, labels=pipeline.labels, stats=False)
        self.show(picture)
        self.last_update = Update(picture, result, 0.0, 0)
        self.root.photo_mode = True
        self.root.status_text = ""
        self.root.message_text = photo_summary(path.name, result)

    def back_to_camera(self) -> None:
        """Leaves the photo and starts the camera again."""
        self.root.photo_mode = False
        self.root.message_text = ""
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
