"""Training: datasets, the Keras model and its recipe, evaluation.

Imported only as ``affectlite.train`` (see :mod:`affectlite.layout`)."""

from affectlite.layout import require_name

require_name(__name__, "train")
