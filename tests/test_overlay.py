"""The overlay's pure drawing functions, on real frames and the pipeline's own result types."""

from __future__ import annotations

import numpy as np
import pytest

from affectlite.edge_app import overlay
from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.pipeline import STAGES, FaceResult, FrameResult
from affectlite.edge_app.tracking import UNCERTAIN


def _face(box, label="happy", probabilities=None, uncertain=False) -> FaceResult:
    probabilities = probabilities or {name: (1.0 if name == label else 0.0) for name in LABELS}
    confidence = max(probabilities.values())
    return FaceResult(1, box, label, confidence, probabilities, uncertain)


def _result(*faces: FaceResult, error: str | None = None) -> FrameResult:
    timings = {stage: 1.5 + i for i, stage in enumerate(STAGES)}
    return FrameResult(0.0, list(faces), timings, error)


def _colour_mask(image: np.ndarray, colour, tolerance: int = 10) -> np.ndarray:
    return np.all(np.abs(image.astype(int) - np.array(colour)) <= tolerance, axis=-1)


@pytest.fixture
def grey_frame() -> np.ndarray:
    return np.full((480, 640, 3), 90, np.uint8)


def test_every_label_has_its_own_colour():
    colours = [overlay.label_colour(name) for name in (*LABELS, UNCERTAIN)]
    assert len(set(colours)) == len(colours)
    assert overlay.label_colour("not-a-label") == overlay.UNKNOWN_COLOUR
    assert overlay.UNKNOWN_COLOUR not in colours


def test_stats_text_lists_fps_and_every_stage_in_order():
    text = overlay.stats_text(14.25, {"total": 9.0, "detect": 3.14, "classify": 5.0})
    assert text == "14.2 FPS | detect 3.1 ms | classify 5.0 ms | total 9.0 ms"
    assert overlay.stats_text(None, {}) == "-- FPS"


def test_caption_names_the_leading_class_when_uncertain():
    sure = _face((0, 0, 10, 10), "anger")
    assert overlay.face_caption(sure) == "anger 100%"
    probabilities = dict.fromkeys(LABELS, 0.1) | {"sad": 0.3}
    unsure = FaceResult(2, (0, 0, 10, 10), UNCERTAIN, 0.3, probabilities, True)
    assert overlay.face_caption(unsure) == "uncertain (sad 30%)"


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((10, 20, 30, 40), (10, 20, 40, 60)),
        ((-5, -5, 20, 20), (0, 0, 15, 15)),
        ((90, 90, 50, 50), (90, 90, 99, 99)),
        ((200, 200, 10, 10), None),
        ((10, 10, 0, 5), None),
    ],
)
def test_clip_box_keeps_boxes_inside_the_frame(box, expected):
    assert overlay.clip_box(box, 100, 100) == expected


def test_annotate_draws_the_box_in_the_label_colour_and_leaves_the_input_alone(grey_frame):
    original = grey_frame.copy()
    face = _face((200, 150, 120, 120), "sad")
    out = overlay.annotate(grey_frame, _result(face), fps=10.0)
    assert np.array_equal(grey_frame, original)
    assert out.shape == grey_frame.shape and out.dtype == np.uint8
    sad = _colour_mask(out, overlay.label_colour("sad"))
    thickness = overlay.line_thickness(480)
    # The four edges of the box carry the colour (away from the caption and the chart).
    assert sad[150 : 150 + thickness, 240:300].all()
    assert sad[200:260, 200 : 200 + thickness].all()
    assert sad[200:260, 320 - thickness + 1 : 321].all()
    assert sad[270 - thickness + 1 : 271, 210:310].mean() > 0.9
    # The inside of the box is the untouched frame.
    assert np.array_equal(out[170:250, 215:305], original[170:250, 215:305])


def test_probability_bars_grow_with_probability(grey_frame):
    low = {name: 0.0 for name in LABELS} | {"fear": 0.2}
    high = {name: 0.0 for name in LABELS} | {"fear": 0.8}
    fear = overlay.label_colour("fear")
    counts = []
    for probabilities in (low, high):
        out = grey_frame.copy()
        overlay.draw_probability_bars(out, probabilities, (100, 100), 200)
        counts.append(int(_colour_mask(out, fear).sum()))
        # No other class gets a bar (neutral's grey is left out: anti-aliased text has it).
        others = [overlay.label_colour(n) for n in LABELS if n not in ("fear", "neutral")]
        assert not any(_colour_mask(out, c, 0).any() for c in others)
    assert counts[0] > 0
    assert counts[1] / counts[0] == pytest.approx(4.0, rel=0.1)


def test_annotate_writes_stats_strip_and_error(grey_frame):
    plain = overlay.annotate(grey_frame, _result())
    strip = plain[:20, :200]
    assert (strip == 0).any() and (strip == 255).any()  # black panel, white text
    assert np.array_equal(plain[40:, :], grey_frame[40:, :])
    failed = overlay.annotate(grey_frame, _result(error="camera 0 lost"))
    assert not np.array_equal(failed[20:60, :200], plain[20:60, :200])


def test_annotate_without_result_is_a_copy(grey_frame):
    out = overlay.annotate(grey_frame, None)
    assert np.array_equal(out, grey_frame) and out is not grey_frame


def test_faces_outside_the_frame_are_skipped(grey_frame):
    out = overlay.annotate(grey_frame, _result(_face((900, 900, 50, 50))))
    assert np.array_equal(out[40:], grey_frame[40:])


def test_annotate_rejects_non_rgb_frames():
    with pytest.raises(ValueError, match="uint8 RGB"):
        overlay.annotate(np.zeros((10, 10), np.uint8), None)
    with pytest.raises(ValueError, match="float32"):
        overlay.annotate(np.zeros((10, 10, 3), np.float32), None)


@pytest.mark.parametrize(
    ("content", "pos", "size", "expected"),
    [
        ((640, 320), (0, 48), (800, 552), (0, 124, 800, 400)),
        ((320, 640), (10, 0), (800, 400), (310, 0, 200, 400)),
        ((100, 50), (0, 0), (200, 100), (0, 0, 200, 100)),
    ],
)
def test_fit_rect_letterboxes_and_centres(content, pos, size, expected):
    assert overlay.fit_rect(content, pos, size) == pytest.approx(expected)


def test_fit_rect_rejects_empty_content():
    with pytest.raises(ValueError, match="content_size"):
        overlay.fit_rect((0, 10), (0, 0), (10, 10))
