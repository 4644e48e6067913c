"""The device side: bundle, detector, classifier, tracker, sources, runner and app (no TensorFlow).

This folder is the package ``affectlite.edge_app`` and has no other import name
(docs/architecture.md says why).
"""

if __name__ != "affectlite.edge_app":
    raise ImportError(
        f"Import affectlite.edge_app, not {__name__!r}: this folder is that package's source "
        "(install the kit with `pip install -e .`)."
    )
