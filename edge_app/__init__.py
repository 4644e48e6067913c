"""The device side: bundle, detector, classifier, tracker, sources, runner and app (no TensorFlow).

Imported only as ``affectlite.edge_app`` (see :mod:`affectlite.layout`)."""

from affectlite.layout import require_name

require_name(__name__, "edge_app")
