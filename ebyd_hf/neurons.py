"""Neuron-level access to transformer classifiers: the feed-forward (FFN) blocks of each layer, their activations
on data, and pruning (zeroing a neuron's input and output weights)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# (first linear, second linear) suffixes of the FFN block, per architecture family
_FFN_SUFFIXES = (
    ("intermediate.dense", "output.dense"),  # BERT, RoBERTa, MiniLM, ELECTRA, ViT
    ("ffn.lin1", "ffn.lin2"),  # DistilBERT
    ("mlp.fc1", "mlp.fc2"),  # CLIP-style / timm-style MLPs
)


@dataclass
class FFNBlock:
    """One feed-forward block: ``up`` maps hidden -> neurons, ``down`` maps neurons -> hidden."""

    name: str
    up: nn.Linear
    down: nn.Linear

    @property
    def size(self) -> int:
        return self.up.out_features


def ffn_blocks(model: nn.Module) -> list[FFNBlock]:
    """The FFN blocks of ``model``, in layer order. Raises ``ValueError`` if none is recognised."""
    modules = dict(model.named_modules())
    blocks = []
    for name, module in modules.items():
        for up_suffix, down_suffix in _FFN_SUFFIXES:
            if name.endswith(up_suffix) and isinstance(module, nn.Linear):
                prefix = name[: -len(up_suffix)]
                down = modules.get(prefix + down_suffix)
                if isinstance(down, nn.Linear) and down.in_features == module.out_features:
                    blocks.append(FFNBlock(prefix.rstrip("."), module, down))
    if not blocks:
        raise ValueError(
            f"No feed-forward blocks found in {type(model).__name__} (looked for "
            f"{', '.join(u for u, _ in _FFN_SUFFIXES)})."
        )
    return blocks


@torch.no_grad()
def mean_ffn_activations(model: nn.Module, batches, blocks: list[FFNBlock] | None = None) -> list[torch.Tensor]:
    """Mean post-GELU activation of every FFN neuron over the non-padding tokens of ``batches`` (dicts of
    model inputs). One tensor of shape (neurons,) per block."""
    blocks = blocks or ffn_blocks(model)
    sums = [torch.zeros(b.size, dtype=torch.float64) for b in blocks]
    count = [0]
    mask_holder: dict[str, torch.Tensor] = {}

    def hook(index):
        def record(module, inputs, output):
            act = F.gelu(output.float())
            mask = mask_holder.get("mask")
            if mask is not None and act.dim() == 3:
                act = act[mask.bool()]
            sums[index] += act.reshape(-1, act.shape[-1]).sum(0).double().cpu()

        return record

    handles = [b.up.register_forward_hook(hook(i)) for i, b in enumerate(blocks)]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            mask = batch.get("attention_mask")
            mask_holder["mask"] = mask
            count[0] += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
            model(**{k: v for k, v in batch.items() if k not in ("labels", "label")})
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [(s / max(count[0], 1)).float() for s in sums]


@torch.no_grad()
def prune_ffn_neurons(blocks: list[FFNBlock], neurons: dict[int, list[int]]) -> int:
    """Zero the input row and output column of each listed neuron (``{block index: [neuron, ...]}``). A pruned
    neuron outputs GELU(0) = 0 and receives no gradient, so it stays pruned through fine-tuning (no weight
    decay can revive a zero). Returns the number of neurons pruned."""
    total = 0
    for index, ids in neurons.items():
        if not ids:
            continue
        block = blocks[index]
        idx = torch.as_tensor(ids, dtype=torch.long, device=block.up.weight.device)
        block.up.weight[idx] = 0
        if block.up.bias is not None:
            block.up.bias[idx] = 0
        block.down.weight[:, idx] = 0
        total += len(ids)
    return total
