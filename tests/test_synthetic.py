"""Tests for the synthetic expressive-face generator."""

from __future__ import annotations

import numpy as np
import pytest

from affectlite.edge_app.labels import NUM_CLASSES, label_index
from affectlite.edge_app.preprocess import CropPolicy, crop_face
from affectlite.train.synthetic import (
    SYNTHETIC_NOTE,
    draw_face,
    make_dataset,
    make_scene,
    render_face,
    sample_expression,
    sample_identity,
)


def test_dataset_shapes_dtypes_and_determinism():
    images, labels = make_dataset(24, size=48, seed=3)
    assert images.shape == (24, 48, 48, 3) and images.dtype == np.uint8
    assert labels.shape == (24,) and labels.dtype == np.int64
    again_images, again_labels = make_dataset(24, size=48, seed=3)
    np.testing.assert_array_equal(images, again_images)
    np.testing.assert_array_equal(labels, again_labels)
    other, _ = make_dataset(24, size=48, seed=4)
    assert not np.array_equal(images, other)


@pytest.mark.parametrize("size", [32, 224])
def test_any_output_size(size):
    images, _ = make_dataset(2, size=size, seed=0)
    assert images.shape == (2, size, size, 3)


def test_balanced_covers_every_class_equally():
    _, labels = make_dataset(3 * NUM_CLASSES, size=32, seed=1)
    np.testing.assert_array_equal(np.bincount(labels, minlength=NUM_CLASSES), 3)
    _, unbalanced = make_dataset(40, size=32, seed=1, balanced=False)
    assert unbalanced.min() >= 0 and unbalanced.max() < NUM_CLASSES


def test_faces_differ_across_identities():
    images, _ = make_dataset(16, size=48, seed=2)
    flat = images.reshape(len(images), -1).astype(np.float32)
    distances = np.abs(flat[:, None] - flat[None]).mean(axis=2)
    off_diagonal = distances[~np.eye(len(images), dtype=bool)]
    assert off_diagonal.min() > 5.0  # mean absolute difference in grey levels


def _region_features(images: np.ndarray, rows: tuple[float, float]) -> np.ndarray:
    grey = images.astype(np.float32).mean(axis=3)
    side = grey.shape[1]
    region = grey[:, int(rows[0] * side) : int(rows[1] * side), int(0.15 * side) : int(0.85 * side)]
    flat = region.reshape(len(region), -1)
    return (flat - flat.mean(axis=1, keepdims=True)) / (flat.std(axis=1, keepdims=True) + 1e-6)


@pytest.fixture(scope="module")
def small_faces():
    return make_dataset(480, size=32, seed=10), make_dataset(160, size=32, seed=11)


@pytest.mark.parametrize(
    ("rows", "floor"),
    [((0.45, 0.9), 0.55), ((0.15, 0.5), 0.35)],
    ids=["mouth", "brows-and-eyes"],
)
def test_label_lives_in_the_face_geometry(small_faces, rows, floor):
    """A nearest-class-mean classifier on one face region reads the class on held-out faces.

    Chance is 1/8; both the lower face and the brows/eyes alone must carry the expression,
    even at 32 px.
    """
    (train_x, train_y), (test_x, test_y) = small_faces
    features = _region_features(train_x, rows)
    means = np.stack([features[train_y == k].mean(axis=0) for k in range(NUM_CLASSES)])
    distances = np.linalg.norm(_region_features(test_x, rows)[:, None] - means[None], axis=2)
    accuracy = float((distances.argmin(axis=1) == test_y).mean())
    assert accuracy > floor, f"nearest-mean accuracy {accuracy:.2f} ({SYNTHETIC_NOTE})"


def test_neutral_is_flat_and_contempt_one_sided_both_ways():
    rng = np.random.default_rng(0)
    neutral = [sample_expression(label_index("neutral"), rng) for _ in range(40)]
    assert all(abs(e.corner_left) < 0.05 and abs(e.corner_right) < 0.05 for e in neutral)
    assert all(e.mouth_open < 0.05 and e.upper_lip == 0 for e in neutral)
    contempt = [sample_expression(label_index("contempt"), rng) for _ in range(40)]
    skew = np.array([e.corner_right - e.corner_left for e in contempt])
    assert np.abs(skew).min() > 0.2
    assert (skew > 0).any() and (skew < 0).any()


def test_face_layer_is_opaque_on_the_face_and_clear_around_it():
    rng = np.random.default_rng(1)
    layer = draw_face(sample_identity(rng), sample_expression(0, rng), 160)
    assert layer.shape == (160, 160, 4) and layer.dtype == np.uint8
    assert layer[72, 80, 3] == 255  # head centre
    assert layer[2, 2, 3] == 0 and layer[2, -3, 3] == 0  # top corners
    assert (layer[..., :3] <= layer[..., 3:]).all()  # premultiplied colour never exceeds alpha


def test_render_face_box_inside_canvas_and_cropable():
    rng = np.random.default_rng(5)
    for label in range(NUM_CLASSES):
        image, (x, y, w, h) = render_face(label, rng, size=96, canvas=160)
        assert image.shape == (160, 160, 3) and image.dtype == np.uint8
        assert 0 <= x and 0 <= y and x + w <= 160 and y + h <= 160
        assert 30 < h < 80 and 20 < w < 80
        crop = crop_face(image, (x, y, w, h), 64, CropPolicy())
        assert crop.shape == (64, 64, 3)
    image, _ = render_face(0, rng, size=80)
    assert image.shape == (80, 80, 3)


def test_render_face_rejects_bad_label():
    with pytest.raises(ValueError, match="label"):
        render_face(NUM_CLASSES, np.random.default_rng(0))


def test_render_face_is_deterministic_for_a_generator_state():
    first = render_face(2, np.random.default_rng(9), size=64)
    second = render_face(2, np.random.default_rng(9), size=64)
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]


def test_scene_boxes_lie_in_the_frame():
    rng = np.random.default_rng(7)
    for faces in (1, 3):
        frame, placed = make_scene(rng, width=320, height=240, faces=faces, size_range=(40, 90))
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        assert len(placed) == faces
        for (x, y, w, h), label in placed:
            assert 0 <= label < NUM_CLASSES
            assert 0 <= x and 0 <= y and x + w <= 320 and y + h <= 240 and w > 10 and h > 10
            assert 40 * 0.7 < h < 90 * 1.3


def test_scene_rejects_faces_that_cannot_fit():
    with pytest.raises(ValueError, match="size_range"):
        make_scene(np.random.default_rng(0), width=100, height=100, size_range=(80, 120))
    with pytest.raises(ValueError, match="cannot place"):
        make_scene(np.random.default_rng(0), width=200, height=160, faces=12, size_range=(100, 120))
