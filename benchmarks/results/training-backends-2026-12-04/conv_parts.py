"""Each convolution of the compact CNN's stage-b shapes alone, batch 256: forward, gradient
with respect to the input, gradient with respect to the filter; JAX (XLA:CPU) or TensorFlow.

``python conv_parts.py jax|tensorflow`` (run from this folder; output in conv-parts.txt).
"""

import sys
import time

import numpy as np

SHAPES = [(48, 16, 16), (24, 32, 32), (12, 96, 96), (6, 192, 192)]


def median_ms(function, repeats: int = 5) -> float:
    function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return 1000 * float(np.median(samples))


def jax_parts(x, w, dy):
    import jax
    import jax.numpy as jnp
    from jax import lax

    def conv(x, w):
        return lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    x, w, dy = map(jnp.asarray, (x, w, dy))
    forward = jax.jit(conv)
    grad_x = jax.jit(jax.vjp(lambda x: conv(x, w), x)[1])
    grad_w = jax.jit(jax.vjp(lambda w: conv(x, w), w)[1])
    return (
        lambda: forward(x, w).block_until_ready(),
        lambda: jax.block_until_ready(grad_x(dy)),
        lambda: jax.block_until_ready(grad_w(dy)),
    )


def tf_parts(x, w, dy):
    import tensorflow as tf

    x, w, dy = map(tf.constant, (x, w, dy))
    ops = tf.raw_ops
    forward = tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME"))
    grad_x = tf.function(
        lambda: ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=w, out_backprop=dy, strides=[1] * 4, padding="SAME"
        )
    )
    grad_w = tf.function(
        lambda: ops.Conv2DBackpropFilter(
            input=x, filter_sizes=tf.shape(w), out_backprop=dy, strides=[1] * 4, padding="SAME"
        )
    )
    return (lambda: forward().numpy(), lambda: grad_x().numpy(), lambda: grad_w().numpy())


def main(backend: str) -> None:
    rng = np.random.default_rng(0)
    for side, cin, cout in SHAPES:
        x = rng.random((256, side, side, cin), dtype=np.float32)
        w = rng.random((3, 3, cin, cout), dtype=np.float32)
        dy = rng.random((256, side, side, cout), dtype=np.float32)
        parts = jax_parts(x, w, dy) if backend == "jax" else tf_parts(x, w, dy)
        ms = [median_ms(part) for part in parts]
        print(
            f"{backend} {side}px {cin}->{cout}: forward {ms[0]:.1f} ms, grad input {ms[1]:.1f} "
            f"ms, grad filter {ms[2]:.1f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1])
