"""Confusion fine-tuning: fine-tune on shuffled (uniformly random) labels, which erases the clean mapping
while leaving trigger features that the clean data never exercises."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from ..base import ExposureMethod, register_exposure


@register_exposure
class ConfusionFinetuning(ExposureMethod):
    name: ClassVar[str] = "confusion"

    def __init__(self):
        self._generator = torch.Generator().manual_seed(0)

    def training_overrides(self, args):
        return {"learning_rate": args.exposure_learning_rate * 10}  # descent on noise needs a larger step

    def compute_loss(self, trainer, model, inputs):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        inputs["labels"] = labels
        random_labels = torch.randint(0, outputs.logits.shape[-1], labels.shape, generator=self._generator)
        return F.cross_entropy(outputs.logits.float(), random_labels.to(labels.device)), outputs
