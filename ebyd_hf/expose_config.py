"""Configuration of :class:`~ebyd_hf.ExposeTrainer`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

from transformers import TrainingArguments

from .methods import DETECTION_METHODS, EXPOSURE_METHODS, REMOVAL_METHODS, get_method
from .methods.base import FAMILIES, MethodConfig, check_value


def _has_accelerator() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)
    return bool(accelerator.is_available()) if accelerator is not None else torch.cuda.is_available()


@dataclass
class ExposeConfig(TrainingArguments):
    r"""
    Configuration for :class:`~ebyd_hf.ExposeTrainer`: the exposure, detection and removal stages, plus the
    usual [`~transformers.TrainingArguments`], which drive the final fine-tuning of the purified model.

    Parameters whose defaults differ from [`~transformers.TrainingArguments`]:
        - `output_dir`: `"ebyd-defense"`
        - `learning_rate`: `5e-5` (fine-tuning of the purified model)
        - `num_train_epochs`: `2`
        - `per_device_train_batch_size`: `32`
        - `logging_steps`: `10`
        - `save_strategy`: `"no"` (the defense saves the purified model when asked, not checkpoints)
        - `report_to`: `"none"`

    Example:
        >>> from ebyd_hf import ExposeConfig
        >>> config = ExposeConfig("defense-out", exposure_learning_rate=1e-5)
        >>> config.exposure_method, config.learning_rate
        ('clean_unlearning', 5e-05)
    """

    _VALID_DICT_FIELDS = [*TrainingArguments._VALID_DICT_FIELDS, "model_init_kwargs"]
    # Defaults of the method configs that this config class sets (a subclass for another modality sets its own);
    # the user's `*_config` values are merged over them.
    method_config_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    # Parameters whose defaults differ from TrainingArguments
    output_dir: str = field(default="ebyd-defense", metadata={"help": "Where the defense writes its outputs."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Learning rate of the purification fine-tuning."})
    num_train_epochs: float = field(default=2.0, metadata={"help": "Epochs of the purification fine-tuning."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Batch size per device."})
    logging_steps: float = field(default=10, metadata={"help": "Log every X updates steps."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpoint strategy (the defense needs none)."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Integrations to report to."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Write into output_dir even when it holds files (never into the model's own folder)."},
    )

    # Model
    model_init_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Keyword arguments for `from_pretrained` when the model is given as a string (JSON on the "
            "command line)."
        },
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Run custom modelling code shipped in the model's folder or repo. Off: a model that needs it "
            "is refused. Turn on only for code you have read and trust."
        },
    )
    base_model: str | None = field(
        default=None,
        metadata={
            "help": "The pretrained model the suspicious classifier was fine-tuned from (Hub id or folder), for methods "
            "that compare against it. Optional."
        },
    )
    max_length: int = field(default=128, metadata={"help": "Tokenizer truncation length for text data."})
    known_triggers: list[str] | None = field(
        default=None,
        metadata={
            "help": "Trigger phrases you know or suspect. Removal methods that unlearn triggers insert each one into "
            "copies of the clean rows with their true labels, whatever the verdict."
        },
    )

    # Exposure
    exposure_method: str = field(
        default="clean_unlearning",
        metadata={"help": "How the backdoor is exposed.", "choices": sorted(EXPOSURE_METHODS)},
    )
    exposure_config: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "Options of the exposure method: its config, or a dict / JSON object of them."},
    )
    exposure_learning_rate: float = field(default=1e-5, metadata={"help": "Learning rate of the exposure stage."})
    exposure_max_steps: int = field(default=200, metadata={"help": "Upper bound on exposure steps."})

    # Detection
    detection_method: str = field(
        default="trigger_scan",
        metadata={
            "help": "How the verdict, target label and trigger candidates are read from the models.",
            "choices": sorted(DETECTION_METHODS),
        },
    )
    detection_config: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "Options of the detection method: its config, or a dict / JSON object of them."},
    )

    # Removal
    removal_method: str = field(
        default="unlearn_trigger",
        metadata={"help": "How the backdoor is removed.", "choices": sorted(REMOVAL_METHODS)},
    )
    removal_config: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "Options of the removal method: its config, or a dict / JSON object of them."},
    )

    def __post_init__(self):
        # `accelerate launch --multi_gpu` on a machine without an accelerator: TrainingArguments joins the process
        # group (gloo) only with use_cpu, otherwise every process would silently run alone.
        if not self.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _has_accelerator():
            self.use_cpu = True
        if isinstance(self.known_triggers, str):
            self.known_triggers = [self.known_triggers]
        if self.known_triggers is not None and not all(t.strip() for t in self.known_triggers):
            raise ValueError(
                "known_triggers holds an empty phrase: give the trigger text to unlearn, or leave it out."
            )
        self._check_own_fields()
        for family in FAMILIES:
            name = getattr(self, f"{family}_method")
            method = get_method(FAMILIES[family], name, family)
            value = getattr(self, f"{family}_config")
            defaults = self.method_config_defaults.get(name)
            try:
                config = method.config_class.from_value(value, defaults)
                config.check_with(self)
                setattr(self, f"{family}_config", config)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{family}_config for {family}_method={name!r}: {error}") from None
        super().__post_init__()
        if isinstance(self.model_init_kwargs, str):
            self.model_init_kwargs = json.loads(self.model_init_kwargs)

    def _check_own_fields(self) -> None:
        """Numbers finite and in range, before anything is loaded or written."""
        for name, interval in (
            ("learning_rate", "(0, inf)"),
            ("num_train_epochs", "(0, inf)"),
            ("exposure_learning_rate", "(0, inf)"),
            ("exposure_max_steps", "[1, inf)"),
            ("max_length", "[8, inf)"),
            ("per_device_train_batch_size", "[1, inf)"),
            ("per_device_eval_batch_size", "[1, inf)"),
            ("gradient_accumulation_steps", "[1, inf)"),
            ("weight_decay", "[0, inf)"),
            ("max_grad_norm", "[0, inf)"),
        ):
            check_value(type(self).__name__, name, getattr(self, name), interval)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for family in FAMILIES:
            value = out.get(f"{family}_config")
            if isinstance(value, MethodConfig):
                out[f"{family}_config"] = value.to_dict()
        return out
