"""The kit's accuracy is argmax accuracy: chance is 1/8, never Keras' binary 7/8."""

import numpy as np
import pytest

from affectlite.edge_app.labels import LABELS, LABELS_7
from affectlite.train.metrics import classification_report


def test_uniform_outputs_on_balanced_classes_score_chance_not_seven_eighths():
    labels = np.repeat(np.arange(8), 50)
    uniform = np.full((len(labels), 8), 1 / 8, dtype=np.float32)
    report = classification_report(labels, uniform)
    assert report["accuracy"] == pytest.approx(1 / 8)
    assert report["balanced_accuracy"] == pytest.approx(1 / 8)
    assert report["accuracy"] != pytest.approx(7 / 8)


def test_binary_accuracy_artefact_is_seven_eighths_for_the_same_model():
    # What keras.metrics.BinaryAccuracy reports for that model: every one-hot zero counts as right.
    labels = np.repeat(np.arange(8), 50)
    one_hot = np.eye(8)[labels]
    binary = np.mean((np.full_like(one_hot, 1 / 8) > 0.5) == one_hot)
    assert binary == pytest.approx(7 / 8)


def test_known_confusion_gives_known_figures():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    report = classification_report(y_true, np.eye(8)[y_pred])
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert report["per_class"]["neutral"]["precision"] == pytest.approx(2 / 3)
    assert report["per_class"]["happy"]["f1"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    assert report["confusion"][0] == [2, 1, 0, 0, 0, 0, 0, 0]
    assert report["classes_evaluated"] == ["neutral", "happy", "sad"]


def test_dataset_without_contempt_is_scored_over_its_own_classes():
    labels = np.repeat(np.arange(7), 10)
    scores = np.eye(8)[labels]
    report = classification_report(labels, scores)
    assert report["balanced_accuracy"] == pytest.approx(1.0)
    assert report["classes_evaluated"] == list(LABELS_7)
    assert report["per_class"]["contempt"]["support"] == 0


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="classes"):
        classification_report(np.zeros(3, int), np.zeros((3, 7)), LABELS)


@pytest.mark.parametrize("teacher", ["", "distilled"])
def test_the_training_step_scores_multi_class_not_binary(teacher):
    """The compiled step's accuracy and loss, as the trainer sets them up (plain and distilled),
    for a model that predicts nothing (uniform logits) on balanced classes: argmax accuracy 1/8
    and cross-entropy ln 8, never Keras' binary 7/8 and ln 2."""
    import keras

    from affectlite.train.config import TrainConfig
    from affectlite.train.trainer import _compile

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, kernel_initializer="zeros")])
    config = TrainConfig(backbone="compact", weights="none", augment=False, teacher=teacher)
    _compile(model, config, peak=1e-3, steps=1, epochs=1)
    labels = np.eye(8)[np.repeat(np.arange(8), 8)]
    targets = np.concatenate([labels, np.full_like(labels, 1 / 8)], axis=1) if teacher else labels
    scores = model.evaluate(np.ones((64, 4)), targets, batch_size=64, verbose=0, return_dict=True)
    assert scores["accuracy"] == pytest.approx(1 / 8)
    if not teacher:
        assert scores["loss"] == pytest.approx(np.log(8), rel=1e-4)
