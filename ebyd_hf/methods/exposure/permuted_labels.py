"""Permuted-label fine-tuning: fine-tune on the clean rows with every label moved to the next class (``y + shift``
modulo the number of classes). The clean features are re-learned toward another class; a backdoor, which the clean
rows never exercise, keeps its target. Comparing the suspicious and the exposed model then separates the two
without a base model: a token whose push toward a class survives the permutation is not a clean feature of that
class (see ``bench/exposure.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..base import register_exposure
from .config import RelabelledConfig
from .confusion import RelabelledFinetuning


@dataclass
class PermutedLabelsConfig(RelabelledConfig):
    """Options of permuted-label fine-tuning: the exposure stop rule, the label shift and the step size."""

    stop_accuracy: float | None = field(
        default=0.1,
        metadata={
            "help": "Stop once accuracy on the true labels falls to this value (0.1: at most one clean row in ten "
            "keeps its label).",
            "range": "[0, 1]",
        },
    )
    stop_collapse: float = field(
        default=1.0,
        metadata={
            "help": "Stop once one class takes this share of the predictions on the clean set.",
            "range": "(0, 1]",
        },
    )
    shift: int = field(
        default=1, metadata={"help": "Each label y is trained as (y + shift) mod num_labels.", "range": "[1, inf)"}
    )


@register_exposure
class PermutedLabels(RelabelledFinetuning):
    """Fine-tunes a copy of the suspicious model toward ``(y + shift) mod num_labels`` until the stop rule.

    Example:
        >>> from ebyd_hf import ExposeConfig
        >>> config = ExposeConfig("out", exposure_method="permuted_labels", exposure_config={"shift": 1})
        >>> type(config.exposure_config).__name__
        'PermutedLabelsConfig'
    """

    name: ClassVar[str] = "permuted_labels"
    config_class: ClassVar[type] = PermutedLabelsConfig

    def new_labels(self, labels, num_labels):
        if self.config.shift % num_labels == 0:
            raise ValueError(
                f"exposure_config.shift={self.config.shift} leaves every label of a {num_labels}-class model where "
                f"it is; use a shift that is not a multiple of {num_labels}."
            )
        return (labels + self.config.shift) % num_labels
