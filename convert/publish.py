"""Publish a bundle as the kit's shipped default, with its one final score attached.

``python -m affectlite.convert.publish BUNDLE SCORE_JSON [DEST]`` copies a verified bundle to
``DEST`` (default: the package's ``edge_app/models/default``) and records the report of
``affectlite evaluate --json SCORE_JSON`` — the reported split, scored once — under
``metrics.<name>`` in its bundle.json. The classifier and detector are copied byte for byte and
re-verified by their checksums.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from affectlite import files
from affectlite.edge_app.bundle import DEFAULT_BUNDLE, MANIFEST, load_bundle

SCORE_KEYS = ("n", "accuracy", "balanced_accuracy", "macro_f1", "per_class", "confusion")


def publish(bundle: Path, score: Path, dest: Path = DEFAULT_BUNDLE, name: str = "") -> Path:
    """Copies ``bundle`` to ``dest`` with the score report added to its metrics."""
    source = load_bundle(bundle)
    report = json.loads(score.read_text())
    manifest = dict(source.manifest)
    key = name or "final"
    summary = {k: report[k] for k in SCORE_KEYS if k in report}
    summary["scored"] = report.get("data", report.get("dataset", ""))
    manifest["metrics"] = {**manifest.get("metrics", {}), key: summary}
    with files.atomic_dir(dest, replace=True) as staging:
        for file_name in manifest["files"]:
            shutil.copyfile(source.path / file_name, staging / file_name)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    load_bundle(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m affectlite.convert.publish")
    parser.add_argument("bundle", type=Path, help="a bundle from `affectlite convert`")
    parser.add_argument("score", type=Path, help="`affectlite evaluate --json` of that bundle")
    parser.add_argument("--dest", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--name", default="final", help="metrics key, e.g. ferplus_valid")
    args = parser.parse_args(argv)
    print(f"published {publish(args.bundle, args.score, args.dest, args.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
