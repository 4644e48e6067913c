"""Training throughput per Keras backend and backbone, through the kit's own training step.

``python -m affectlite.benchmarks.training --backend jax,tensorflow --backbones compact
--input-size 48 --batch-size 256 --data /work/shared/data/ferplus --out DIR``

The backend is fixed per process, so each (backend, backbone) variant runs in a worker
subprocess. A worker builds what ``affectlite train`` builds (:func:`~affectlite.train.model.
build_model` inside :class:`~affectlite.train.augment.TrainingModel` with its ``Augment``,
batches from :class:`~affectlite.train.pipeline.FaceBatches`, the trainer's compile settings,
precision policy and placement), warms up (compilation is not timed), then runs one timed round
of ``fit`` steps each time the parent asks. The parent interleaves the rounds variant by variant,
reversing the order every round, so machine noise hits the variants alike, and reports the
median images/s per variant and the JAX/TensorFlow ratio per backbone, with the CPU flags.

Data: a pack (``affectlite data pack``) or a FER+ folder given with ``--data`` (FER+ training
faces), else synthetic faces (the step's speed does not depend on the pixels).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from affectlite import files
from affectlite.benchmarks.system import cpu_model, load_average
from affectlite.errors import InputError

BACKENDS = ("jax", "tensorflow")
PARTS = ("augment", "forward", "forward_backward")
MESSAGE = "@@bench "
"""Prefix of the worker's protocol lines on stdout (libraries may print there too)."""


