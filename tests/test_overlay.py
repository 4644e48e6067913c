"""The overlay's pure drawing functions, on real frames and the pipeline's own result types."""

from __future__ import annotations

import cv2
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
        overlay.draw_probability_bars(out, probabilities, (100, 100))
        counts.append(int(_colour_mask(out, fear).sum()))
        # No other class gets a bar (neutral's grey is left out: anti-aliased text has it).
        others = [overlay.label_colour(n) for n in LABELS if n not in ("fear", "neutral")]
        assert not any(_colour_mask(out, c, 0).any() for c in others)
    assert counts[0] > 0
    assert counts[1] / counts[0] == pytest.approx(4.0, rel=0.1)


def _text_columns(panel: np.ndarray, top: int, row: int) -> np.ndarray:
    """The columns of one bar-panel row that hold white text."""
    band = panel[top : top + row]
    return np.flatnonzero(np.all(band > 200, axis=-1).any(axis=0))


def test_bars_carry_full_names_and_percentages(grey_frame):
    probabilities = {name: 0.0 for name in LABELS} | {"surprise": 0.73, "contempt": 0.27}
    out = grey_frame.copy()
    x0, y0, x1, y1 = overlay.draw_probability_bars(out, probabilities, (50, 60))
    scale = overlay.bars_scale(480)
    name_w, bar_w, pct_w, row, pad = overlay._bar_columns(scale, LABELS)
    panel = out[y0:y1, x0:x1]
    names_end = pad + name_w
    for i, name in enumerate(LABELS):
        columns = _text_columns(panel, pad + i * row, row)
        name_columns = columns[columns < names_end + pad // 2]
        # The whole name is written: its ink spans (nearly) the full name's width, well past
        # what its first four letters would take.
        full = cv2.getTextSize(name, overlay.FONT, scale, 1)[0][0]
        four = cv2.getTextSize(name[:4], overlay.FONT, scale, 1)[0][0]
        assert name_columns.max() + 1 - pad >= full - 4, name
        if len(name) > 5:
            assert name_columns.max() - pad > four + 3, name
        # And a percentage at the right end of every row, wider for 73% than for 0%.
        assert columns.max() > x1 - x0 - pad - pct_w // 2, name
    percent_ink = [
        _text_columns(panel, pad + LABELS.index(name) * row, row) for name in ("surprise", "sad")
    ]
    right = x1 - x0 - pad - pct_w - 2
    widths = [int((c > right).sum()) for c in percent_ink]
    assert widths[0] > widths[1]  # "73%" takes more ink than "0%"
    # Bar lengths are the probabilities.
    assert _colour_mask(panel, overlay.label_colour("surprise")).any(axis=0).sum() == (
        pytest.approx(0.73 * bar_w, abs=2)
    )


def test_bar_panel_sits_beside_the_face_not_on_it(grey_frame):
    for box in [(100, 150, 120, 120), (540, 150, 90, 90), (200, 330, 120, 140)]:
        face = _face(box, "fear")
        out = overlay.annotate(grey_frame, _result(face))
        x, y, w, h = box
        thickness = overlay.line_thickness(480)
        inside = (slice(y + thickness + 1, y + h - thickness), slice(x + thickness + 1, x + w - 1))
        assert np.array_equal(out[inside], grey_frame[inside]), box  # the face is uncovered
        # The panel is there, whole and inside the frame: one dark block of its full size.
        dark = np.all(out < 40, axis=-1)
        panel_w, panel_h = overlay.bars_size(480)
        rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
        assert rows.max() - rows.min() + 1 == panel_h and cols.max() - cols.min() + 1 == panel_w


def test_panels_avoid_other_faces(grey_frame):
    left, right = _face((100, 100, 100, 100), "sad"), _face((260, 100, 100, 100), "happy")
    out = overlay.annotate(grey_frame, _result(left, right))
    thickness = overlay.line_thickness(480)
    for x, y, w, h in (left.box, right.box):
        inside = (slice(y + thickness + 1, y + h - thickness), slice(x + thickness + 1, x + w - 1))
        assert np.array_equal(out[inside], grey_frame[inside])


@pytest.mark.parametrize("box", [(200, 0, 120, 120), (0, -30, 120, 100), (560, 400, 100, 100)])
def test_caption_is_never_cut_off(grey_frame, box):
    face = _face(box, "disgust")
    out = grey_frame.copy()
    x0, y0, x1, y1 = overlay.draw_face(out, face)[-1]  # the caption's rectangle
    assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
    w, h = overlay.text_panel_size(overlay.face_caption(face), overlay.text_scale(480))
    assert (x1 - x0, y1 - y0) == (w, h)
    caption = out[y0:y1, x0:x1]
    filled = _colour_mask(caption, overlay.label_colour("disgust"))
    white = np.all(caption > 200, axis=-1)
    assert filled.mean() > 0.5 and white.any()  # its background and its text, whole


def test_no_face_is_written_on_the_picture(grey_frame):
    out = overlay.annotate(grey_frame, _result())
    w, h = overlay.text_panel_size(overlay.NO_FACE, overlay.text_scale(480))
    corner = out[:h, :w]
    assert (corner == 0).mean() > 0.5 and (corner == 255).any()  # black panel, white text
    assert np.array_equal(out[h:], grey_frame[h:]) and np.array_equal(out[:, w:], grey_frame[:, w:])
    failed = overlay.annotate(grey_frame, _result(error="camera 0 lost"))
    assert _colour_mask(failed[:h], overlay.ERROR_COLOUR).mean() > 0.1
    seen = overlay.annotate(grey_frame, _result(_face((200, 150, 120, 120))))
    assert np.array_equal(seen[:h, :w], grey_frame[:h, :w])  # a face: no "no face"


def test_stats_strip_goes_to_a_corner_away_from_the_faces(grey_frame):
    plain = overlay.annotate(grey_frame, _result(_face((20, 20, 100, 100))))
    stats = overlay.annotate(grey_frame, _result(_face((20, 20, 100, 100))), 12.0, stats=True)
    changed = np.flatnonzero(np.any(stats != plain, axis=-1).any(axis=1))
    text = overlay.stats_text(12.0, _result().timings_ms)
    w, h = overlay.text_panel_size(text, overlay.text_scale(480) * 0.8)
    assert changed.min() == 480 - h  # the bottom right, far from the face at the top left
    assert (stats[480 - h :, 640 - w :] == 0).mean() > 0.5


def test_bgr_frames_come_back_bgr(grey_frame):
    frame = grey_frame.copy()
    frame[:, :320] = (200, 60, 20)
    result = _result(_face((200, 150, 120, 120), "sad"))
    rgb = overlay.annotate(frame, result)
    bgr = overlay.annotate(np.ascontiguousarray(frame[..., ::-1]), result, bgr=True)
    assert np.array_equal(bgr, rgb[..., ::-1])
    # The box edge in the BGR picture is sad's blue in BGR order, as cv2.imwrite expects.
    assert np.array_equal(bgr[150, 260], overlay.label_colour("sad")[::-1])


def test_annotate_without_result_is_a_copy(grey_frame):
    out = overlay.annotate(grey_frame, None)
    assert np.array_equal(out, grey_frame) and out is not grey_frame


def test_faces_outside_the_frame_are_skipped(grey_frame):
    out = overlay.annotate(grey_frame, _result(_face((900, 900, 50, 50))))
    assert np.array_equal(out, grey_frame)


def test_annotate_rejects_non_rgb_frames():
    with pytest.raises(ValueError, match="uint8 RGB or BGR"):
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


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((-14, -19, 98, 98), (0, 0, 84, 79)),
        ((10, 20, 30, 40), (10, 20, 30, 40)),
        ((90, 5, 50, 5), (90, 5, 10, 5)),
    ],
)
def test_box_inside_clips_to_the_picture(box, expected):
    from affectlite.edge_app.preprocess import box_inside

    assert box_inside(box, 100, 100) == pytest.approx(expected)


