"""Conversion: quantize to TFLite, verify against the float model, gate, write a bundle.

Imported only as ``affectlite.convert`` (see :mod:`affectlite.layout`)."""

from affectlite.layout import require_name

require_name(__name__, "convert")
