"""The training run's hyper-parameters, validated on construction; no TensorFlow import.

``affectlite train`` builds a :class:`TrainConfig` from its options before it reads any data, so
a typo (``--backbone resnet5``) is refused before a dataset is decoded or a run folder written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from affectlite.errors import InputError

BACKBONE_NAMES = ("resnet50", "mobilenetv3large", "efficientnetv2b0", "compact")
"""Backbones :func:`affectlite.train.model.build_model` builds (``compact`` is the kit's own)."""
BALANCE_MODES = ("loss", "sqrt", "sampling", "none")
PRECISION_MODES = ("auto", "on", "off", "bf16")
DISTRIBUTE_MODES = ("auto", "none", "data-parallel", "mirrored", "multiworker")
"""``data-parallel`` on JAX; ``mirrored`` and ``multiworker`` on TensorFlow."""
BACKENDS = ("jax", "tensorflow")
DEFAULT_BACKEND = "tensorflow"
MIN_INPUT_SIZE = 32


def default_backend() -> str:
    """``KERAS_BACKEND`` when it names a supported backend, else TensorFlow."""
    name = os.environ.get("KERAS_BACKEND", "")
    return name if name in BACKENDS else DEFAULT_BACKEND


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        flag = "--" + name.replace("_", "-")
        raise InputError(f"{flag} {value!r} is not known; choose from {', '.join(choices)}.")


@dataclass
class TrainConfig:
    """Hyper-parameters of one run (saved as ``config.json`` in the run folder)."""

    backbone: str = "resnet50"
    input_size: int = 112
    weights: str = "imagenet"
    epochs: int = 30
    head_epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-3
    finetune_learning_rate: float = 1e-4
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    balance: str = "loss"
    augment: bool = True
    dropout: float = 0.3
    mixed_precision: str = "auto"
    distribute: str = "auto"
    seed: int = 0
    init: str = ""
    backend: str = field(default_factory=default_backend)
    checkpoint_every: str = "5m"
    teacher: str = ""
    distill_temperature: float = 4.0
    distill_alpha: float = 0.9

    def checkpoint_interval(self) -> tuple[int, float]:
        """``(epochs, seconds)`` between resume-state saves: ``"3"`` every 3 epochs, ``"5m"``
        at the end of the first epoch 5 minutes or more after the previous save."""
        text = self.checkpoint_every.strip().lower()
        try:
            if text.endswith("m"):
                return 0, float(text[:-1]) * 60
            return int(text), 0.0
        except ValueError:
            raise InputError(
                f"--checkpoint-every {self.checkpoint_every!r}: give epochs (3) or minutes (5m)."
            ) from None

    def __post_init__(self) -> None:
        _choice("backbone", self.backbone, BACKBONE_NAMES)
        _choice("balance", self.balance, BALANCE_MODES)
        _choice("mixed_precision", self.mixed_precision, PRECISION_MODES)
        _choice("distribute", self.distribute, DISTRIBUTE_MODES)
        _choice("backend", self.backend, BACKENDS)
        foreign = {"jax": ("mirrored", "multiworker"), "tensorflow": ("data-parallel",)}
        if self.distribute in foreign[self.backend]:
            raise InputError(
                f"--distribute {self.distribute} is not available on the {self.backend} backend."
            )
        if min(self.checkpoint_interval()) < 0 or max(self.checkpoint_interval()) <= 0:
            raise InputError(
                f"--checkpoint-every {self.checkpoint_every!r} must be positive (3 or 5m)."
            )
        if self.input_size < MIN_INPUT_SIZE:
            raise InputError(
                f"--input-size must be at least {MIN_INPUT_SIZE} pixels, got {self.input_size}."
            )
        if self.backbone == "compact" and self.pretrained:
            raise InputError("The compact backbone trains from scratch: use --weights none.")
        if self.weights.lower() not in ("imagenet", "none") and not Path(self.weights).is_file():
            raise InputError(f"--weights {self.weights}: no such weights file.")
        if self.init and not self.init.endswith(".keras"):
            raise InputError(f"--init {self.init}: expected a trained model (.keras file).")
        if not self.distill_temperature > 0 or not 0.0 <= self.distill_alpha <= 1.0:
            raise InputError(
                "--distill-temperature must be positive and --distill-alpha in [0, 1], got "
                f"{self.distill_temperature} and {self.distill_alpha}."
            )
        counts = {"epochs": self.epochs, "batch_size": self.batch_size}
        for name, value in counts.items():
            if value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {value}.")
        for name in ("head_epochs", "warmup_epochs", "weight_decay"):
            if getattr(self, name) < 0:
                flag = "--" + name.replace("_", "-")
                raise InputError(f"{flag} must be 0 or more, got {getattr(self, name)}.")
        for name in ("learning_rate", "finetune_learning_rate"):
            if not getattr(self, name) > 0:
                flag = "--" + name.replace("_", "-")
                raise InputError(f"{flag} must be positive, got {getattr(self, name)}.")
        for name in ("label_smoothing", "dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                flag = "--" + name.replace("_", "-")
                raise InputError(f"{flag} must be in [0, 1), got {getattr(self, name)}.")

    @property
    def pretrained(self) -> bool:
        return self.weights.lower() != "none"

    def phases(self) -> list[tuple[str, int, int, float]]:
        """``(name, first_epoch, end_epoch, peak_learning_rate)`` of each phase."""
        head = min(self.head_epochs, self.epochs) if self.pretrained else 0
        phases = [("head", 0, head, self.learning_rate)] if head else []
        if self.epochs > head:
            rate = self.finetune_learning_rate if self.pretrained else self.learning_rate
            phases.append(("finetune", head, self.epochs, rate))
        return phases

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        data = json.loads(Path(path).read_text())
        data.setdefault("backend", DEFAULT_BACKEND)  # runs saved before --backend were TensorFlow's
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
