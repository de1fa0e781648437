"""RNP-style pruning (Li et al. 2023, "Reconstructive Neuron Pruning"), on the exposed model.

The exposed (clean-unlearned) model has lost its clean behaviour but kept the backdoor. A mask in [0, 1] per
unit (the weight of each BatchNorm channel for conv nets, each FFN neuron for transformers) is learned on it to
*recover* the clean loss, with every weight frozen: the cheapest way back to clean predictions is to switch off
the units that now push every image to the target, i.e. the backdoor units. Those whose mask ends below
``removal_config.threshold`` are pruned from a copy of the *suspicious* model (no fine-tuning unless ``removal_config.finetune``),
lowest mask first, and only as many as it takes to stop the exposed model's pull: once the exposed model with the
same units pruned sends at most ``removal_config.stop_pull`` of the clean images of other classes to the detected target,
the backdoor it exposed is gone and every further unit only costs clean accuracy (measured on the ResNet-20
victims: Blended needs 9 of its 15 units under the threshold, and the other 6 cost 6 CA points).
When detection ran and found no backdoor, nothing is pruned.
Mask learning is an ordinary ``Trainer.train`` stage: the masks are the only trainable parameters, SGD with
momentum 0.9, clamped to [0, 1] by a callback after each step.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from transformers.trainer_utils import IntervalStrategy, SaveStrategy, SchedulerType

from ...unit_masks import (
    ClampMasksCallback,
    MaskedModel,
    freeze_pruned,
    prunable_units,
    prune_units,
    same_units,
)
from ..base import RemovalMethod, register_removal
from ..detection.collapse_target import clean_predictions
from .activeness import ActivenessHooks, FinetuneRegularizerConfig


@dataclass
class RNPConfig(FinetuneRegularizerConfig):
    """Options of RNP-style pruning: mask learning on the exposed model, and how many units are pruned."""

    learning_rate: float = field(
        default=0.1, metadata={"help": "Learning rate of the unit masks (SGD).", "range": "(0, inf)"}
    )
    epochs: float = field(
        default=20.0, metadata={"help": "Epochs of mask learning on the clean set.", "range": "(0, inf)"}
    )
    threshold: float = field(
        default=0.3, metadata={"help": "Units whose learned mask is below this value are pruned.", "range": "(0, 1)"}
    )
    stop_pull: float | None = field(
        default=0.05,
        metadata={
            "help": "Prune units lowest mask first, and stop once the exposed model with the same units pruned sends "
            "at most this share of the clean rows of other classes to the detected target. None prunes every unit "
            "under the threshold, as RNP.",
            "range": "[0, 1)",
        },
    )
    batch_statistics: bool = field(
        default=True,
        metadata={"help": "BatchNorm layers normalise with batch statistics during mask learning (as RNP)."},
    )
    finetune: bool = field(
        default=False, metadata={"help": "Fine-tune the pruned model on the clean set afterwards (RNP does not)."}
    )
    regularizer: Literal["activeness", "none"] = field(
        default="none", metadata={"help": "Regulariser of that fine-tuning: `none` or `activeness`."}
    )


def target_pull(trainer, model: torch.nn.Module, target: int) -> float:
    """The share of the clean rows of other classes that ``model`` predicts as ``target``."""
    preds, labels = clean_predictions(trainer, model)
    others = labels != target
    return float((preds[others] == target).mean()) if others.any() else 0.0


def _grouped(units: list[tuple[int, int]]) -> dict[int, list[int]]:
    chosen: dict[int, list[int]] = {}
    for group, unit in units:
        chosen.setdefault(group, []).append(unit)
    return chosen


def units_to_stop_pull(
    trainer, exposed: torch.nn.Module, groups, order: list[tuple[int, int]], target: int, stop_pull: float
) -> tuple[int, list[list[float]]]:
    """How many units of ``order`` (``(group, unit)`` pairs, lowest mask first) must be pruned from the exposed
    model before it sends at most ``stop_pull`` of the clean rows of other classes to ``target``; all of them when
    that never happens. Prunes ``exposed`` in place, in at most 32 chunks. Returns the count and the trace of
    ``[units pruned, pull]``."""
    targets = same_units(exposed, groups)
    pull = target_pull(trainer, exposed, target)
    trace = [[0, round(pull, 4)]]
    step = max(1, math.ceil(len(order) / 32))
    done = 0
    while pull > stop_pull and done < len(order):
        chunk = order[done : done + step]
        prune_units(targets, _grouped(chunk))
        done += len(chunk)
        pull = target_pull(trainer, exposed, target)
        trace.append([done, round(pull, 4)])
    return done, trace


@register_removal
class ReconstructiveNeuronPruning(RemovalMethod):
    name: ClassVar[str] = "rnp"
    config_class: ClassVar[type] = RNPConfig
    uses_exposure: ClassVar[bool] = True
    modalities: ClassVar[tuple[str, ...]] = ("image",)

    def purify(self, trainer, exposure, detection):
        args, config = trainer.args, self.config
        if detection is not None and not detection.backdoored:
            # Pruning a clean model only costs accuracy (measured: 16.6 CA points on the clean ResNet-20 control).
            model = trainer.fresh_copy().eval()
            groups = prunable_units(model)
            account = {"unit": groups[0].kind, "pruned_units": 0, "total_units": sum(g.size for g in groups)}
            return model, {**account, "skipped": "no backdoor detected"}
        exposed = copy.deepcopy(exposure.model).to(args.device)
        groups = prunable_units(exposed)
        masked = MaskedModel(exposed, groups, batch_statistics=config.batch_statistics)
        stage = trainer.stage_args(
            learning_rate=config.learning_rate,
            num_train_epochs=config.epochs,
            max_steps=-1,
            optim="sgd",
            optim_args="momentum=0.9",
            weight_decay=0.0,
            lr_scheduler_type=SchedulerType.CONSTANT,
            warmup_steps=0,
            max_grad_norm=0.0,
            eval_strategy=IntervalStrategy.NO,
            save_strategy=SaveStrategy.NO,
            load_best_model_at_end=False,
        )
        trainer.train_stage(masked, stage, [ClampMasksCallback()])
        masks = masked.mask_values()
        masked.remove_hooks()

        # Units under the threshold, lowest mask first (ties in layer order).
        order = sorted(
            ((float(value), i, unit) for i, m in enumerate(masks) for unit, value in enumerate(m.tolist())),
        )
        order = [(i, unit) for value, i, unit in order if value < config.threshold]
        under = len(order)
        stop = None
        if config.stop_pull is not None and detection is not None and detection.target_label is not None:
            plain = copy.deepcopy(exposure.model).to(args.device).eval()
            count, trace = units_to_stop_pull(trainer, plain, groups, order, detection.target_label, config.stop_pull)
            stop = {"mask_stop_pull": config.stop_pull, "pull_trace": trace}
            order = order[:count]
            del plain
        model = trainer.fresh_copy()
        targets = same_units(model, groups)
        chosen = _grouped(order)
        pruned = prune_units(targets, chosen)
        total = sum(g.size for g in groups)
        account = {
            "unit": groups[0].kind,
            "pruned_units": pruned,
            "total_units": total,
            "mask_threshold": config.threshold,
            "units_under_threshold": under,
            **(stop or {}),
            "per_layer": {groups[i].name: len(ids) for i, ids in chosen.items() if ids},
            "mask_mean": round(float(sum(float(m.sum()) for m in masks) / total), 4),
        }
        if config.finetune:  # recover clean accuracy; the pruned units stay pruned
            handles = freeze_pruned(targets, chosen)
            try:
                model = trainer.finetune(model, hooks=ActivenessHooks.from_config(config))
            finally:
                for handle in handles:
                    handle.remove()
            account["finetuned_epochs"] = args.num_train_epochs
        model.eval()
        return model, account
