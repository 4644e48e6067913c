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