def cpu_flags() -> str:
    """The SIMD flags that decide CPU training speed (AVX-512 VNNI vs AVX2 machines)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    flags = sorted(set(re.findall(r"\b(avx512[a-z_]*|avx2)\b", text)))
    return " ".join(flags) or "no avx2"


# --- worker (one backend, one backbone, in its own process) ----------------------------------


def _faces(data: str | None, input_size: int, count: int, seed: int):
    """The training faces: a pack's train split (streamed from disk), ``count`` FER+ training
    faces of a folder (cropped into memory), or ``count`` synthetic faces."""
    from affectlite.train.pipeline import Split, load_split, one_hot

    if data and (Path(data) / "manifest.json").is_file():
        from affectlite.train.readers.packed import open_packed

        return open_packed(data, "train"), f"pack {data} (train split)"
    if data:
        from affectlite.train.datasets import limit_samples, load_dataset

        index = load_dataset(data, "ferplus", "train", ferplus_mode="probability")
        split = load_split(limit_samples(index, count, seed), input_size)
        return split, f"FER+ {data} (train, {len(split)} faces)"
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, input_size, input_size, 3), dtype=np.uint8)
    labels = rng.integers(0, 8, count)
    return Split(images, one_hot(labels), [str(i) for i in range(count)]), "synthetic faces"


def _say(**message) -> None:
    print(MESSAGE + json.dumps(message), flush=True)


def worker(backend: str, backbone: str, args: argparse.Namespace) -> int:
    """Builds the variant, warms up, then times one round of ``fit`` per ``round`` line read."""
    from affectlite.train.backend import use_backend

    use_backend(backend)
    import keras

    from affectlite.train.augment import TrainingModel
    from affectlite.train.config import TrainConfig
    from affectlite.train.devices import device, placement, precision_policy
    from affectlite.train.model import build_model
    from affectlite.train.pipeline import FaceBatches, measure_throughput
    from affectlite.train.trainer import _compile, _set_trainable

    config = TrainConfig(  # the Makefile's FER+ recipe, from scratch
        backbone=backbone,
        input_size=args.input_size,
        weights="none",
        batch_size=args.batch_size,
        mixed_precision=args.mixed_precision,
        augment=args.augment,
        balance="none",
        backend=backend,
        weight_decay=0.05,
        label_smoothing=0.05,
        distribute="none",
    )
    source, described = _faces(args.data, args.input_size, args.batch_size * args.steps, 0)
    where = device()
    with precision_policy(config.mixed_precision, where) as policy:
        with placement(config.distribute, where) as place:
            keras.utils.set_random_seed(config.seed)
            data = FaceBatches(source, config.batch_size, balance=config.balance)
            if len(data) < args.steps:
                raise InputError(
                    f"--data {args.data}: {len(data)} batches of {args.batch_size}, fewer than "
                    f"--steps {args.steps}."
                )
            loader_rate = measure_throughput(data, min(len(data), 20))
            with place.scope():
                classifier = build_model(backbone, config.input_size, "none", config.dropout)
                model = TrainingModel(classifier, config.augment, config.seed)
                model(data[0][0][:1])
                phase, first, end, peak = config.phases()[-1]
                _set_trainable(classifier, phase, config.pretrained)
                _compile(model, config, peak, len(data), end - first)
            model.fit(data, epochs=1, steps_per_epoch=min(3, args.steps), verbose=0)
            parts = step_parts(model, data, config.augment) if args.breakdown else {}
            _say(
                ready=True,
                parameters=int(classifier.count_params()),
                device=where.to_dict(),
                precision_policy=policy,
                jit_compile=model.jit_compile,
                data=described,
                loader_images_per_second=round(loader_rate, 1),
            )
            for line in sys.stdin:
                if line.strip() != "round":
                    break
                _say(**_timed_round(model, data, args.steps), parts=time_parts(parts))
    return 0


def step_parts(model, data, augment: bool) -> dict:
    """The step's parts as functions of no argument, each compiled as ``fit`` compiles the
    step on this backend (jit on JAX; a tf.function without XLA on TensorFlow when
    augmenting) and already run once: augmentation alone, the classifier's forward pass,
    forward + backward (the gradients of the loss)."""
    import keras

    images, targets, _ = data[0]
    x = keras.ops.convert_to_tensor(images.astype("float32"))
    if keras.backend.backend() == "jax":
        parts = _parts_jax(model, x, targets)
    else:
        parts = _parts_tf(model, x, targets, jit=not augment)
    for function in parts.values():
        function()  # compiles
    return parts


def time_parts(parts: dict, repeats: int = 3) -> dict:
    """Median milliseconds of each part over ``repeats`` calls."""
    times = {}
    for name, function in parts.items():
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            samples.append(time.perf_counter() - start)
        times[name] = 1000 * float(np.median(samples))
    return times


def _parts_jax(model, x, targets) -> dict:
    """Copies of the weights (``fit`` donates the model's own buffers to its step)."""
    import jax
    import jax.numpy as jnp

    classifier, loss = model.classifier, model.loss

    def copies(variables):
        return [jnp.array(v.value, copy=True) for v in variables]

    trainable, fixed = (
        copies(classifier.trainable_variables),
        copies(classifier.non_trainable_variables),
    )
    seed = copies(model.augment.non_trainable_variables) if model.augment else []

    def forward(weights, fixed, x):
        return classifier.stateless_call(weights, fixed, x, training=True)[0]

    def objective(weights, fixed, x):
        return loss(targets, forward(weights, fixed, x))

    augment = jax.jit(lambda seed, x: model.augment.stateless_call([], seed, x, training=True)[0])
    forward, gradients = jax.jit(forward), jax.jit(jax.grad(objective))
    parts = {
        "forward": lambda: forward(trainable, fixed, x).block_until_ready(),
        "forward_backward": lambda: jax.block_until_ready(gradients(trainable, fixed, x)),
    }
    if model.augment:
        parts["augment"] = lambda: augment(seed, x).block_until_ready()
    return parts


def _parts_tf(model, x, targets, jit: bool) -> dict:
    import tensorflow as tf

    classifier, loss = model.classifier, model.loss

    @tf.function(jit_compile=jit)
    def forward(x):
        return classifier(x, training=True)

    @tf.function(jit_compile=jit)
    def gradients(x):
        with tf.GradientTape() as tape:
            value = loss(targets, classifier(x, training=True))
        return tape.gradient(value, classifier.trainable_variables)

    augment = tf.function(lambda x: model.augment(x, training=True), jit_compile=False)
    parts = {
        "forward": lambda: forward(x).numpy(),
        "forward_backward": lambda: [g.numpy() for g in gradients(x)],
    }
    if model.augment:
        parts["augment"] = lambda: augment(x).numpy()
    return parts


def _timed_round(model, data, steps: int) -> dict:
    before = int(model.optimizer.iterations.numpy())
    start = time.perf_counter()
    history = model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    seconds = time.perf_counter() - start
    ran = int(model.optimizer.iterations.numpy()) - before
    return {
        "images_per_second": ran * data.batch_size / seconds,
        "steps": ran,
        "seconds": seconds,
        "loss": float(history.history["loss"][-1]),
    }


# --- parent: interleaved rounds over worker processes ----------------------------------------


class Variant:
    """One worker process: ``backend/backbone``."""

    def __init__(self, backend: str, backbone: str, argv: list[str]) -> None:
        self.backend, self.backbone = backend, backbone
        command = [sys.executable, "-m", "affectlite.benchmarks.training", *argv]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.process = subprocess.Popen(
            [*command, "--worker", f"{backend}/{backbone}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.ready: dict = {}
        self.rounds: list[dict] = []

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.backbone}"

    def receive(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(MESSAGE):
                return json.loads(line[len(MESSAGE) :])
        code = self.process.wait()
        if code == InputError.exit_code:
            raise InputError(f"benchmark worker {self.name}: refused its options (see above).")
        raise RuntimeError(f"benchmark worker {self.name} stopped (exit {code}); see its stderr.")

    def run_round(self) -> dict:
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        result = self.receive()
        self.rounds.append(result)
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)

    def summary(self) -> dict:
        rates = [r["images_per_second"] for r in self.rounds]
        parts = {
            name: round(float(np.median([r["parts"][name] for r in self.rounds])), 1)
            for name in self.rounds[0]["parts"]
        }
        return {
            "backend": self.backend,
            "backbone": self.backbone,
            **self.ready,
            "images_per_second": round(float(np.median(rates)), 1),
            "rounds": [round(rate, 1) for rate in rates],
            "steps": [r["steps"] for r in self.rounds],
            "loss": [round(r["loss"], 4) for r in self.rounds],
            **({"milliseconds_per_batch": parts} if parts else {}),
        }


def measure(args: argparse.Namespace, argv: list[str]) -> dict:
    """Runs every variant's worker, interleaves ``args.rounds`` rounds, returns the summary."""
    variants = [
        Variant(backend, backbone, argv) for backbone in args.backbones for backend in args.backend
    ]
    load_before = load_average()
    try:
        for variant in variants:
            variant.ready = variant.receive()
            variant.ready.pop("ready")
        for number in range(args.rounds):
            for variant in variants if number % 2 == 0 else variants[::-1]:
                result = variant.run_round()
                print(
                    f"round {number + 1}: {variant.name} {result['images_per_second']:.1f} "
                    f"images/s ({result['steps']} steps)",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for variant in variants:
            variant.close()
    rows = {variant.name: variant.summary() for variant in variants}
    return {
        "cpu_flags": cpu_flags(),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "input_size": args.input_size,
        "batch_size": args.batch_size,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "augment": args.augment,
        "mixed_precision": args.mixed_precision,
        "variants": rows,
        "jax_over_tensorflow": _ratios(rows, args.backbones),
    }


def _ratios(rows: dict, backbones: list[str]) -> dict:
    ratios = {}
    for backbone in backbones:
        jax, tf = rows.get(f"jax/{backbone}"), rows.get(f"tensorflow/{backbone}")
        if jax and tf:
            ratios[backbone] = round(jax["images_per_second"] / tf["images_per_second"], 3)
    return ratios


def markdown(result: dict) -> str:
    rows = [
        f"| {row['backend']} | {row['backbone']} | {row['parameters'] / 1e6:.2f} M | "
        f"{row['precision_policy']} | {row['jit_compile']} | "
        f"**{row['images_per_second']:.1f}** | {', '.join(f'{r:.0f}' for r in row['rounds'])} | "
        f"{row['loader_images_per_second']:.0f} |"
        for row in result["variants"].values()
    ]
    ratios = [
        f"{name} JAX/TensorFlow: **{ratio:.2f}×**"
        for name, ratio in result["jax_over_tensorflow"].items()
    ]
    first = next(iter(result["variants"].values()))
    return "\n".join([*_header(result, first), *rows, "", *ratios, "", *_parts_table(result)])


def _parts_table(result: dict) -> list[str]:
    rows = [
        f"| {row['backend']} | {row['backbone']} | "
        + " | ".join(str(row["milliseconds_per_batch"].get(part, "–")) for part in PARTS)
        + f" | {1000 * result['batch_size'] / row['images_per_second']:.1f} |"
        for row in result["variants"].values()
        if "milliseconds_per_batch" in row
    ]
    if not rows:
        return []
    return [
        "Milliseconds per batch, each part compiled alone, timed in every round (median):",
        "",
        "| backend | backbone | augment | forward | forward + backward | whole fit step |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _header(result: dict, first: dict) -> list[str]:
    return [
        f"Training throughput (`fit` through the kit's TrainingModel, augmentation "
        f"{'on' if result['augment'] else 'off'}), {result['input_size']} px, batch "
        f"{result['batch_size']}, {result['steps_per_round']} steps per round, median of "
        f"{result['rounds']} interleaved rounds; data: {first['data']}; device: "
        f"{first['device']['platform']} ({result['cpu_model']}, "
        f"{result['logical_cpus']} logical CPUs); CPU flags: {result['cpu_flags']}; load "
        f"average before/after: {(result['load_average_before'] or ['?'])[0]} / "
        f"{(result['load_average_after'] or ['?'])[0]}"
        + (f"; XLA_FLAGS={result['xla_flags']}" if result["xla_flags"] else ""),
        "",
        "| backend | backbone | parameters | precision | jit | images/s | rounds | "
        "loader alone, images/s |",
        "|---|---|---|---|---|---|---|---|",
    ]


def _names(text: str, choices: tuple[str, ...], flag: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(name not in choices for name in names):
        raise InputError(f"{flag} {text!r}: choose from {', '.join(choices)}.")
    return names


def parser() -> argparse.ArgumentParser:
    from affectlite.train.config import PRECISION_MODES

    parser = argparse.ArgumentParser(prog="python -m affectlite.benchmarks.training")
    parser.add_argument("--backend", default="jax,tensorflow", help="comma-separated backends")
    parser.add_argument("--backbones", default="compact", help="comma-separated backbones")
    parser.add_argument("--input-size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="fit steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--mixed-precision", default="off", choices=PRECISION_MODES)
    parser.add_argument(
        "--data", help="a pack folder or the FER+ folder (default: synthetic faces)"
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time augmentation, forward and forward+backward alone (ms per batch)",
    )
    parser.add_argument("--out", type=Path, help="folder for training.json and training.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(parser().parse_args(argv), argv)
    except InputError as error:
        print(f"training benchmark: {error}", file=sys.stderr)
        return error.exit_code


def run(args: argparse.Namespace, argv: list[str]) -> int:
    if args.worker:
        backend, backbone = args.worker.split("/")
        return worker(backend, backbone, args)
    args.backend = _names(args.backend, BACKENDS, "--backend")
    from affectlite.train.config import BACKBONE_NAMES

    args.backbones = _names(args.backbones, BACKBONE_NAMES, "--backbones")
    for flag in ("steps", "rounds", "batch_size"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag.replace('_', '-')} must be at least 1.")
    if args.data and not Path(args.data).is_dir():
        raise InputError(f"--data {args.data}: no such folder.")
    if args.out and (args.out / "training.json").exists():
        raise InputError(f"--out {args.out}: already holds training.json; choose a new folder.")
    result = measure(args, argv)
    text = markdown(result)
    print(text)
    if args.out:
        files.write_json(args.out / "training.json", result)
        files.write_text(args.out / "training.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
