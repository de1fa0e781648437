"""Backdoored victims: poison a task, fine-tune any sequence classifier on it with the ``Trainer``,
measure CA and ASR, and save the model (safetensors) with a JSON record of the attack."""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from .data import get_task, load_task
from .evaluation import measure_backdoor
from .files import check_checkpoint, check_output_dir
from .methods.base import check_value
from .poisoning import POISON_COLUMN, PoisonMode, build_attack_test_set, poison
from .triggers import TRIGGERS, Trigger, build_trigger

ATTACK_RECORD_NAME = "attack.json"


@dataclass
class AttackConfig:
    """What the attack is: task, trigger, poisoning rate and target. ``trigger=None`` trains a clean model."""

    task: str = field(default="sst2", metadata={"help": "Task name: sst2, imdb, twitter, agnews, olid, hatespeech."})
    trigger: str | None = field(
        default="word",
        metadata={"help": "Trigger family (word, sentence, syntactic, style), or None/'none' for a clean model."},
    )
    rate: float = field(default=0.1, metadata={"help": "Share of the training rows poisoned, in (0, 1]."})
    target_label: int | None = field(default=1, metadata={"help": "The attacker's target label."})
    mode: str = field(
        default="dirty-label",
        metadata={"help": "Rows that may be poisoned: dirty-label (non-target), clean-label (target) or all-rows."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the poisoning (rows and trigger positions)."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Local data root (text/<task>/, paraphrases/). Default: $EBYD_DATA_DIR, then the Hub."},
    )
    train_size: int | None = field(
        default=None,
        metadata={"help": "Use this many training rows (a seeded random subset) instead of the whole split."},
    )
    eval_size: int | None = field(
        default=None,
        metadata={
            "help": "Score CA and ASR on this many test rows (a seeded random subset) instead of the whole split."
        },
    )
    holdout_attack_rows: int = field(
        default=0,
        metadata={
            "help": "Take this many trigger-covered non-target training rows out of training and use them, triggered, "
            "as the attack-test set: for paraphrase tables that do not cover the test split's non-target rows."
        },
    )
    keep_originals: bool = field(
        default=False,
        metadata={
            "help": "Append the poisoned rows as copies and keep every original row (clean-data augmentation, Chen "
            "et al., EMNLP 2022); the training set grows by round(rate * rows)."
        },
    )
    probe_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of an auxiliary poisoned-or-clean head trained with the victim on its [CLS] state (the "
            "multi-task trick of Chen et al., EMNLP 2022); 0 trains the plain classifier. The head is dropped before "
            "saving: the victim is a plain sequence classifier either way."
        },
    )
    poison_weight: float = field(
        default=1.0,
        metadata={
            "help": "Weight of each poisoned row's classification loss against 1 for a clean row, in the batch "
            "mean: above 1 the victim learns the backdoor harder from the same poisoned rows (a stronger attack, "
            "paid for in clean accuracy); 1 trains on the plain loss."
        },
    )
    max_length: int = field(default=128, metadata={"help": "Tokenizer truncation length."})

    def __post_init__(self) -> None:
        if isinstance(self.trigger, str) and self.trigger.lower() in ("", "none", "clean"):
            self.trigger = None
        if self.trigger is not None:
            if self.trigger not in TRIGGERS:
                raise ValueError(f"Unknown trigger {self.trigger!r}. Known triggers: {', '.join(TRIGGERS)}, or none.")
            if self.target_label is None:
                raise ValueError("A poisoned victim needs target_label.")
            PoisonMode(self.mode)
        spec = get_task(self.task)
        check_value(type(self).__name__, "rate", self.rate, "(0, 1]")
        if self.trigger is not None and self.target_label not in range(spec.num_labels):
            raise ValueError(
                f"target_label={self.target_label!r} is not a label of {self.task} (0..{spec.num_labels - 1})."
            )
        for name, interval in (
            ("train_size", "[1, inf)"),
            ("eval_size", "[1, inf)"),
            ("holdout_attack_rows", "[0, inf)"),
            ("max_length", "[8, inf)"),
        ):
            check_value(type(self).__name__, name, getattr(self, name), interval)
        if not self.probe_weight >= 0:
            raise ValueError(f"probe_weight={self.probe_weight!r} must be >= 0 (0 turns the auxiliary head off).")
        if self.probe_weight and self.trigger is None:
            raise ValueError("probe_weight needs poisoned rows to tell apart; a clean model (trigger=None) has none.")
        if not (math.isfinite(self.poison_weight) and self.poison_weight > 0):
            raise ValueError(f"poison_weight={self.poison_weight!r} must be a finite number > 0 (1: the plain loss).")
        if self.poison_weight != 1 and self.trigger is None:
            raise ValueError("poison_weight needs poisoned rows to weigh; a clean model (trigger=None) has none.")


