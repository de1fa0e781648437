"""Registries of defense methods and the base classes of their configs.

A method registers itself with one decorator and brings its own config (PEFT's pattern): the trainer looks the
method up by the name in :class:`~ebyd_hf.ExposeConfig` (``exposure_method``, ``detection_method``,
``removal_method``) and builds it with the matching ``*_config`` (a :class:`MethodConfig`, or a dict / JSON string
on the command line). Adding a method means adding a file, not editing the trainer.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch

if TYPE_CHECKING:  # pragma: no cover
    from transformers import TrainerCallback

    from ..expose_trainer import ExposeTrainer, ExposureResult
    from ..report import DetectionResult

EXPOSURE_METHODS: dict[str, type[ExposureMethod]] = {}
DETECTION_METHODS: dict[str, type[DetectionMethod]] = {}
REMOVAL_METHODS: dict[str, type[RemovalMethod]] = {}
FAMILIES = {"exposure": EXPOSURE_METHODS, "detection": DETECTION_METHODS, "removal": REMOVAL_METHODS}


def _parse_range(text: str) -> tuple[float, float, bool, bool]:
    """``"(0, 1]"`` -> (0.0, 1.0, low open, high open); ``inf`` allowed."""
    low, high = (float(part.strip()) for part in text[1:-1].split(","))
    return low, high, text[0] == "(", text[-1] == ")"


def check_value(owner: str, name: str, value: Any, interval: str | None) -> None:
    """Refuse a non-finite number, or one outside ``interval`` (``"(0, 1]"``, ``"[1, inf)"``...), naming the field,
    the value and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if not math.isfinite(value):
        raise ValueError(f"{owner}.{name}={value} must be a finite number{f' in {interval}' if interval else ''}.")
    if interval is None:
        return
    low, high, low_open, high_open = _parse_range(interval)
    if value < low or value > high or (low_open and value == low) or (high_open and value == high):
        raise ValueError(f"{owner}.{name}={value} must be in {interval}.")


def check_fields(obj: Any) -> None:
    """Check every numeric field of the dataclass ``obj`` against the ``range`` of its metadata, and every
    ``Literal`` field against its choices."""
    hints = typing.get_type_hints(type(obj))
    owner = type(obj).__name__
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        check_value(owner, f.name, value, f.metadata.get("range"))
        choices = _literal_choices(hints.get(f.name))
        if choices and value not in choices:
            raise ValueError(f"{owner}.{f.name}={value!r}: choose one of {', '.join(map(repr, choices))}.")


def _literal_choices(hint) -> tuple | None:
    """The choices of a ``Literal[...]`` type hint (also inside ``Optional``), else None."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if typing.get_origin(arg) is Literal:
                return typing.get_args(arg)
    return None


@dataclass
class MethodConfig:
    """Base of every method's config: typed fields, each with ``metadata={"help": ...}`` and, for numbers, a
    ``"range"`` (``"(0, 1]"``). Values are checked at construction (finite, in range, one of the choices).

    Build one directly, or from a dict / JSON string (as the command line gives it) with :meth:`from_value`,
    which refuses unknown keys and builds nested configs."""

    def __post_init__(self):
        check_fields(self)

    @classmethod
    def from_value(cls, value: MethodConfig | dict | str | None, defaults: dict | None = None) -> MethodConfig:
        """``value`` as this config: an instance of it is returned as is; a dict or a JSON object string is
        merged over ``defaults`` (nested dicts for nested configs) and validated; ``None`` gives the defaults."""
        if isinstance(value, cls):
            return value
        if isinstance(value, MethodConfig):
            raise ValueError(f"Expected a {cls.__name__}, got a {type(value).__name__}: it configures another method.")
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as error:
                raise ValueError(f"{cls.__name__}: {value!r} is not a JSON object ({error.msg}).") from None
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{cls.__name__} takes a dict or a JSON object, got {type(value).__name__}.")
        merged = {**(defaults or {}), **(value or {})}
        return cls._build(merged)

    @classmethod
    def _build(cls, values: dict) -> MethodConfig:
        known = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(
                f"{cls.__name__} has no option {', '.join(map(repr, unknown))}. Its options: {', '.join(known)}."
            )
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, value in values.items():
            nested = hints.get(name)
            if isinstance(value, dict) and isinstance(nested, type) and issubclass(nested, MethodConfig):
                value = nested._build(value)
            kwargs[name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check_with(self, args) -> None:
        """Checks that need the rest of the run's arguments (``ExposeConfig``), called when it is built."""


