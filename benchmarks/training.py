"""Training throughput of candidate backbones on this machine, side by side in one run.

``python -m affectlite.benchmarks.training --backbones compact,resnet50 --input-size 48``
times ``model.fit`` steps (random pixels and labels: speed does not depend on them) after
untimed warm-up steps, interleaving the backbones round by round so a noisy machine affects
them alike, and writes images/s per backbone as JSON and a Markdown table, with the CPU flags.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

from affectlite import files


def cpu_flags() -> str:
    """The SIMD flags that decide CPU training speed (AVX-512 VNNI vs AVX2 machines)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    flags = sorted(set(re.findall(r"\b(avx512[a-z_]*|avx2)\b", text)))
    return " ".join(flags) or "no avx2"


def _compiled(backbone: str, input_size: int):
    import keras

    from affectlite.train.model import build_model

    model = build_model(backbone, input_size, "none")
    model.compile(
        keras.optimizers.AdamW(1e-3),
        keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    return model


def measure(
    backbones: list[str], input_size: int, batch_size: int, steps: int, rounds: int
) -> dict:
    """Images per second of ``fit`` for each backbone: the median over ``rounds`` rounds."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch_size * steps, input_size, input_size, 3))
    targets = np.eye(8, dtype=np.float32)[rng.integers(0, 8, len(images))]
    data = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), targets))
    data = data.batch(batch_size).repeat()
    models = {name: _compiled(name, input_size) for name in backbones}
    for model in models.values():
        model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    rates: dict[str, list[float]] = {name: [] for name in backbones}
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
            rates[name].append(steps * batch_size / (time.perf_counter() - start))
    return {
        "cpu_flags": cpu_flags(),
        "input_size": input_size,
        "batch_size": batch_size,
        "steps_per_round": steps,
        "rounds": rounds,
        "backbones": {
            name: {
                "parameters": int(models[name].count_params()),
                "images_per_second": round(float(np.median(rate)), 1),
                "rounds": [round(r, 1) for r in rate],
            }
            for name, rate in rates.items()
        },
    }


def markdown(result: dict) -> str:
    rows = [
        f"| {name} | {row['parameters'] / 1e6:.2f} M | {row['images_per_second']:.1f} |"
        for name, row in result["backbones"].items()
    ]
    return "\n".join(
        [
            f"Training throughput, {result['input_size']} px, batch {result['batch_size']}, "
            f"median of {result['rounds']} rounds; CPU flags: {result['cpu_flags']}",
            "",
            "| backbone | parameters | images/s |",
            "|---|---|---|",
            *rows,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m affectlite.benchmarks.training")
    parser.add_argument("--backbones", default="compact,resnet50")
    parser.add_argument("--input-size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="fit steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="folder for training.json and training.md")
    args = parser.parse_args(argv)
    result = measure(
        args.backbones.split(","), args.input_size, args.batch_size, args.steps, args.rounds
    )
    text = markdown(result)
    print(text)
    if args.out:
        files.write_json(args.out / "training.json", result)
        files.write_text(args.out / "training.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
