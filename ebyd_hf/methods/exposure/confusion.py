"""Confusion fine-tuning: fine-tune on shuffled (uniformly random) labels, which erases the clean mapping
while leaving trigger features that the clean data never exercises."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..base import ExposureMethod, register_exposure
from .config import RelabelledConfig


@dataclass
class ConfusionConfig(RelabelledConfig):
    """Options of confusion fine-tuning: the exposure stop rule, the step size and the seed of the random labels."""

    label_seed: int = field(default=0, metadata={"help": "Seed of the random labels."})


class RelabelledFinetuning(ExposureMethod):
    """Fine-tuning (descent, at ``learning_rate_scale`` times ``exposure_learning_rate``) toward the labels
    :meth:`new_labels` gives each batch instead of the true ones."""

    def training_overrides(self, args):
        return {"learning_rate": args.exposure_learning_rate * self.config.learning_rate_scale}

    @abstractmethod
    def new_labels(self, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
        """The labels the batch is trained toward."""

    def loss(self, trainer, model, inputs):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        inputs["labels"] = labels
        return F.cross_entropy(outputs.logits.float(), self.new_labels(labels, outputs.logits.shape[-1])), outputs


@register_exposure
class ConfusionFinetuning(RelabelledFinetuning):
    name: ClassVar[str] = "confusion"
    config_class: ClassVar[type] = ConfusionConfig

    def __init__(self, config=None):
        super().__init__(config)
        self._generator = torch.Generator().manual_seed(self.config.label_seed)

    def new_labels(self, labels, num_labels):
        return torch.randint(0, num_labels, labels.shape, generator=self._generator).to(labels.device)
