"""Baseline: fine-pruning (Liu et al. 2018) for transformers. Prune the FFN neurons that are most dormant on
the clean set (lowest mean activation), then fine-tune on it. Neurons the clean data does not use are where a
backdoor can hide."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ...neurons import ffn_blocks, mean_ffn_activations, prune_ffn_neurons
from ..base import MethodConfig, RemovalMethod, register_removal


@dataclass
class FinePruningConfig(MethodConfig):
    """Options of fine-pruning."""

    ratio: float = field(
        default=0.2,
        metadata={"help": "Share of all FFN neurons pruned, most dormant on the clean set first.", "range": "[0, 1)"},
    )


@register_removal
class FinePruning(RemovalMethod):
    name: ClassVar[str] = "fine_pruning"
    config_class: ClassVar[type] = FinePruningConfig
    uses_exposure: ClassVar[bool] = False
    modalities: ClassVar[tuple[str, ...]] = ("text",)

    def purify(self, trainer, exposure, detection):
        model = trainer.fresh_copy()
        blocks = ffn_blocks(model)
        activations = mean_ffn_activations(model, trainer.clean_batches(model), blocks)
        flat = torch.cat(activations)
        count = int(round(self.config.ratio * flat.numel()))
        chosen = torch.argsort(flat)[:count].tolist()  # most dormant first, across all layers
        offsets = [0]
        for block in blocks:
            offsets.append(offsets[-1] + block.size)
        neurons: dict[int, list[int]] = {}
        for flat_index in chosen:
            layer = next(i for i in range(len(blocks)) if offsets[i] <= flat_index < offsets[i + 1])
            neurons.setdefault(layer, []).append(flat_index - offsets[layer])
        pruned = prune_ffn_neurons(blocks, neurons)
        model = trainer.finetune(model)
        per_layer = {blocks[i].name: len(ids) for i, ids in sorted(neurons.items())}
        return model, {"pruned_ffn_neurons": pruned, "per_layer": per_layer, "ratio": self.config.ratio}
