"""Shared by test modules (pytest puts ``tests/`` on ``sys.path``)."""

NO_TENSORFLOW = (
    "import sys\n"
    "sys.modules['tensorflow'] = None  # any import of TensorFlow now fails\n"
    "sys.modules['keras'] = None\n"
    "from affectlite.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
"""``python -c NO_TENSORFLOW ARGS`` is ``affectlite ARGS`` where TensorFlow and Keras cannot be
imported, as on a device."""


def tiny_classifier(seed: int = 0):
    """The ``tiny_bundle`` fixture's classifier, random and untrained: 32×32 RGB in, 8 logits
    out."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, strides=4),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(8),
        ]
    )
