"""The classifier: a keras.applications backbone, a pooled dropout head and 8 logits.

Models take raw RGB pixels in 0..255; each backbone's own normalisation is a layer inside the
graph, so the exported int8 model's input is the camera's pixels (see edge_app.preprocess).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from affectlite.edge_app.labels import NUM_CLASSES
from affectlite.errors import EnvironmentProblem, InputError
from affectlite.train.compact import build_compact, with_head  # also registers GreyPreprocess

# Imported here, not lazily: it registers GreyPreprocess, so a saved compact model loads in any
# process that imports this module (convert, evaluate, calibrate --fit-temperature).

IMAGENET_HINT = (
    "ImageNet weights for {name} could not be loaded ({error}). This machine may be offline: "
    "download '{file}' from https://storage.googleapis.com/tensorflow/keras-applications/ "
    "into ~/.keras/models/ (or pass --weights PATH to that file), or train from scratch with "
    "--weights none."
)


@keras.saving.register_keras_serializable(package="affectlite")
class CaffePreprocess(keras.layers.Layer):
    """ResNet50's ImageNet normalisation: RGB→BGR and per-channel mean subtraction.

    Written as a fixed 1×1 convolution (a channel permutation plus a bias) because TFLite's
    int8 REVERSE_V2 kernel, which a channel flip converts to, loses ~50 quantisation steps here
    and wrecks the int8 model; an int8 CONV_2D is exact for a permutation.
    """

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, inputs):
        kernel = np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3)
        bgr = keras.ops.conv(inputs, keras.ops.convert_to_tensor(kernel, inputs.dtype))
        mean = keras.ops.convert_to_tensor(np.array(self.MEAN_BGR, "float32"), inputs.dtype)
        return bgr - mean


@dataclass(frozen=True)
class BackboneSpec:
    """A keras.applications backbone and how it expects its pixels."""

    name: str
    application: str
    in_model_preprocessing: bool
    weights_file: str


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "resnet50", "ResNet50", False, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
        ),
        BackboneSpec(
            "mobilenetv3large",
            "MobileNetV3Large",
            True,
            "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
        ),
        BackboneSpec("efficientnetv2b0", "EfficientNetV2B0", True, "efficientnetv2-b0_notop.h5"),
    )
}


def _backbone(spec: BackboneSpec, input_size: int, weights: str | None) -> keras.Model:
    application = getattr(keras.applications, spec.application)
    kwargs = {"include_top": False, "input_shape": (input_size, input_size, 3), "weights": weights}
    if spec.in_model_preprocessing:
        kwargs["include_preprocessing"] = True
    if spec.name == "mobilenetv3large":
        kwargs["minimalistic"] = False
    try:
        return application(**kwargs)
    except Exception as error:  # keras raises URL/OS/Value errors when the download fails.
        if weights != "imagenet":
            raise
        raise EnvironmentProblem(
            IMAGENET_HINT.format(name=spec.application, error=error, file=spec.weights_file)
        ) from error


def resolve_weights(weights: str | None) -> str | None:
    """Maps the CLI's ``imagenet|none|PATH`` to keras.applications' ``weights`` argument."""
    if weights is None or weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        return "imagenet"
    if not Path(weights).is_file():
        raise InputError(f"--weights {weights}: no such weights file.")
    return str(weights)


def build_model(
    backbone: str = "resnet50",
    input_size: int = 112,
    weights: str | None = None,
    dropout: float = 0.3,
    num_classes: int = NUM_CLASSES,
) -> keras.Model:
    """Builds the emotion classifier.

    Args:
        backbone: ``"compact"`` (the kit's small-face CNN, :mod:`affectlite.train.compact`)
            or a key of :data:`BACKBONES`.
        input_size: square input side in pixels (224 as in the paper; 112 costs a quarter of it).
        weights: ``"imagenet"``, ``None`` / ``"none"`` (from scratch) or a backbone weights path.
        dropout: dropout rate before the classification layer.
        num_classes: number of logits.

    Returns:
        A model mapping ``(N, input_size, input_size, 3)`` RGB 0..255 to ``(N, num_classes)``
        float32 logits. Its ``backbone`` attribute is the keras.applications sub-model.
    """
    if backbone == "compact":
        if resolve_weights(weights) is not None:
            raise InputError("The compact backbone trains from scratch: use --weights none.")
        return build_compact(input_size, dropout=dropout, num_classes=num_classes)
    if backbone not in BACKBONES:
        raise InputError(
            f"Unknown backbone {backbone!r}; choose from compact, {', '.join(BACKBONES)}."
        )
    if input_size < 32:
        raise InputError(f"input_size must be at least 32 pixels, got {input_size}.")
    spec = BACKBONES[backbone]
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs if spec.in_model_preprocessing else CaffePreprocess(name="preprocess")(inputs)
    base = _backbone(spec, input_size, resolve_weights(weights))
    return with_head(inputs, base(x), base, dropout, num_classes, f"{backbone}_{input_size}")
