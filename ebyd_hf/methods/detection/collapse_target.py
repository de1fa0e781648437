"""Collapse target: read the target label off the exposed model.

Clean Unlearning erases the clean features of a backdoored model while its backdoor stays, so the exposed model
sends clean images of every class to the target label (measured on CIFAR-10 ResNet-20 victims, see
``bench/results/vision.md``). A clean model loses its clean features without anywhere in particular to go,
and its errors spread over several classes. The score is the share of clean rows *of other classes* that the
exposed model predicts as its most-predicted class (chance is about ``1 / num_labels``); the model is flagged
when it reaches ``detection_config.threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from ...report import DetectionResult, RuleOutcome
from ..base import DetectionMethod, MethodConfig, register_detection


@dataclass
class CollapseTargetConfig(MethodConfig):
    """Options of the collapse-target verdict."""

    threshold: float = field(
        default=0.8,
        metadata={
            "help": "Flag the model when the exposed model sends at least this share of the clean rows of other "
            "classes to one class.",
            "range": "(0, 1]",
        },
    )


@torch.no_grad()
def clean_predictions(trainer, model) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true labels of ``model`` on the trainer's clean set."""
    was_training = model.training
    model.eval()
    preds, labels = [], []
    try:
        for batch in trainer.clean_batches(model):
            target = batch.pop("labels")
            preds.append(model(**batch).logits.argmax(-1).cpu())
            labels.append(target.cpu())
    finally:
        model.train(was_training)
    return torch.cat(preds).numpy(), torch.cat(labels).numpy()


@register_detection
class CollapseTarget(DetectionMethod):
    name: ClassVar[str] = "collapse_target"
    config_class: ClassVar[type] = CollapseTargetConfig
    uses_exposure: ClassVar[bool] = True

    def detect(self, trainer, exposure):
        preds, labels = clean_predictions(trainer, exposure.model)
        num_labels = trainer.num_labels
        pulled = np.zeros(num_labels)
        for c in range(num_labels):
            others = labels != c
            pulled[c] = (preds[others] == c).mean() if others.any() else 0.0
        target = int(pulled.argmax())
        score = float(pulled[target])
        threshold = float(self.config.threshold)
        shares = np.bincount(preds, minlength=num_labels) / len(preds)
        return DetectionResult(
            backdoored=score >= threshold,
            score=score,
            threshold=threshold,
            target_label=target,
            target_score=score,
            decided_by="collapse" if score >= threshold else None,
            rules=[RuleOutcome("collapse", score, threshold, target, score >= threshold)],
            details={
                "pulled_share_per_class": [round(float(v), 4) for v in pulled],
                "prediction_share_per_class": [round(float(v), 4) for v in shares],
                "exposed_clean_accuracy": float((preds == labels).mean()),
                "chance": 1.0 / num_labels,
                "exposure_steps": exposure.steps,
                "exposure_stopped_by": exposure.stopped_by,
            },
        )
