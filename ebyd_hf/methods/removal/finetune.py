"""Baseline: vanilla fine-tuning of the suspicious model on the clean set (no exposure, no regulariser)."""

from __future__ import annotations

from typing import ClassVar

from ..base import RemovalMethod, register_removal


@register_removal
class Finetune(RemovalMethod):
    name: ClassVar[str] = "finetune"
    uses_exposure: ClassVar[bool] = False

    def purify(self, trainer, exposure, detection):
        model = trainer.finetune(trainer.fresh_copy(), regularizer="none")
        return model, {"finetune": "plain", "epochs": trainer.args.num_train_epochs}
