"""Logit adjustment: chosen on held-out data, bounded in accuracy, folded into the model."""

from __future__ import annotations

import numpy as np
import pytest

from affectlite.calibration.prior import (
    MAX_LOSS,
    fit_logit_adjustment,
    fold_into_model,
    rarest_first,
)
from affectlite.train.metrics import classification_report


def _skewed_problem(seed: int = 0):
    """Three classes with priors 0.8/0.15/0.05 and overlapping evidence; the logits carry the
    prior, as a model trained on skewed data learns it."""
    rng = np.random.default_rng(seed)
    prior = np.array([0.8, 0.15, 0.05])
    labels = rng.choice(3, size=6000, p=prior)
    evidence = np.eye(3)[labels] * 1.5 + rng.normal(0, 1, (6000, 3))
    return evidence + np.log(prior), labels, prior


def test_adjustment_raises_balanced_accuracy_within_the_accuracy_budget():
    logits, labels, prior = _skewed_problem()
    fit = fit_logit_adjustment(logits, labels, prior * 1000)
    assert 0 < fit.tau <= 1
    assert fit.after["balanced_accuracy"] > fit.before["balanced_accuracy"] + 0.05
    assert fit.after["accuracy"] >= fit.before["accuracy"] - MAX_LOSS
    assert fit.after["macro_f1"] >= fit.before["macro_f1"] - MAX_LOSS
    adjusted = classification_report(labels, logits + np.array(fit.bias), ["a", "b", "c"])
    assert adjusted["balanced_accuracy"] == pytest.approx(fit.after["balanced_accuracy"], abs=1e-4)


def test_balanced_data_needs_no_adjustment():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 3000)
    logits = np.eye(3)[labels] + rng.normal(0, 1, (3000, 3))
    assert fit_logit_adjustment(logits, labels, np.ones(3)).bias == (0.0, 0.0, 0.0)


def test_a_class_without_training_examples_is_refused():
    logits, labels, _ = _skewed_problem()
    with pytest.raises(ValueError, match="training examples"):
        fit_logit_adjustment(logits, labels, np.array([10, 5, 0]))


def test_folding_shifts_the_keras_model_logits_by_the_bias():
    import keras

    logits, labels, prior = _skewed_problem()
    fit = fit_logit_adjustment(logits, labels, prior)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(inputs))
    x = np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32)
    before = model.predict(x, verbose=0)
    fold_into_model(model, fit)
    np.testing.assert_allclose(model.predict(x, verbose=0) - before, [fit.bias] * 5, atol=1e-5)


def test_tie_break_order_is_rarest_training_class_first():
    labels = ("neutral", "happy", "fear", "contempt")
    counts = {"neutral": 900, "happy": 600, "fear": 40, "contempt": 40}
    assert rarest_first(counts, labels) == ("fear", "contempt", "happy", "neutral")
    with pytest.raises(ValueError, match="No training count for contempt"):
        rarest_first({"neutral": 1, "happy": 1, "fear": 1}, labels)
