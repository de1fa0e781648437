"""Clean Unlearning (CUL): gradient ascent on the clean data. Clean features are erased first; the backdoor,
which the clean data never exercises, is left standing."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F

from ..base import ExposureMethod, register_exposure


@register_exposure
class CleanUnlearning(ExposureMethod):
    name: ClassVar[str] = "clean_unlearning"

    def compute_loss(self, trainer, model, inputs):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        inputs["labels"] = labels
        return -F.cross_entropy(outputs.logits.float(), labels), outputs
