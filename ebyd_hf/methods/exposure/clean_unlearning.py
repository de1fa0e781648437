"""Clean Unlearning (CUL): gradient ascent on the clean data. Clean features are erased first; the backdoor,
which the clean data never exercises, is left standing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F

from ..base import ExposureMethod, register_exposure
from .config import ExposureStopConfig


@dataclass
class CleanUnlearningConfig(ExposureStopConfig):
    """Options of Clean Unlearning: the exposure stop rule (learning rate and step budget are
    ``ExposeConfig.exposure_learning_rate`` / ``exposure_max_steps``)."""


@register_exposure
class CleanUnlearning(ExposureMethod):
    name: ClassVar[str] = "clean_unlearning"
    config_class: ClassVar[type] = CleanUnlearningConfig

    def loss(self, trainer, model, inputs):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        inputs["labels"] = labels
        return -F.cross_entropy(outputs.logits.float(), labels), outputs
