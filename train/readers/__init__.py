"""One reader per dataset layout; :mod:`affectlite.train.datasets` is the public entry point."""
