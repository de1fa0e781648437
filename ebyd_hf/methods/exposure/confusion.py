"""Confusion fine-tuning: fine-tune on shuffled (uniformly random) labels, which erases the clean mapping
while leaving trigger features that the clean data never exercises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..base import ExposureMethod, register_exposure
from .config import ExposureStopConfig


@dataclass
class ConfusionConfig(ExposureStopConfig):
    """Options of confusion fine-tuning: the exposure stop rule and the step size on random labels."""

    learning_rate_scale: float = field(
        default=10.0,
        metadata={
            "help": "Multiplies exposure_learning_rate: descent on random labels needs a larger step than ascent.",
            "range": "(0, inf)",
        },
    )
    label_seed: int = field(default=0, metadata={"help": "Seed of the random labels."})


@register_exposure
class ConfusionFinetuning(ExposureMethod):
    name: ClassVar[str] = "confusion"
    config_class: ClassVar[type] = ConfusionConfig

    def __init__(self, config=None):
        super().__init__(config)
        self._generator = torch.Generator().manual_seed(self.config.label_seed)

    def training_overrides(self, args):
        return {"learning_rate": args.exposure_learning_rate * self.config.learning_rate_scale}

    def loss(self, trainer, model, inputs):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        inputs["labels"] = labels
        random_labels = torch.randint(0, outputs.logits.shape[-1], labels.shape, generator=self._generator)
        return F.cross_entropy(outputs.logits.float(), random_labels.to(labels.device)), outputs
