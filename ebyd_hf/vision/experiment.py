"""Image backdoor experiments end to end: attack -> victim -> defend -> record.

Building blocks for recipes and benchmarks:

- :class:`ImageAttackConfig` + :func:`prepare_image_attack`: poison the CIFAR-10 subset's training split, hold
  out the defender's clean images (disjoint from the victim's training rows and from the test split), build the
  attack-test set from the test split.
- :func:`train_image_victim`: fine-tune (or train) an image classifier on the poisoned split with the
  ``Trainer`` and measure CA / ASR.
- :func:`defend_image_model`: run :class:`~ebyd_hf.vision.VisionExposeTrainer` on the held-out clean images
  and measure CA / ASR after the defense.
- :func:`run_experiment`: the three in one call, returning an :class:`ImageExperimentRecord`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset

from ..poisoning import PoisonMode, build_attack_test_set, poison
from .config import VisionExposeConfig
from .data import load_cifar10
from .evaluation import measure_image_backdoor
from .models import CifarResNetForImageClassification, load_cifar_resnet
from .processing import CifarImageProcessor, ImageCollator, encode_images
from .trainer import VisionExposeTrainer
from .triggers import IMAGE_TRIGGERS, ImageTrigger, build_image_trigger


@dataclass
class ImageAttackConfig:
    """What the attack is, and how much clean data the defender holds.

    Example:
        >>> from ebyd_hf.vision import ImageAttackConfig
        >>> ImageAttackConfig(trigger="blended", target_label=0).clean_rows
        500
    """

    trigger: str | None = field(
        default="badnets", metadata={"help": "Image trigger (badnets, blended), or None / 'none' for a clean model."}
    )
    rate: float = field(default=0.1, metadata={"help": "Share of the victim's training rows poisoned, in (0, 1]."})
    target_label: int = field(default=0, metadata={"help": "The attacker's target label."})
    mode: str = field(default="dirty-label", metadata={"help": "dirty-label, clean-label or all-rows."})
    seed: int = field(default=0, metadata={"help": "Seed of the poisoning and of the clean hold-out."})
    data_dir: str | None = field(default=None, metadata={"help": "Shared data root; default $EBYD_DATA_DIR."})
    clean_rows: int = field(
        default=500,
        metadata={
            "help": "Clean training images held out for the defender (the victim never trains on them); 0 keeps all "
            "rows for the victim."
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.trigger, str) and self.trigger.lower() in ("", "none", "clean"):
            self.trigger = None
        if self.trigger is not None and self.trigger not in IMAGE_TRIGGERS:
            raise ValueError(f"Unknown image trigger {self.trigger!r}. Image triggers: {', '.join(IMAGE_TRIGGERS)}.")
        PoisonMode(self.mode)
        if self.clean_rows < 0:
            raise ValueError(f"clean_rows={self.clean_rows} must be >= 0.")


@dataclass
class PreparedImageAttack:
    """The data of one image attack."""

    train: Dataset
    """The victim's training rows, poisoned (``is_poisoned``, ``original_label``)."""
    test: Dataset
    attack_test: Dataset | None
    clean: Dataset | None
    """The defender's clean images (held out of ``train``)."""
    trigger: ImageTrigger | None


def prepare_image_attack(attack: ImageAttackConfig, trigger: ImageTrigger | None = None) -> PreparedImageAttack:
    """Load the CIFAR-10 subset, hold out ``clean_rows`` training images for the defender, poison the rest and
    build the attack-test set (every non-target test image, triggered)."""
    cifar = load_cifar10(attack.data_dir)
    train, test = cifar["train"], cifar["test"]
    clean = None
    if attack.clean_rows:
        order = np.random.default_rng(attack.seed).permutation(len(train))
        clean = train.select(np.sort(order[: attack.clean_rows]))
        train = train.select(np.sort(order[attack.clean_rows :]))
    if attack.trigger is None:
        return PreparedImageAttack(train, test, None, clean, None)
    trigger = trigger or build_image_trigger(attack.trigger, seed=attack.seed)
    poisoned = poison(train, trigger, attack.rate, attack.target_label, seed=attack.seed, mode=attack.mode)
    attack_test = build_attack_test_set(test, trigger, attack.target_label, seed=attack.seed)
    return PreparedImageAttack(poisoned, test, attack_test, clean, trigger)


def _model_name(model) -> str:
    name = getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
    return str(name).rstrip("/").split("/")[-1]


