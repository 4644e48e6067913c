"""The kit's Augment alone against Keras' affine_transform alone (and the erase noise draw on
JAX), batch 256 at 48 px: ``KERAS_BACKEND=jax|tensorflow python augment_parts.py``."""

import time

import keras
import numpy as np
from keras import ops

from affectlite.train.augment import Augment

MATRIX = np.tile(np.array([1, 0.1, 1, -0.1, 1, 1, 0, 0], np.float32), (256, 1))


def median_ms(function, repeats: int = 5) -> float:
    function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return 1000 * float(np.median(samples))


def warp(x):
    return ops.image.affine_transform(x, MATRIX, fill_mode="constant")


def jax_report(layer, x) -> str:
    import jax

    seed = [v.value for v in layer.non_trainable_variables]
    full = jax.jit(lambda s, x: layer.stateless_call([], s, x, training=True)[0])
    affine, grey = jax.jit(warp), jax.jit(lambda x: warp(x[..., :1]))
    noise = jax.jit(lambda key: jax.random.normal(key, (256, 48, 48, 3)))
    key = jax.random.key(0)
    return (
        f"Augment {median_ms(lambda: full(seed, x).block_until_ready()):.1f} ms, "
        f"affine_transform {median_ms(lambda: affine(x).block_until_ready()):.1f} ms, "
        f"affine_transform one channel {median_ms(lambda: grey(x).block_until_ready()):.1f} ms, "
        f"random.normal of the batch {median_ms(lambda: noise(key).block_until_ready()):.1f} ms"
    )


def jax_pieces(layer, x) -> str:
    """Augment's own pieces, each compiled alone with the layer's seed state."""
    import jax

    seed = [v.value for v in layer.non_trainable_variables]

    def timed(function) -> float:
        def stateless(state, x):
            mapping = list(zip(layer.non_trainable_variables, state))
            with keras.StatelessScope(state_mapping=mapping):
                return function(x)

        compiled = jax.jit(stateless)
        return median_ms(lambda: compiled(seed, x).block_until_ready())

    def geometry(x):
        return ops.image.affine_transform(x, layer._geometry(ops.shape(x)), fill_mode="constant")

    return (
        f"pieces alone: geometry + affine_transform {timed(geometry):.1f} ms, photometric "
        f"{timed(layer._photometric):.1f} ms, erase {timed(layer._erase):.1f} ms; geometry then "
        f"photometric {timed(lambda x: layer._photometric(geometry(x))):.1f} ms"
    )


def tf_report(layer, x) -> str:
    import tensorflow as tf

    full = tf.function(lambda x: layer(x, training=True))
    affine = tf.function(warp)
    return (
        f"Augment {median_ms(lambda: full(x).numpy()):.1f} ms, "
        f"affine_transform {median_ms(lambda: affine(x).numpy()):.1f} ms"
    )


def main() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (256, 48, 48, 3)).astype("float32")
    x = ops.convert_to_tensor(pixels)
    layer = Augment(0)
    layer.build(x.shape)
    jax = keras.backend.backend() == "jax"
    print(keras.backend.backend(), jax_report(layer, x) if jax else tf_report(layer, x))
    if jax:
        print("jax", jax_pieces(layer, x))


if __name__ == "__main__":
    main()
