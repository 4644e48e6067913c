"""The training checkpoint keeps the epoch with the best validation macro-F1, across resumes."""

from __future__ import annotations

import json

import numpy as np

from affectlite.train.pipeline import Split, one_hot

# 50 faces of class 0, two of each of the seven rare classes.
LABELS = np.array([0] * 50 + [k for k in range(1, 8) for _ in range(2)])
# Mid-schedule spray: every rare face right, but half of class 0 called class 7.
# Balanced accuracy 0.9375, macro-F1 0.851.
SPRAY = np.where(np.arange(len(LABELS)) < 25, 7, LABELS)
# Settled: only class 7 missed (called class 0). Balanced accuracy 0.875, macro-F1 0.873.
SETTLED = np.where(LABELS == 7, 0, LABELS)
FACES = np.eye(len(LABELS), dtype=np.float32)  # face i is the one-hot input i


def _model_predicting(model, predictions: np.ndarray) -> None:
    """One-hot inputs through a bias-free Dense layer: row i of the kernel is face i's logits."""
    model.get_layer("logits").set_weights([10 * one_hot(predictions)])


def _callback(run_dir, model):
    from affectlite.train.trainer import MacroF1Checkpoint

    val = Split(FACES, one_hot(LABELS), [str(i) for i in range(len(LABELS))])
    callback = MacroF1Checkpoint(val, batch_size=16, run_dir=run_dir)
    callback.set_model(model)
    callback.on_train_begin()
    return callback


def _model():
    import keras

    inputs = keras.Input((len(LABELS),))
    dense = keras.layers.Dense(8, use_bias=False, name="logits")
    model = keras.Model(inputs, dense(inputs))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def test_the_kept_epoch_is_the_one_with_the_best_macro_f1_not_balanced_accuracy(tmp_path):
    import keras

    model = _model()
    callback = _callback(tmp_path, model)
    spray, settled = {}, {}
    for epoch, (predictions, logs) in enumerate(((SPRAY, spray), (SETTLED, settled))):
        _model_predicting(model, predictions)
        callback.on_epoch_end(epoch, logs)
    assert spray["val_balanced_accuracy"] > settled["val_balanced_accuracy"]
    assert settled["val_macro_f1"] > spray["val_macro_f1"]
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 2
    kept = keras.models.load_model(tmp_path / "best.keras")
    np.testing.assert_array_equal(kept.predict(FACES, verbose=0).argmax(1), SETTLED)

    resumed = _callback(tmp_path, model)  # a resumed run remembers the best score so far
    _model_predicting(model, SPRAY)
    resumed.on_epoch_end(2, {})
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 2
