"""Calibration: the int8 representative set and the softmax temperature.

Imported only as ``affectlite.calibration`` (see :mod:`affectlite.layout`)."""

from affectlite.layout import require_name

require_name(__name__, "calibration")