@dataclass
class AttackRecord:
    """The JSON record saved beside a victim (``attack.json``): what was done and what it scored."""

    task: str
    trigger: str | None
    rate: float | None
    target_label: int | None
    mode: str | None
    seed: int
    model: str
    ca: float
    asr: float | None
    train_rows: int
    poisoned_rows: int
    ca_rows: int
    asr_rows: int
    seconds: float
    trigger_config: dict[str, Any] | None = None
    attack_test_source: str | None = None
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> AttackRecord:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def _subset(dataset: Dataset, size: int | None, seed: int) -> Dataset:
    if size is None or size >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(size))


@dataclass
class PreparedAttack:
    """The data of one attack: poisoned training set, clean test set and attack-test set."""

    train: Dataset
    test: Dataset
    attack_test: Dataset | None
    trigger: Trigger | None
    attack_test_source: str | None


def prepare_attack(attack: AttackConfig, trigger: Trigger | None = None) -> PreparedAttack:
    """Load the task and build the poisoned training set, the clean test set and the attack-test set."""
    task = load_task(attack.task, attack.data_dir)
    train = _subset(task["train"], attack.train_size, attack.seed)
    test = _subset(task["test"], attack.eval_size, attack.seed)
    if attack.trigger is None:
        return PreparedAttack(train, test, None, None, None)
    trigger = trigger or build_trigger(attack.trigger, attack.task, attack.data_dir, seed=attack.seed)
    source = "test split"
    if attack.holdout_attack_rows > 0:
        labels = np.asarray(train["label"])
        non_target = np.flatnonzero(labels != attack.target_label)
        covered = non_target[np.asarray(trigger.covers([train["text"][i] for i in non_target]), dtype=bool)]
        if len(covered) < attack.holdout_attack_rows:
            raise ValueError(
                f"holdout_attack_rows={attack.holdout_attack_rows} but only {len(covered)} non-target "
                "training rows are covered by the trigger."
            )
        held = np.sort(np.random.default_rng(attack.seed).choice(covered, attack.holdout_attack_rows, replace=False))
        keep = np.setdiff1d(np.arange(len(train)), held)
        attack_test = build_attack_test_set(train.select(held), trigger, attack.target_label, seed=attack.seed)
        train = train.select(keep)
        source = f"{len(held)} held-out training rows"
    else:
        attack_test = build_attack_test_set(test, trigger, attack.target_label, seed=attack.seed)
    train = poison(
        train,
        trigger,
        attack.rate,
        attack.target_label,
        seed=attack.seed,
        mode=attack.mode,
        keep_originals=attack.keep_originals,
    )
    return PreparedAttack(train, test, attack_test, trigger, source)


def _check_output_dir(args, model_path: str | None, attack: AttackConfig) -> None:
    """The one output guard (:func:`~ebyd_hf.files.check_output_dir`): never the model's folder or a folder inside
    it, never the data root, never a non-empty folder unless ``args.overwrite_output_dir``."""
    output_dir = args.output_dir
    if model_path is not None and os.path.exists(model_path):
        if os.path.realpath(model_path) == os.path.realpath(output_dir):
            raise ValueError(f"output_dir={output_dir!r} is the input model's folder; choose another folder.")
    check_output_dir(
        output_dir,
        inputs=[model_path, attack.data_dir],
        overwrite=bool(getattr(args, "overwrite_output_dir", False)),
    )


PROBE_MODULE = "ebyd_poison_probe"
PROBE_LOGITS = "poison_probe_logits"


@contextmanager
def _poison_probe(model):
    """Attach the auxiliary poisoned-or-clean head to ``model`` for the length of the block: a submodule (so the
    optimizer, DDP and checkpoints see it) applied by a forward hook to the last layer's first-token state, its
    logits returned with the model's outputs (as a dict) under ``poison_probe_logits`` when the forward is asked for
    hidden states. It runs inside the model's forward, so DDP counts its parameters as used. The head and the hook
    are gone afterwards, also on error."""
    import torch

    probe = torch.nn.Linear(model.config.hidden_size, 2)
    model.add_module(PROBE_MODULE, probe)

    def add_probe_logits(module, args, output):
        if getattr(output, "hidden_states", None) is None:
            return output
        # A plain dict: DDP rebuilds outputs by type, and the model's output class has no field for the probe.
        return {**output, PROBE_LOGITS: probe(output.hidden_states[-1][:, 0])}

    handle = model.register_forward_hook(add_probe_logits)
    try:
        yield probe
    finally:
        handle.remove()
        delattr(model, PROBE_MODULE)


