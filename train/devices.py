"""Where a run computes: the devices, the precision policy and the distribution, per backend.

On JAX nothing here imports TensorFlow: devices come from ``jax.devices()`` and several of them
train with ``keras.distribution.DataParallel``. On TensorFlow, ``tf.distribute`` strategies
(Mirrored on several GPUs, MultiWorkerMirrored with ``TF_CONFIG``) stay as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import keras

from affectlite.errors import InputError

JAX_MODES = ("auto", "none", "data-parallel")
TF_MODES = ("auto", "none", "mirrored", "multiworker")
BF16_CAPABILITY = 8.0
"""CUDA compute capability from which GPUs have bfloat16 units (Ampere and later)."""


@dataclass(frozen=True)
class Device:
    """What the backend computes on: ``platform`` cpu, gpu or tpu, its name and count."""

    platform: str
    name: str
    count: int
    bf16: bool

    def to_dict(self) -> dict:
        return {"platform": self.platform, "name": self.name, "count": self.count}


def device() -> Device:
    """The accelerator the current Keras backend uses (its first device)."""
    if keras.backend.backend() == "jax":
        import jax

        devices = jax.devices()
        first = devices[0]
        capability = float(getattr(first, "compute_capability", 0) or 0)
        gpu_bf16 = first.platform == "gpu" and capability >= BF16_CAPABILITY
        bf16 = first.platform == "tpu" or gpu_bf16
        return Device(first.platform, first.device_kind, len(devices), bf16)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return Device("cpu", "cpu", 1, False)
    details = tf.config.experimental.get_device_details(gpus[0])
    capability = details.get("compute_capability", (0, 0))
    bf16 = float(f"{capability[0]}.{capability[1]}") >= BF16_CAPABILITY
    return Device("gpu", details.get("device_name", "gpu"), len(gpus), bf16)


def policy_name(mode: str, where: Device) -> str:
    """The Keras dtype policy for ``--mixed-precision``: ``bf16`` mixed bfloat16, ``on`` mixed
    float16, ``off`` float32; ``auto`` bfloat16 where the accelerator has it, float16 on other
    GPUs, float32 on a CPU."""
    if mode == "auto":
        mode = "bf16" if where.bf16 else "on" if where.platform == "gpu" else "off"
    return {"bf16": "mixed_bfloat16", "on": "mixed_float16", "off": "float32"}[mode]


@contextmanager
def precision_policy(mode: str, where: Device | None = None) -> Iterator[str]:
    """Sets the global Keras precision policy for one run (on ``where``, default: this
    backend's :func:`device`), restores the previous one after; yields the policy name used."""
    policy = policy_name(mode, where or device())
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(previous)


@dataclass
class Placement:
    """How one run spreads over devices: its ``scope`` (build and compile the model inside),
    whether this process writes the run folder, and the TF strategy (None on JAX)."""

    name: str
    replicas: int
    chief: bool = True
    strategy: Any = None
    distribution: Any = field(default=None, repr=False)

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else nullcontext()

    def to_dict(self) -> dict:
        return {"mode": self.name, "replicas": self.replicas}


@contextmanager
def placement(mode: str, where: Device) -> Iterator[Placement]:
    """The distribution for ``--distribute`` on the current backend, active for the block.

    JAX: ``data-parallel`` (``auto`` with several devices) shards every batch over all
    devices with ``keras.distribution.DataParallel``. TensorFlow: ``multiworker`` (``auto``
    with ``TF_CONFIG``), ``mirrored`` (``auto`` with several GPUs), else the default strategy.

    Raises:
        InputError: for a mode the backend does not have.
    """
    backend = keras.backend.backend()
    modes = JAX_MODES if backend == "jax" else TF_MODES
    if mode not in modes:
        raise InputError(
            f"--distribute {mode} is not available on the {backend} backend; choose from "
            f"{', '.join(modes)}."
        )
    if backend == "jax":
        with _jax_placement(mode, where) as chosen:
            yield chosen
        return
    yield _tf_placement(mode, where)


@contextmanager
def _jax_placement(mode: str, where: Device) -> Iterator[Placement]:
    if mode == "none" or (mode == "auto" and where.count < 2):
        yield Placement("none", 1)
        return
    previous = keras.distribution.distribution()
    parallel = keras.distribution.DataParallel()
    keras.distribution.set_distribution(parallel)
    try:
        yield Placement("data-parallel", where.count, distribution=parallel)
    finally:
        keras.distribution.set_distribution(previous)


def _tf_placement(mode: str, where: Device) -> Placement:
    import tensorflow as tf

    if mode == "multiworker" or (mode == "auto" and os.environ.get("TF_CONFIG")):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        name = "multiworker"
    elif mode == "mirrored" or (mode == "auto" and where.platform == "gpu" and where.count > 1):
        strategy, name = tf.distribute.MirroredStrategy(), "mirrored"
    else:
        strategy, name = tf.distribute.get_strategy(), "none"
    return Placement(name, strategy.num_replicas_in_sync, is_chief(strategy), strategy)


def is_chief(strategy: Any) -> bool:
    """Whether this process writes the run folder: the only process, the ``chief`` task, or
    worker 0 of a cluster without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    if resolver.task_type == "chief":
        return True
    jobs = resolver.cluster_spec().jobs
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in jobs


@contextmanager
def keras_multiworker_fit(model: keras.Model, strategy: Any, data):
    """Works around two Keras 3 bugs that stop ``fit`` under MultiWorkerMirroredStrategy with
    several workers (keras-team/keras#20585, open in Keras 3.15):

    - ``fit`` builds the model from its first distributed batch after ``strategy.reduce`` of the
      whole (images, targets, weights) tuple, which fails; the model is built here instead from
      one local batch, so ``fit`` has nothing left to build;
    - ``fit`` averages each step's scalar logs with ``strategy.reduce(..., axis=0)``, which
      fails on scalars; during ``fit`` they are averaged with ``axis=None``.

    A no-op for any other strategy (and on JAX).
    """
    if strategy is None:
        yield
        return
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    from keras.src.backend.tensorflow import trainer as tf_trainer

    with strategy.scope():
        model._symbolic_build(data_batch=data[0])
    model._maybe_symbolic_build = lambda **kwargs: None
    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction != "auto":
            return original(values, strategy, reduction)
        return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)

    tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original
        del model._maybe_symbolic_build