def _registrar(registry: dict, family: str):
    def register(cls):
        if cls.name in registry:
            raise ValueError(f"A {family} method named {cls.name!r} is registered already.")
        if not (isinstance(cls.config_class, type) and issubclass(cls.config_class, MethodConfig)):
            raise TypeError(f"{cls.__name__}.config_class must be a MethodConfig subclass.")
        registry[cls.name] = cls
        return cls

    return register


register_exposure = _registrar(EXPOSURE_METHODS, "exposure")
register_detection = _registrar(DETECTION_METHODS, "detection")
register_removal = _registrar(REMOVAL_METHODS, "removal")


def get_method(registry: dict, name: str, family: str):
    if name not in registry:
        raise ValueError(f"Unknown {family} method {name!r}. Registered: {', '.join(sorted(registry))}.")
    return registry[name]


def progress(trainer, description: str, total: int):
    """A progress bar for a stage that does not run through the ``Trainer``'s loop (a scan, a search), shown like
    the ``Trainer``'s own bars: on the main process, unless ``disable_tqdm``. Use as a context manager."""
    from tqdm.auto import tqdm

    args = trainer.args
    hidden = bool(getattr(args, "disable_tqdm", False)) or not trainer.is_world_process_zero()
    return tqdm(total=total, desc=description, disable=hidden, leave=False)


class Method(ABC):
    """What every method shares: a registered ``name``, the ``config_class`` it is built with, and the kinds of
    model it works on."""

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    modalities: ClassVar[tuple[str, ...]] = ("text", "image")
    """The kinds of model the method works on (``ExposeTrainer.modality``); the trainer refuses the others."""

    def __init__(self, config: MethodConfig | None = None):
        self.config = self.config_class.from_value(config)

    def insertion_room(self) -> int:
        """Tokens the method may insert into a clean row (text): the trainer truncates rows to leave that room."""
        return 0


class StageHooks:
    """What a training stage does differently from plain ``Trainer`` training, as the stage's ``Trainer`` calls it:
    a loss (``compute_loss``) and a step (``training_step``). Returning ``None`` keeps the ``Trainer``'s own."""

    def compute_loss(self, trainer, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        return None

    def training_step(self, trainer, model, inputs, num_items_in_batch, step):
        """``step(model, inputs, num_items_in_batch)`` is the ``Trainer``'s own step (backward included)."""
        return None


class ExposureMethod(Method, StageHooks):
    """Turns a copy of the suspicious model into an exposed model through the Trainer's loop: the stage's
    ``Trainer`` takes :meth:`loss` for every training batch of the clean set (evaluation, which reads the stop rule,
    keeps the plain loss), and the stage stops by the exposure stop rule (``config``: an ``ExposureStopConfig``)."""

    def training_overrides(self, args) -> dict[str, Any]:
        """``TrainingArguments`` fields set for the exposure stage beyond the stop rule's."""
        return {}

    def callbacks(self) -> list[TrainerCallback]:
        return []

    @abstractmethod
    def loss(self, trainer, model, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        """The exposure loss of one batch, and the model outputs."""

    def compute_loss(self, trainer, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:
            return None
        loss, outputs = self.loss(trainer, model, inputs)
        if not torch.isfinite(loss).all():
            raise FloatingPointError(
                f"The exposure loss became {loss.item()} at step {trainer.state.global_step}. Lower "
                f"exposure_learning_rate (now {trainer.args.learning_rate}) or exposure_config.max_grad_norm."
            )
        return (loss, outputs) if return_outputs else loss


class DetectionMethod(Method):
    """Reads the suspicious and exposed models (and the clean set) and returns a verdict."""

    uses_exposure: ClassVar[bool] = True

    @abstractmethod
    def detect(self, trainer: ExposeTrainer, exposure: ExposureResult | None) -> DetectionResult: ...


class RemovalMethod(Method):
    """Returns a purified copy of the suspicious model; fine-tuning goes through ``trainer.finetune``."""

    uses_exposure: ClassVar[bool] = True
    """Baselines that ignore the exposed model set this to False (the trainer then skips exposure for them)."""
    uses_known_triggers: ClassVar[bool] = False
    """Whether the method unlearns ``ExposeConfig.known_triggers`` (the trainer refuses them otherwise)."""

    @abstractmethod
    def purify(
        self, trainer: ExposeTrainer, exposure: ExposureResult | None, detection: DetectionResult | None
    ) -> tuple[torch.nn.Module, dict[str, Any]]:
        """The purified model and a JSON-able account of what was changed."""
