"""What ``affectlite predict`` says on standard output: a line per photo, a line per video.

Each record written to ``predictions.jsonl`` also goes through :class:`PrintedResults`::

    photos/a.jpg: 2 faces: happy 0.81, neutral 0.55 (uncertain)
    photos/b.jpg: no face
    clip.mp4: 120 frames, a face in 98; happy in 70 of them, neutral in 28
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import IO, Any


def photo_line(record: dict[str, Any]) -> str:
    """One photo's result: file, number of faces, each face's label and confidence, or
    "no face" (or why it was skipped)."""
    name = record["file"]
    if record.get("error"):
        return f"{name}: skipped ({record['error']})"
    faces = record.get("faces", [])
    if not faces:
        return f"{name}: no face"
    each = ", ".join(
        f"{face['label']} {face['confidence']:.2f}" + (" (uncertain)" if face["uncertain"] else "")
        for face in faces
    )
    return f"{name}: {len(faces)} face{'s' * (len(faces) > 1)}: {each}"


class VideoSummary:
    """Frames, frames with a face, and how often each label led, of one video or camera."""

    def __init__(self, name: str) -> None:
        self.name, self.frames, self.with_face = name, 0, 0
        self.labels: Counter[str] = Counter()

    def add(self, record: dict[str, Any]) -> None:
        self.frames += 1
        faces = record.get("faces", [])
        if faces:
            self.with_face += 1
            self.labels[faces[0]["label"]] += 1  # the largest face

    def line(self) -> str:
        if not self.with_face:
            return f"{self.name}: {self.frames} frames, no face"
        leading = ", ".join(f"{label} in {count}" for label, count in self.labels.most_common())
        return f"{self.name}: {self.frames} frames, a face in {self.with_face}; {leading}"


class PrintedResults:
    """Wraps a records writer (``JsonLines``): every record is written, and summarised on
    ``out``: photos at once, a video when its last frame has passed (or when the ``with``
    block ends). Opening and closing the writer stays with its owner."""

    def __init__(self, lines: Any, out: IO[str] | None = None) -> None:
        self.lines, self.out = lines, out or sys.stdout
        self.video: VideoSummary | None = None

    def write(self, record: dict[str, Any]) -> None:
        self.lines.write(record)
        if "frame" in record:
            if self.video is None or self.video.name != record["file"]:
                self._end_video()
                self.video = VideoSummary(record["file"])
            self.video.add(record)
            return
        self._end_video()
        self._say(photo_line(record))

    def _end_video(self) -> None:
        if self.video is not None:
            self._say(self.video.line())
            self.video = None

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def __enter__(self) -> PrintedResults:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._end_video()
