"""Training: datasets, the Keras model and its recipe, evaluation.

This folder is the package ``affectlite.train`` and has no other import name
(docs/architecture.md says why).
"""

if __name__ != "affectlite.train":
    raise ImportError(
        f"Import affectlite.train, not {__name__!r}: this folder is that package's source "
        "(install the kit with `pip install -e .`)."
    )
