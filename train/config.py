"""Training hyper-parameters, apart from the trainer so that ``affectlite train --help`` lists
them without importing TensorFlow."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

BALANCE_MODES = ("loss", "sqrt", "sampling", "none")
"""How class imbalance is countered: loss weights, their square root, resampling, or not."""


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
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