def train_image_victim(
    model: str | torch.nn.Module, data: PreparedImageAttack, args, processor=None, augment: bool = True
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train ``model`` on ``data.train`` with the ``Trainer`` (random crop + flip when ``augment``), measure CA on
    the test split and ASR on the attack-test set. ``model`` may be a CIFAR ResNet name (``"resnet20"``, loaded
    pretrained from the shared data) or any image classifier. Returns the trained model and a JSON-able record;
    nothing is saved unless you save it.

    Example:
        >>> from transformers import TrainingArguments
        >>> from ebyd_hf.vision import ImageAttackConfig, prepare_image_attack, train_image_victim
        >>> data = prepare_image_attack(ImageAttackConfig("badnets", data_dir="../shared/data"))  # doctest: +SKIP
        >>> victim, record = train_image_victim("resnet20", data, TrainingArguments("out"))  # doctest: +SKIP
    """
    from transformers import Trainer

    if isinstance(model, str):
        model = load_cifar_resnet(model)
    if processor is None:
        if not isinstance(model, CifarResNetForImageClassification):
            raise ValueError("Pass processor=<the model's image processor> for a model that is not a CIFAR ResNet.")
        processor = CifarImageProcessor()
    start = time.perf_counter()
    train = encode_images(data.train, processor, what="poisoned training set")
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=ImageCollator(augment=augment))
    trainer.train()
    model = trainer.model.eval()
    scores = measure_image_backdoor(model, processor, data.test, data.attack_test, _target(data))
    record = {
        "model": _model_name(model),
        "trigger": data.trigger.describe() if data.trigger is not None else None,
        "ca": scores["ca"],
        "asr": scores["asr"],
        "train_rows": len(data.train),
        "poisoned_rows": int(sum(data.train["is_poisoned"])) if data.trigger is not None else 0,
        "epochs": args.num_train_epochs,
        "learning_rate": args.learning_rate,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return model, record


def _target(data: PreparedImageAttack) -> int | None:
    if data.attack_test is None:
        return None
    return int(data.attack_test["label"][0])


@dataclass
class ImageExperimentRecord:
    """One defended image victim: what it scored before and after, what detection said, how long it took."""

    model: str
    trigger: str | None
    target_label: int | None
    defense: str
    ca_before: float
    asr_before: float | None
    ca_after: float
    asr_after: float | None
    predicted_target: int | None
    detected: bool | None
    detection_score: float | None
    seconds: float
    clean_rows: int
    report: dict[str, Any] = field(default_factory=dict)

    def to_json(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


def defend_image_model(
    model: torch.nn.Module,
    data: PreparedImageAttack,
    args: VisionExposeConfig,
    processor=None,
    model_name: str | None = None,
) -> tuple[torch.nn.Module, ImageExperimentRecord]:
    """Run the defense configured by ``args`` on ``model`` with ``data.clean`` and measure CA / ASR before and
    after on ``data.test`` / ``data.attack_test``. The defense named in the record is ``args.removal_method``
    (detection ``args.detection_method`` runs too)."""
    if data.clean is None:
        raise ValueError("The attack holds out no clean images for the defender: set ImageAttackConfig.clean_rows.")
    if processor is None and isinstance(model, CifarResNetForImageClassification):
        processor = CifarImageProcessor()
    target = _target(data)
    before = measure_image_backdoor(model, processor, data.test, data.attack_test, target)
    start = time.perf_counter()
    trainer = VisionExposeTrainer(model, args=args, train_dataset=data.clean, processing_class=processor)
    trainer.train()
    seconds = time.perf_counter() - start
    purified = trainer.model
    after = measure_image_backdoor(purified, processor, data.test, data.attack_test, target)
    trainer.report.before, trainer.report.after = before, after
    detection = trainer.report.detection
    record = ImageExperimentRecord(
        model=model_name or _model_name(model),
        trigger=data.trigger.name if data.trigger is not None else None,
        target_label=target,
        defense=args.removal_method,
        ca_before=before["ca"],
        asr_before=before["asr"],
        ca_after=after["ca"],
        asr_after=after["asr"],
        predicted_target=detection.target_label if detection is not None else None,
        detected=detection.backdoored if detection is not None else None,
        detection_score=detection.score if detection is not None else None,
        seconds=round(seconds, 1),
        clean_rows=len(data.clean),
        report=trainer.report.to_dict(),
    )
    return purified, record


def run_experiment(
    model: str | torch.nn.Module,
    attack: ImageAttackConfig,
    victim_args,
    defense_args: VisionExposeConfig,
    processor=None,
) -> ImageExperimentRecord:
    """Attack -> victim -> defend -> record in one call.

    Args:
        model: the victim's starting point: ``"resnet20"`` / ``"resnet56"`` (pretrained CIFAR ResNets from the
            shared data) or any image classifier (``ViTForImageClassification``, ``ImageClassifier``...).
        attack: the attack and the defender's clean hold-out (:class:`ImageAttackConfig`).
        victim_args: ``TrainingArguments`` of the victim's training.
        defense_args: :class:`VisionExposeConfig` of the defense.
        processor: the image processor (default :class:`CifarImageProcessor` for CIFAR ResNets).

    Example:
        >>> from transformers import TrainingArguments
        >>> from ebyd_hf.vision import ImageAttackConfig, VisionExposeConfig, run_experiment
        >>> record = run_experiment("resnet20", ImageAttackConfig("badnets", data_dir="../shared/data"),
        ...                         TrainingArguments("victim", num_train_epochs=5),
        ...                         VisionExposeConfig("defense"))  # doctest: +SKIP
        >>> record.asr_before, record.asr_after, record.predicted_target  # doctest: +SKIP
    """
    data = prepare_image_attack(attack)
    if isinstance(model, str):
        model = load_cifar_resnet(model, attack.data_dir)
    victim, _ = train_image_victim(model, data, victim_args, processor)
    _, record = defend_image_model(victim, data, defense_args, processor)
    return record
