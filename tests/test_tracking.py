"""IoU tracking, probability smoothing, label hysteresis and the uncertain state."""

from __future__ import annotations

import numpy as np
import pytest

from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.tracking import FaceTracker, TrackerConfig, greedy_match, iou_matrix

HAPPY, NEUTRAL, SAD = (LABELS.index(n) for n in ("happy", "neutral", "sad"))


def probs(**weights: float) -> np.ndarray:
    """A probability vector over LABELS; the rest of the mass spread evenly."""
    vector = np.zeros(len(LABELS), np.float32)
    for name, value in weights.items():
        vector[LABELS.index(name)] = value
    rest = [i for i in range(len(LABELS)) if vector[i] == 0]
    vector[rest] = (1.0 - vector.sum()) / len(rest)
    return vector


def label_changes(labels: list) -> int:
    return sum(a != b for a, b in zip(labels[:-1], labels[1:], strict=True))


def test_iou_matrix_values():
    boxes = [(0, 0, 10, 10), (5, 0, 10, 10), (100, 100, 5, 5)]
    iou = iou_matrix(boxes, boxes)
    np.testing.assert_allclose(np.diag(iou), 1.0)
    assert iou[0, 1] == pytest.approx(50 / 150)
    assert iou[0, 2] == 0.0
    assert iou_matrix([], boxes).shape == (0, 3)


def test_greedy_match_takes_best_pairs_once():
    iou = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(greedy_match(iou, 0.3)) == [(0, 0)]  # row 1's only good column is taken
    assert sorted(greedy_match(iou, 0.05)) == [(0, 0), (1, 1)]


def test_flickering_labels_become_one_stable_label():
    """Raw predictions alternate happy/neutral every frame; the shown label must not."""
    tracker = FaceTracker(TrackerConfig(smoothing=0.6, threshold=0.3, hysteresis=0.1))
    raw = [
        probs(happy=0.55, neutral=0.3) if i % 2 == 0 else probs(neutral=0.45, happy=0.4)
        for i in range(30)
    ]
    shown, raw_labels = [], []
    for i, frame in enumerate(raw):
        (track,) = tracker.update([(100 + i, 100, 80, 80)], frame[None])
        shown.append(track.label_index)
        raw_labels.append(int(np.argmax(frame)))
    assert label_changes(raw_labels) == 29
    assert label_changes(shown) == 0 and shown[0] == HAPPY


def test_a_lasting_change_of_expression_does_switch_the_label():
    tracker = FaceTracker(TrackerConfig(smoothing=0.6, threshold=0.3, hysteresis=0.1))
    box = (50, 50, 100, 100)
    for _ in range(10):
        tracker.update([box], probs(happy=0.8)[None])
    shown = [tracker.update([box], probs(sad=0.8)[None])[0].label_index for _ in range(10)]
    assert shown[0] == HAPPY  # one frame is not enough to switch
    assert shown[-1] == SAD
    assert label_changes(shown) == 1


def test_no_smoothing_follows_the_classifier():
    tracker = FaceTracker(TrackerConfig(smoothing=0.0, hysteresis=0.0))
    box = (0, 0, 50, 50)
    tracker.update([box], probs(happy=0.9)[None])
    (track,) = tracker.update([box], probs(sad=0.9)[None])
    assert track.label_index == SAD
    np.testing.assert_allclose(track.probabilities, probs(sad=0.9))


def test_ids_survive_moving_boxes_and_stay_distinct():
    tracker = FaceTracker()
    ids = []
    for step in range(20):
        boxes = [(10 + 6 * step, 40, 90, 90), (400 - 5 * step, 60 + 2 * step, 70, 70)]
        tracks = tracker.update(boxes, np.stack([probs(happy=0.7), probs(sad=0.7)]))
        ids.append(tuple(t.track_id for t in tracks))
    assert len(set(ids)) == 1 and ids[0][0] != ids[0][1]
    (newcomer,) = tracker.update([(800, 800, 60, 60)], probs(neutral=0.7)[None])
    assert newcomer.track_id not in ids[0]


def test_a_briefly_missed_face_keeps_its_id_a_long_gone_one_does_not():
    tracker = FaceTracker(TrackerConfig(max_missed=3))
    box, p = (100, 100, 80, 80), probs(happy=0.7)[None]
    first = tracker.update([box], p)[0].track_id
    for _ in range(3):
        tracker.update([], np.zeros((0, len(LABELS))))
    assert tracker.update([box], p)[0].track_id == first
    for _ in range(4):
        tracker.update([], np.zeros((0, len(LABELS))))
    assert tracker.update([box], p)[0].track_id != first


def test_low_confidence_is_uncertain_with_hysteresis():
    config = TrackerConfig(smoothing=0.0, threshold=0.4, hysteresis=0.1)
    tracker = FaceTracker(config)
    box = (0, 0, 60, 60)
    (track,) = tracker.update([box], probs(happy=0.3)[None])
    assert track.uncertain
    # Hovering just above the threshold is not enough to leave the uncertain state …
    assert tracker.update([box], probs(happy=0.45)[None])[0].uncertain
    # … clearing threshold + hysteresis is, and dipping slightly below it does not flip back.
    assert not tracker.update([box], probs(happy=0.55)[None])[0].uncertain
    assert not tracker.update([box], probs(happy=0.42)[None])[0].uncertain
    assert tracker.update([box], probs(happy=0.2)[None])[0].uncertain


@pytest.mark.parametrize(
    "setting", [{"smoothing": 1.0}, {"threshold": 1.5}, {"iou_threshold": 0}, {"max_missed": -1}]
)
def test_invalid_settings_are_rejected_by_name(setting):
    (name,) = setting
    with pytest.raises(ValueError, match=name):
        TrackerConfig(**setting)
