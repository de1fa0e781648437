"""Registries of defense methods. A method registers itself with one decorator; the trainer looks it up by
the name in :class:`~ebyd_hf.ExposeConfig`. Adding a method means adding a file, not editing the trainer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import TrainerCallback

    from ..expose_trainer import ExposeTrainer, ExposureResult
    from ..report import DetectionResult

EXPOSURE_METHODS: dict[str, type[ExposureMethod]] = {}
DETECTION_METHODS: dict[str, type[DetectionMethod]] = {}
REMOVAL_METHODS: dict[str, type[RemovalMethod]] = {}


def _registrar(registry: dict, family: str):
    def register(cls):
        if cls.name in registry:
            raise ValueError(f"A {family} method named {cls.name!r} is registered already.")
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


class ExposureMethod(ABC):
    """Turns a copy of the suspicious model into an exposed model through the Trainer's loop: the trainer
    calls :meth:`compute_loss` for every batch of the clean set and stops by the exposure stop rule."""

    name: ClassVar[str]
    modalities: ClassVar[tuple[str, ...]] = ("text", "image")
    """The kinds of model the method works on (``ExposeTrainer.modality``); the trainer refuses the others."""

    def training_overrides(self, args) -> dict[str, Any]:
        """``TrainingArguments`` fields set for the exposure stage (learning rate, steps, clipping...)."""
        return {}

    def callbacks(self) -> list[TrainerCallback]:
        return []

    @abstractmethod
    def compute_loss(self, trainer: ExposeTrainer, model, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        """The exposure loss of one batch, and the model outputs."""


class DetectionMethod(ABC):
    """Reads the suspicious and exposed models (and the clean set) and returns a verdict."""

    name: ClassVar[str]
    uses_exposure: ClassVar[bool] = True
    modalities: ClassVar[tuple[str, ...]] = ("text", "image")

    @abstractmethod
    def detect(self, trainer: ExposeTrainer, exposure: ExposureResult) -> DetectionResult: ...


class RemovalMethod(ABC):
    """Returns a purified copy of the suspicious model; fine-tuning goes through ``trainer.finetune``."""

    name: ClassVar[str]
    modalities: ClassVar[tuple[str, ...]] = ("text", "image")
    uses_exposure: ClassVar[bool] = True
    """Baselines that ignore the exposed model set this to False (the trainer then skips exposure for them)."""
    uses_known_triggers: ClassVar[bool] = False
    """Whether the method unlearns ``ExposeConfig.known_triggers`` (the trainer refuses them otherwise)."""

    @abstractmethod
    def purify(
        self, trainer: ExposeTrainer, exposure: ExposureResult | None, detection: DetectionResult | None
    ) -> tuple[torch.nn.Module, dict[str, Any]]:
        """The purified model and a JSON-able account of what was changed."""
