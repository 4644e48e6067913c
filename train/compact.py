"""The compact face-expression CNN: the kit's default model for 48–64 px faces.

ResNet50 stays the workstation model (``--backbone resnet50``); it trains at about 11 images/s
on a 2-core CPU without AVX-512. This network is built for small grey faces such as FER+ and for
int8 on a Raspberry Pi: plain 3×3 convolutions, BatchNorm (folded at conversion), ReLU and max
pooling only — every op has an exact int8 TFLite kernel.

Colour: FER+ faces are grey and camera crops are colour, so the first layer turns RGB into
luminance (ITU-R BT.601 weights) as a fixed 1×1 convolution. A colour crop and its grey version
(R = G = B = Y) then reach the first trainable layer as the same image.
"""

from __future__ import annotations

import keras
import numpy as np

from affectlite.edge_app.labels import NUM_CLASSES

LUMA = (0.299, 0.587, 0.114)
WIDTHS = (16, 32, 96, 192)


@keras.saving.register_keras_serializable(package="affectlite")
class GreyPreprocess(keras.layers.Layer):
    """RGB 0..255 → one luminance channel scaled to about -1..1, as a fixed 1×1 convolution.

    A convolution (not a channel mean or a slice) keeps the op int8-exact in TFLite, and the
    weights sum to 1, so a grey image with R = G = B = Y maps to Y exactly.
    """

    def call(self, inputs):
        kernel = np.array(LUMA, dtype="float32").reshape(1, 1, 3, 1) / 127.5
        grey = keras.ops.conv(inputs, keras.ops.convert_to_tensor(kernel, inputs.dtype))
        return grey - 1.0


def _conv(x, filters: int, name: str):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_compact(
    input_size: int = 48,
    widths: tuple[int, ...] = WIDTHS,
    dropout: float = 0.3,
    num_classes: int = NUM_CLASSES,
) -> keras.Model:
    """Builds the compact classifier.

    Args:
        input_size: square input side in pixels (48 for FER+; 64 works too).
        widths: filters of each stage; each stage is two 3×3 convolutions and a 2×2 max pool.
        dropout: dropout rate before the classification layer.
        num_classes: number of logits.

    Returns:
        A model mapping ``(N, input_size, input_size, 3)`` RGB 0..255 to ``(N, num_classes)``
        float32 logits. Its ``backbone`` attribute is the convolutional trunk.
    """
    inputs = keras.Input((input_size, input_size, 3), name="image")
    trunk_in = keras.Input((input_size, input_size, 1), name="grey")
    x = trunk_in
    for stage, filters in enumerate(widths, start=1):
        x = _conv(x, filters, f"stage{stage}a")
        x = _conv(x, filters, f"stage{stage}b")
        x = keras.layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
    trunk = keras.Model(trunk_in, x, name="compact_trunk")
    features = trunk(GreyPreprocess(name="grey_preprocess")(inputs))
    return with_head(inputs, features, trunk, dropout, num_classes, f"compact_{input_size}")


def with_head(
    inputs, features, backbone: keras.Model, dropout: float, num_classes: int, name: str
) -> keras.Model:
    """The model ``affectlite_<name>``: the head every backbone shares (``pool``, ``dropout``,
    float32 ``logits``, found by name in calibration.prior) on ``features``."""
    x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    model = keras.Model(inputs, outputs, name=f"affectlite_{name}")
    model.backbone = backbone
    return model