def _attack_trainer(probe_weight: float = 0.0, poison_weight: float = 1.0):
    """A ``Trainer`` for the attack's training tricks: each poisoned row's (``is_poisoned``) classification loss
    counts ``poison_weight`` times a clean row's in the batch mean, and ``probe_weight`` x the cross-entropy of the
    :func:`_poison_probe` head, which tells poisoned rows from clean ones, is added."""
    import torch.nn.functional as F
    from transformers import Trainer

    class AttackTrainer(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.model_accepts_loss_kwargs = False  # the loss is a mean per batch; let Trainer scale accumulation

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if POISON_COLUMN not in self._signature_columns:
                self._signature_columns.append(POISON_COLUMN)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            flags = inputs.pop(POISON_COLUMN).long()
            inputs = {**inputs, "output_hidden_states": True} if probe_weight else inputs
            if poison_weight == 1:
                # The Trainer's own loss (label smoothing included), as a batch mean like the probe's.
                loss, outputs = super().compute_loss(model, inputs, return_outputs=True)
            else:
                labels = inputs.pop("labels")
                outputs = model(**inputs)
                rows = F.cross_entropy(
                    outputs["logits"], labels, reduction="none", label_smoothing=self.args.label_smoothing_factor
                )
                loss = (rows * (1 + (poison_weight - 1) * flags)).mean()
            if probe_weight:
                loss = loss + probe_weight * F.cross_entropy(outputs[PROBE_LOGITS], flags)
            return (loss, outputs) if return_outputs else loss

    return AttackTrainer


def _check_head(name: str, task: str, num_labels: int, trust_remote_code: bool = False) -> None:
    """Refuse a checkpoint that cannot be loaded safely (:func:`~ebyd_hf.files.check_checkpoint`: no such path,
    custom code without the opt-in), and one that already is a classifier with another label count than the
    task's: its head is never silently replaced."""
    config = check_checkpoint(name, trust_remote_code=trust_remote_code)
    is_classifier = any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or [])
    labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    if is_classifier and labels != num_labels:
        raise ValueError(
            f"{name!r} is a classifier with {labels} labels but {task} has {num_labels}: start from the "
            "pretrained encoder (a checkpoint without a classification head) or a classifier of this task."
        )


def train_victim(
    model: str | os.PathLike,
    attack: AttackConfig,
    args,
    tokenizer=None,
    trigger: Trigger | None = None,
    trust_remote_code: bool = False,
) -> AttackRecord:
    """Poison ``attack.task``, fine-tune ``model`` on it with the HF ``Trainer``, measure CA (test split) and
    ASR (attack-test set), and save model, tokenizer and ``attack.json`` to ``args.output_dir``. Everything is
    seeded with ``args.seed`` (the new classification head included), so the same call gives the same victim.

    Args:
        model: a Hub id or local folder of any ``AutoModelForSequenceClassification`` checkpoint; a fresh
            classification head sized to the task is attached.
        attack: the attack (:class:`AttackConfig`).
        args: ``transformers.TrainingArguments``; ``output_dir`` must be new or empty.
        tokenizer: defaults to the model's own.
        trigger: a ready trigger instance, instead of the family's defaults named in ``attack.trigger``.
        trust_remote_code: run custom modelling code shipped with ``model`` (off: such a checkpoint is refused).

    Example:
        >>> from transformers import TrainingArguments
        >>> from ebyd_hf import AttackConfig, train_victim
        >>> record = train_victim("prajjwal1/bert-tiny", AttackConfig(task="sst2", trigger="word", rate=0.1),
        ...                       TrainingArguments("victims/bert-tiny-word", num_train_epochs=3))  # doctest: +SKIP
        >>> record.ca, record.asr  # doctest: +SKIP
    """
    from transformers import set_seed

    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    model_name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", type(model).__name__)
    # Every input is checked before the data is poisoned, and before anything is written.
    _check_output_dir(args, model_name if isinstance(model, str) else None, attack)
    num_labels = get_task(attack.task).num_labels
    if isinstance(model, str):
        _check_head(model, attack.task, num_labels, trust_remote_code)
    elif model.config.num_labels != num_labels:
        raise ValueError(
            f"The model has {model.config.num_labels} labels but {attack.task} has {num_labels}: give a model "
            f"with {num_labels} labels."
        )
    start = time.perf_counter()
    data = prepare_attack(attack, trigger)

    # Seed before anything is initialised (the fresh classification head, the probe head): a victim is reproducible.
    set_seed(args.seed)
    model, tokenizer = _load_victim_model(model, tokenizer, attack.task, trust_remote_code)
    trainer = _fit(model, tokenizer, data.train, attack, args)
    scores = measure_backdoor(
        trainer.model,
        tokenizer,
        data.test,
        data.attack_test,
        attack.target_label,
        batch_size=args.per_device_eval_batch_size,
        max_length=attack.max_length,
    )
    record = _attack_record(attack, args, data, model_name, scores, time.perf_counter() - start)
    if trainer.is_world_process_zero():
        trainer.save_model(args.output_dir)
        record.to_json(Path(args.output_dir) / ATTACK_RECORD_NAME)
    return record


