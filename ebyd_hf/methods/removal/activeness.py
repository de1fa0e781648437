"""Activeness-aware fine-tuning (TSBD): a ``training_step`` hook for removal stages."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..base import MethodConfig, StageHooks


@dataclass
class FinetuneRegularizerConfig(MethodConfig):
    """The regulariser of a removal method's fine-tuning."""

    regularizer: Literal["activeness", "none"] = field(
        default="activeness",
        metadata={
            "help": "`activeness`: penalise the gradient activeness backdoors rely on (TSBD); it runs every step "
            "twice. `none`: plain fine-tuning, about half the purification's cost (measured: the same ASR on five "
            "SST-2 victims, 0.09 more on the style victim; docs/removal.md)."
        },
    )
    activeness_alpha: float = field(
        default=0.7, metadata={"help": "Weight a of the activeness term.", "range": "[0, 1]"}
    )
    activeness_radius: float = field(
        default=0.05, metadata={"help": "Radius r of the activeness perturbation.", "range": "(0, inf)"}
    )
    activeness_interval: int = field(
        default=1,
        metadata={
            "help": "Take the perturbed second pass every this many training steps (micro-batches); the steps "
            "between reuse its correction (grad L(w + r g/|g|) - grad L(w), scaled to the step's gradient norm), so "
            "the regulariser costs 1/interval of a pass per step instead of a whole one.",
            "range": "[1, inf)",
        },
    )


class ActivenessHooks(StageHooks):
    """The update is (1-a) grad L(w) + a grad L(w + r g/|g|), which penalises the sharp, highly active directions a
    backdoor lives in. Works with gradient accumulation: only this micro-batch's gradient is combined. With
    ``interval`` k > 1 the second pass runs every k-th step; the steps between add the last correction
    a (grad L(w + r g/|g|) - grad L(w)), rescaled to their own gradient norm (as LookSAM reuses SAM's)."""

    def __init__(self, alpha: float, radius: float, interval: int = 1):
        self.alpha, self.radius, self.interval = alpha, radius, interval
        self._calls, self._correction, self._norm = 0, None, 0.0

    @classmethod
    def from_config(cls, config: FinetuneRegularizerConfig) -> ActivenessHooks | None:
        if config.regularizer != "activeness":
            return None
        return cls(config.activeness_alpha, config.activeness_radius, config.activeness_interval)

    def training_step(self, trainer, model, inputs, num_items_in_batch, step):
        params = [p for p in model.parameters() if p.requires_grad]
        before = [None if p.grad is None else p.grad.detach().clone() for p in params]
        loss = step(model, inputs, num_items_in_batch)
        first = [
            torch.zeros_like(p) if p.grad is None else (p.grad - b if b is not None else p.grad.clone())
            for p, b in zip(params, before)
        ]
        norm = torch.sqrt(sum((g.float() ** 2).sum() for g in first)).item()
        if norm == 0 or not math.isfinite(norm):
            return loss
        refresh = self._calls % self.interval == 0 or self._correction is None
        self._calls += 1
        if not refresh:
            scale = self.alpha * norm / self._norm if self._norm > 0 else 0.0
            with torch.no_grad():
                for p, g1, c, b in zip(params, first, self._correction, before):
                    combined = g1 + scale * c
                    p.grad = combined if b is None else b + combined
            return loss
        shifts = [g * (self.radius / norm) for g in first]
        with torch.no_grad():
            for p, shift, b in zip(params, shifts, before):
                p.add_(shift)
                p.grad = None if b is None else b.clone()
        step(model, inputs, num_items_in_batch)
        keep = self.interval > 1
        corrections = []
        with torch.no_grad():
            for p, shift, g1, b in zip(params, shifts, first, before):
                p.sub_(shift)
                g2 = torch.zeros_like(p) if p.grad is None else (p.grad - b if b is not None else p.grad)
                if keep:
                    corrections.append(g2 - g1)
                combined = (1 - self.alpha) * g1 + self.alpha * g2
                p.grad = combined if b is None else b + combined
        if keep:
            self._correction, self._norm = corrections, norm
        return loss
