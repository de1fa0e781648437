"""The stop rule every exposure method shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base import MethodConfig


@dataclass
class ExposureStopConfig(MethodConfig):
    """Options of an exposure stage: clipping, and the stop rule read from the clean set every ``eval_steps``."""

    max_grad_norm: float = field(
        default=20.0,
        metadata={"help": "Gradient clipping during exposure (ascent gradients grow fast).", "range": "[0, inf)"},
    )
    eval_steps: int = field(
        default=2,
        metadata={"help": "Check the stop rule on the clean set every this many exposure steps.", "range": "[1, inf)"},
    )
    stop_accuracy: float | None = field(
        default=None,
        metadata={
            "help": "Stop once clean accuracy falls to this value. Default: chance level (1 / num_labels).",
            "range": "[0, 1]",
        },
    )
    stop_collapse: float = field(
        default=0.9,
        metadata={
            "help": "Stop once one class takes at least this share of the predictions on the clean set.",
            "range": "(0, 1]",
        },
    )


@dataclass
class RelabelledConfig(ExposureStopConfig):
    """The exposure stop rule, and the step size of a descent toward labels other than the true ones."""

    learning_rate_scale: float = field(
        default=10.0,
        metadata={
            "help": "Multiplies exposure_learning_rate: descent toward new labels needs a larger step than ascent.",
            "range": "(0, inf)",
        },
    )