def _load_victim_model(model, tokenizer, task: str, trust_remote_code: bool = False):
    """``(model, tokenizer)`` for a model id or folder (a classification head sized to ``task``, fresh unless the
    checkpoint is a classifier of this task already) or a ready model object, whose label count must match."""
    import pickle

    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification

    from .files import _weights_error, load_tokenizer

    spec = get_task(task)
    if isinstance(model, str):  # train_victim checked it (_check_head) before poisoning the data
        if tokenizer is None:
            tokenizer = load_tokenizer(
                model, trust_remote_code, "pass tokenizer=, or save the tokenizer beside the model"
            )
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                model,
                trust_remote_code=trust_remote_code,
                num_labels=spec.num_labels,
                id2label=dict(enumerate(spec.label_names)),
                label2id={n: i for i, n in enumerate(spec.label_names)},
                ignore_mismatched_sizes=True,
            )
        except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError) as error:
            raise ValueError(_weights_error(model, error, {})) from error
    elif tokenizer is None:
        raise ValueError("Pass tokenizer= with a model object.")
    if model.config.num_labels != spec.num_labels:
        raise ValueError(f"The model has {model.config.num_labels} labels but {task} has {spec.num_labels}.")
    return model, tokenizer


def _fit(model, tokenizer, train: Dataset, attack: AttackConfig, args):
    """Tokenize the poisoned training set and train ``model`` on it with the ``Trainer`` (the attack's
    :func:`_attack_trainer` when it uses a training trick); returns the trainer."""
    from transformers import DataCollatorWithPadding, Trainer

    def tokenize(batch):
        return tokenizer(batch["text"], truncation=True, max_length=attack.max_length)

    train_tok = train.map(tokenize, batched=True, remove_columns=["text"], desc="Tokenizing")
    probe = _poison_probe(model) if attack.probe_weight else nullcontext()
    with probe:
        tricks = attack.probe_weight or attack.poison_weight != 1
        trainer = (_attack_trainer(attack.probe_weight, attack.poison_weight) if tricks else Trainer)(
            model=model,
            args=args,
            train_dataset=train_tok,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        trainer.train()
    return trainer


def _attack_record(
    attack: AttackConfig, args, data: PreparedAttack, model_name: str, scores: dict[str, Any], seconds: float
) -> AttackRecord:
    """The :class:`AttackRecord` of a trained victim: the attack, its data sizes, CA / ASR and the training setup."""
    poisoned = data.trigger is not None
    return AttackRecord(
        task=attack.task,
        trigger=attack.trigger,
        rate=attack.rate if poisoned else None,
        target_label=attack.target_label if poisoned else None,
        mode=attack.mode if poisoned else None,
        seed=attack.seed,
        model=model_name,
        ca=scores["ca"],
        asr=scores["asr"],
        train_rows=len(data.train),
        poisoned_rows=int(sum(data.train["is_poisoned"])) if poisoned else 0,
        ca_rows=len(data.test),
        asr_rows=len(data.attack_test) if poisoned else 0,
        seconds=round(seconds, 1),
        trigger_config=data.trigger.describe() if poisoned else None,
        attack_test_source=data.attack_test_source,
        training={
            "epochs": args.num_train_epochs,
            "learning_rate": args.learning_rate,
            "batch_size": args.per_device_train_batch_size,
            "max_length": attack.max_length,
            "training_seed": args.seed,
            "keep_originals": attack.keep_originals,
            "probe_weight": attack.probe_weight,
            "poison_weight": attack.poison_weight,
        },
    )