# --- the Python API (the shipped default bundle, real photos) --------------------------------
@pytest.fixture(scope="module")
def recognizer():
    from affectlite import EmotionRecognizer

    return EmotionRecognizer()


def test_api_boxes_are_clipped_to_the_photo(recognizer, sample_photos):
    photo = np.ascontiguousarray(sample_photos["astronaut"][95:345, 190:440])  # face cut at top
    (detected,) = recognizer.pipeline.detector.detect(photo)
    assert min(detected.box[:2]) < 0  # the detector's own box sticks out of the photo
    (face,) = recognizer.predict(photo)
    x, y, w, h = face.box
    assert (x, y) == (0, 0) and 0 < x + w <= 250 and 0 < y + h <= 250
    assert x + w == pytest.approx(detected.box[0] + detected.box[2], abs=1e-3)
    picture = recognizer.annotate(photo, [face])
    assert picture.shape == photo.shape


def test_api_annotate_gives_rgb_or_bgr(recognizer, sample_photos, tmp_path):
    photo = sample_photos["astronaut"]
    faces = recognizer.predict(photo)
    rgb = recognizer.annotate(photo, faces)
    bgr = recognizer.annotate(photo, faces, bgr=True)
    assert np.array_equal(bgr, rgb[..., ::-1])
    cv2.imwrite(str(tmp_path / "a.png"), bgr)  # what OpenCV users do: the colours survive
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(tmp_path / "a.png")), cv2.COLOR_BGR2RGB), rgb)
    # The photo's own colours: the orange suit is still orange (red channel first in RGB).
    suit = rgb[400:450, 100:150].reshape(-1, 3).mean(axis=0)
    assert suit[0] > suit[2] + 50


def test_caption_text_stands_out_from_every_label_colour(grey_frame):
    def luminance(colour) -> float:
        return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]

    for label, colour in overlay.PALETTE.items():
        assert abs(luminance(overlay.ink(colour)) - luminance(colour)) > 100, label
    out = grey_frame.copy()
    x0, y0, x1, y1 = overlay.draw_face(out, _face((200, 150, 120, 120), "happy"))[-1]
    caption = out[y0:y1, x0:x1]
    assert np.all(caption < 60, axis=-1).any()  # dark text on happy's yellow


def test_api_draws_no_face_on_a_photo_without_one(recognizer, sample_photos):
    photo = sample_photos["coffee"]
    assert recognizer.predict(photo) == []
    picture = recognizer.annotate(photo, [])
    w, h = overlay.text_panel_size(overlay.NO_FACE, overlay.text_scale(photo.shape[0]))
    corner = picture[:h, :w]
    assert (corner == 0).mean() > 0.5 and (corner == 255).any()  # black panel, white text
    assert np.array_equal(picture[h:], photo[h:])  # the rest of the photo is untouched
