"""Prunable units of a classifier and learnable masks over them: the output channels of ``BatchNorm2d`` layers
(ResNets and other conv nets) and the FFN neurons of transformers (ViT, BERT; see :mod:`ebyd_hf.neurons`).

A :class:`MaskedModel` multiplies each unit's output by a mask in [0, 1] (forward hooks, weights frozen, the
network held in eval mode) so that masks can be learned with the ``Trainer``; :func:`prune_units` zeroes the
chosen units of a model for good.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import TrainerCallback

from .neurons import FFNBlock, ffn_blocks, prune_ffn_neurons


@dataclass
class UnitGroup:
    """One layer of units: the channels of a ``BatchNorm2d`` (``kind="channel"``) or the neurons of an FFN block
    (``kind="neuron"``, masked at the input of its down projection)."""

    name: str
    kind: str
    module: nn.Module
    size: int
    block: FFNBlock | None = None


def prunable_units(model: nn.Module) -> list[UnitGroup]:
    """BatchNorm2d channels when the model has any, else FFN neurons; ``ValueError`` when it has neither."""
    groups = [
        UnitGroup(name, "channel", module, module.num_features)
        for name, module in model.named_modules()
        if isinstance(module, nn.BatchNorm2d)
    ]
    if groups:
        return groups
    try:
        blocks = ffn_blocks(model)
    except ValueError:
        raise ValueError(
            f"{type(model).__name__} has no prunable units: unit masks need BatchNorm2d layers (conv nets) or "
            "transformer FFN blocks. Use removal_method='finetune' for this model."
        ) from None
    return [UnitGroup(b.name, "neuron", b.down, b.size, b) for b in blocks]


class MaskedModel(nn.Module):
    """``model`` with a learnable mask per unit (initialised to 1) and every weight frozen. A channel's mask scales
    its BatchNorm weight (gamma), a neuron's mask its activation. ``train()`` keeps the wrapped network in eval mode
    (no dropout), except that with ``batch_statistics`` its BatchNorm layers normalise with batch statistics, as
    RNP's mask learning does (the running statistics of this copy then move; nothing else does).

    Example:
        >>> import torch
        >>> from ebyd_hf.vision import CifarResNetConfig, CifarResNetForImageClassification
        >>> from ebyd_hf.unit_masks import MaskedModel
        >>> masked = MaskedModel(CifarResNetForImageClassification(CifarResNetConfig(depth=20)))
        >>> sum(p.numel() for p in masked.parameters() if p.requires_grad)  # one mask per BN channel
        688
    """

    main_input_name = "pixel_values"

    def __init__(self, model: nn.Module, groups: list[UnitGroup] | None = None, batch_statistics: bool = True):
        super().__init__()
        self.model = model
        self.batch_statistics = batch_statistics
        self.config = getattr(model, "config", None)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        self.groups = groups or prunable_units(model)
        self.masks = nn.ParameterList([nn.Parameter(torch.ones(g.size, device=_device(model))) for g in self.groups])
        self._handles = [self._hook(group, mask) for group, mask in zip(self.groups, self.masks)]

    @staticmethod
    def _hook(group: UnitGroup, mask: nn.Parameter):
        if group.kind == "channel":
            # The mask scales the BN weight (gamma) and keeps the shift: m * gamma * x_hat + beta, as RNP and ANP do.
            def scale(module, inputs, out):
                bias = module.bias.view(1, -1, 1, 1)
                return (out - bias) * mask.view(1, -1, 1, 1).to(out.dtype) + bias

            return group.module.register_forward_hook(scale)
        return group.module.register_forward_pre_hook(lambda m, args: (args[0] * mask.to(args[0].dtype), *args[1:]))

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()
        if mode and self.batch_statistics:
            for group in self.groups:
                if group.kind == "channel":
                    group.module.train()
        return self

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None):
        return self.model(pixel_values=pixel_values, labels=labels)

    def clamp_(self) -> None:
        with torch.no_grad():
            for mask in self.masks:
                mask.clamp_(0.0, 1.0)

    def mask_values(self) -> list[torch.Tensor]:
        return [mask.detach().cpu().clone() for mask in self.masks]

    def remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class ClampMasksCallback(TrainerCallback):
    """Keep the masks of a :class:`MaskedModel` in [0, 1] after every optimizer step."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        while model is not None and not isinstance(model, MaskedModel) and hasattr(model, "module"):
            model = model.module
        if isinstance(model, MaskedModel):
            model.clamp_()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def prune_units(groups: list[UnitGroup], units: dict[int, list[int]]) -> int:
    """Prune the chosen units (``{group index: [unit, ...]}``) for good: a BN channel's weight (gamma) is zeroed, so
    the channel outputs its constant shift beta whatever the input (the mask at 0); an FFN neuron's input row and
    output column are zeroed. Returns how many were pruned."""
    total = 0
    for index, ids in units.items():
        if not ids:
            continue
        group = groups[index]
        if group.kind == "channel":
            idx = torch.as_tensor(ids, dtype=torch.long, device=group.module.weight.device)
            group.module.weight[idx] = 0
            total += len(ids)
        else:
            total += prune_ffn_neurons([group.block], {0: ids})
    return total


def same_units(model: nn.Module, groups: list[UnitGroup]) -> list[UnitGroup]:
    """The groups of ``model`` that correspond, by name, to ``groups`` found on a copy of it."""
    found = {g.name: g for g in prunable_units(model)}
    missing = [g.name for g in groups if g.name not in found]
    if missing:
        raise ValueError(f"The model lacks the unit layers {missing[:3]}; it is not a copy of the masked model.")
    return [found[g.name] for g in groups]


def freeze_pruned(groups: list[UnitGroup], units: dict[int, list[int]]) -> list:
    """Keep pruned units at zero while the model is fine-tuned: gradient hooks zero their gradients (and a zero
    weight stays zero under SGD/AdamW weight decay). Returns the hook handles; ``remove()`` them afterwards."""
    handles = []
    for index, ids in units.items():
        if not ids:
            continue
        group = groups[index]
        weights = (
            [group.module.weight] if group.kind == "channel" else [group.block.up.weight, group.block.down.weight]
        )
        for weight in weights:
            keep = torch.ones_like(weight)
            if group.kind == "neuron" and weight is group.block.down.weight:
                keep[:, ids] = 0
            else:
                keep[ids] = 0
            handles.append(weight.register_hook(lambda grad, keep=keep: grad * keep))
        if group.kind == "neuron" and group.block.up.bias is not None:
            keep = torch.ones_like(group.block.up.bias)
            keep[ids] = 0
            handles.append(group.block.up.bias.register_hook(lambda grad, keep=keep: grad * keep))
    return handles
