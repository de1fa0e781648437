"""Baseline: vanilla fine-tuning of the suspicious model on the clean set (no exposure, no regulariser by default)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ..base import RemovalMethod, register_removal
from .activeness import ActivenessHooks, FinetuneRegularizerConfig


@dataclass
class FinetuneConfig(FinetuneRegularizerConfig):
    """Options of the fine-tuning baseline (epochs and learning rate are the ``TrainingArguments``')."""

    regularizer: Literal["activeness", "none"] = field(
        default="none", metadata={"help": "`none`: plain fine-tuning; `activeness`: with the TSBD regulariser."}
    )


@register_removal
class Finetune(RemovalMethod):
    name: ClassVar[str] = "finetune"
    config_class: ClassVar[type] = FinetuneConfig
    uses_exposure: ClassVar[bool] = False

    def purify(self, trainer, exposure, detection):
        model = trainer.finetune(trainer.fresh_copy(), hooks=ActivenessHooks.from_config(self.config))
        return model, {"finetune": self.config.regularizer, "epochs": trainer.args.num_train_epochs}
