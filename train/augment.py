"""Augmentation inside the compiled train step, the same on JAX and TensorFlow.

Keras' geometric augmentation layers (RandomRotation, RandomZoom, RandomTranslation, …) declare
``supports_jit = False``, which silently turns compilation off for the whole model on JAX. This
layer draws the kit's recipe with ``keras.random`` and a ``SeedGenerator`` and applies it with
``keras.ops`` only: flip, rotation, zoom and shift as one ``ops.image.affine_transform`` per batch
(one matrix per face), then brightness, contrast and random erasing, on 0..255 pixels.

:class:`TrainingModel` puts it (and a resize, when the faces are stored smaller than the
classifier's input) in front of the classifier for ``fit`` only; the classifier that is saved,
converted and shipped never contains it.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
from keras import ops

ROTATION = 0.04 * 2 * math.pi
"""Largest rotation in radians (±14.4°, Keras' RandomRotation(0.04))."""
ZOOM = 0.1
SHIFT = 0.06
BRIGHTNESS = 0.15 * 255
CONTRAST = 0.2
ERASE_PROBABILITY = 0.125
"""Keras' RandomErasing(factor=0.25) erases when a uniform draw falls under U(0, 0.25): 1 in 8."""
ERASE_AREA = (0.02, 0.12)


@keras.saving.register_keras_serializable(package="affectlite")
class Augment(keras.layers.Layer):
    """The kit's training augmentation on RGB 0..255 batches; an identity outside training."""

    def __init__(self, seed: int = 0, **kwargs) -> None:
        kwargs.setdefault("dtype", "float32")  # 0..255 pixels need float32, not bfloat16
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        images = ops.cast(images, "float32")
        images = ops.image.affine_transform(
            images, self._geometry(ops.shape(images)), fill_mode="constant"
        )
        return self._erase(self._photometric(images))

    def _uniform(self, shape, low, high):
        return keras.random.uniform(shape, low, high, seed=self.seed_generator)

    def _geometry(self, shape):
        """Per-face output→input maps ``q = c + M (p - c) + t``: flip, rotation, zoom, shift."""
        batch, height, width = shape[0], shape[1], shape[2]
        flip = ops.where(self._uniform((batch,), 0, 1) < 0.5, -1.0, 1.0)
        angle = self._uniform((batch,), -ROTATION, ROTATION)
        scale = 1.0 + self._uniform((batch,), -ZOOM, ZOOM)  # > 1 zooms out
        h, w = ops.cast(height, "float32"), ops.cast(width, "float32")
        tx = self._uniform((batch,), -SHIFT, SHIFT) * w
        ty = self._uniform((batch,), -SHIFT, SHIFT) * h
        cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
        a0, a1, b0, b1 = cos * flip, -sin, sin * flip, cos
        cx, cy = (w - 1) / 2, (h - 1) / 2
        a2 = cx + tx - a0 * cx - a1 * cy
        b2 = cy + ty - b0 * cx - b1 * cy
        zeros = ops.zeros_like(a0)
        return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)

    def _photometric(self, images):
        batch = ops.shape(images)[0]
        delta = self._uniform((batch, 1, 1, 1), -BRIGHTNESS, BRIGHTNESS)
        images = ops.clip(images + delta, 0.0, 255.0)
        factor = self._uniform((batch, 1, 1, 1), 1 - CONTRAST, 1 + CONTRAST)
        mean = ops.mean(images, axis=(1, 2), keepdims=True)
        return ops.clip((images - mean) * factor + mean, 0.0, 255.0)

    def _erase(self, images):
        """One rectangle of 2–12 % of each side's square, filled with clipped noise, in 1 of 8."""
        batch, height, width = ops.shape(images)[0], ops.shape(images)[1], ops.shape(images)[2]
        sides = ops.sqrt(self._uniform((batch, 2), *ERASE_AREA))
        size = ops.stack([ops.cast(width, "float32"), ops.cast(height, "float32")])
        extent = sides * size
        start = self._uniform((batch, 2), 0, 1) * (size - extent)
        cols = ops.cast(ops.arange(width), "float32")[None, :]
        rows = ops.cast(ops.arange(height), "float32")[None, :]
        inside_x = (cols >= start[:, :1]) & (cols < start[:, :1] + extent[:, :1])
        inside_y = (rows >= start[:, 1:]) & (rows < start[:, 1:] + extent[:, 1:])
        erase = self._uniform((batch,), 0, 1) < ERASE_PROBABILITY
        mask = inside_y[:, :, None] & inside_x[:, None, :] & erase[:, None, None]
        noise = keras.random.normal(ops.shape(images), seed=self.seed_generator) * 255.0
        return ops.where(mask[..., None], ops.clip(noise, 0.0, 255.0), images)

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


def resize(images, side: int):
    """Bilinear resize to ``side × side`` with half-pixel centres, as ``crop_face`` upsamples
    a small face crop with ``cv2.INTER_LINEAR``."""
    return ops.image.resize(images, (side, side), interpolation="bilinear", antialias=False)


class TrainingModel(keras.Model):
    """The classifier with what only training needs in front of it: uint8 → float32, a resize
    when the stored faces are smaller than its input, and :class:`Augment` in training.

    ``fit`` this model; save ``classifier`` (the exported model never sees augmentation).
    """

    def __init__(self, classifier: keras.Model, augment: bool = True, seed: int = 0, **kwargs):
        super().__init__(name=f"train_{classifier.name}", **kwargs)
        self.classifier = classifier
        self.side = int(classifier.input_shape[1])
        self.augment = Augment(seed, name="augment") if augment else None

    def call(self, images, training=False):
        x = ops.cast(images, "float32")
        if x.shape[1] != self.side or x.shape[2] != self.side:
            x = resize(x, self.side)
        if self.augment is not None:
            x = self.augment(x, training=training)
        return self.classifier(x, training=training)


def grid_png(images: np.ndarray, path: str | Path, seed: int = 0, columns: int = 8) -> Path:
    """Saves ``images`` (uint8 RGB) beside an augmented copy of each, as the step sees them."""
    from affectlite.files import write_figure
    from affectlite.train import plots

    layer = Augment(seed)
    augmented = keras.ops.convert_to_numpy(layer(images.astype("float32"), training=True))
    rows = 2 * math.ceil(len(images) / columns)
    figure = plots.plt.figure(figsize=(columns * 1.2, rows * 1.3))
    for i, (original, changed) in enumerate(zip(images, augmented)):
        row, column = 2 * (i // columns), i % columns
        for offset, picture in ((0, original), (1, changed)):
            axis = figure.add_subplot(rows, columns, (row + offset) * columns + column + 1)
            axis.imshow(np.clip(picture, 0, 255).astype(np.uint8))
            axis.set_axis_off()
    figure.suptitle("training augmentation: each face (odd rows) and one random draw (below)")
    return write_figure(path, figure, dpi=100, bbox_inches="tight")
