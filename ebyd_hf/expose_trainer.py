"""``ExposeTrainer``: Expose Before You Defend as a ``transformers.Trainer``.

The defense has stages, and every stage that trains runs through ``Trainer.train`` on a copy of the model: a
short-lived ``Trainer`` built from the stage's arguments, whose ``compute_loss`` / ``training_step`` hooks the
stage's method provides (:class:`~ebyd_hf.methods.base.StageHooks`), so mixed precision, gradient accumulation,
logging and DDP behave as they do for any ``Trainer``:

1. ``expose()``: the exposure method (default Clean Unlearning: gradient ascent on the clean data) runs
   until its stop rule; the result is the *exposed* model and a trace of the exposure curve.
2. ``detect()``: the detection method reads the suspicious and exposed models and returns a verdict.
3. ``purify()``: the removal method edits a copy of the suspicious model and fine-tunes it through
   :meth:`ExposeTrainer.finetune` (optionally with the activeness regulariser).

``train()`` runs all three and leaves the purified model in ``trainer.model``, so ``save_model`` and
``push_to_hub`` save the purified model. The user's model object and files are never modified.
"""

from __future__ import annotations

import copy
import importlib
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    DataCollatorWithPadding,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
)
from transformers.trainer_utils import IntervalStrategy, SaveStrategy, SchedulerType, TrainOutput
from transformers.utils import logging

from .callbacks import ExposureStopCallback, ExposureTraceCallback
from .data import check_texts
from .evaluation import measure_backdoor, predict
from .expose_config import ExposeConfig
from .files import check_output_dir, load_sequence_classifier
from .labels import align_labels, check_same_labels, model_label_names
from .methods import REMOVAL_METHODS, get_method
from .methods.base import FAMILIES, DetectionMethod, ExposureMethod, RemovalMethod, StageHooks
from .metrics import attack_success_rate
from .report import DefenseReport, DetectionResult, TriggerCandidate

logger = logging.get_logger(__name__)

TOKENIZED_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "label", "labels")


@dataclass
class ExposureResult:
    """The exposed model and the exposure curve (one record per stop-rule check)."""

    model: torch.nn.Module
    trace: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    stopped_by: str = "max_steps"


def is_sequence_classifier(model: Any) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        return False
    return type(model).__name__ in set(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values()) or type(
        model
    ).__name__.endswith("ForSequenceClassification")


def exposure_metrics(num_labels: int) -> Callable:
    """``compute_metrics`` of the exposure stage: clean accuracy and the share of predictions per class."""

    def compute(eval_pred) -> dict[str, float]:
        logits, labels = eval_pred[0], eval_pred[1]
        logits = logits[0] if isinstance(logits, tuple) else logits
        preds = np.asarray(logits).argmax(-1)
        shares = np.bincount(preds, minlength=num_labels) / len(preds)
        out = {"accuracy": float((preds == np.asarray(labels)).mean()), "max_class_share": float(shares.max())}
        out.update({f"share_{c}": float(s) for c, s in enumerate(shares)})
        return out

    return compute


class ExposeTrainer(Trainer):
    """Expose, detect and remove backdoors in a sequence classifier with a few hundred clean examples.

    Args:
        model: the suspicious classifier, a ``PreTrainedModel`` or a Hub id / local folder (loaded with
            ``AutoModelForSequenceClassification``). It is copied: the object you pass is never modified.
        args: an :class:`ExposeConfig` (default: ``ExposeConfig("<model>-ebyd")``).
        train_dataset: the clean defense set, with ``text`` and ``label`` columns (tokenized here with
            ``processing_class``) or already tokenized (``input_ids``, ``label``).
        eval_dataset: optional clean data for ``evaluate()``; same formats.
        processing_class: the tokenizer (default: the model's, when ``model`` is a string).
        peft_config: optional ``peft`` config; the purification fine-tuning then trains adapters (merged into
            the purified model at the end).

    Example:
        >>> from ebyd_hf import ExposeConfig, ExposeTrainer, load_task
        >>> clean = load_task("sst2")["validation"].shuffle(seed=0).select(range(500))
        >>> trainer = ExposeTrainer("victims/minilm-word", args=ExposeConfig("purified"),
        ...                         train_dataset=clean)  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
        >>> trainer.report.verdict, trainer.report.detection.target_label  # doctest: +SKIP
        ('backdoored', 1)
    """

    _tag_names = ["ebyd", "backdoor-defense"]
    modality: ClassVar[str] = "text"
    """What the trainer defends; methods declare the modalities they work on (``ExposureMethod.modalities``)."""

    def __init__(
        self,
        model: PreTrainedModel | str,
        args: ExposeConfig | None = None,
        data_collator=None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        processing_class=None,
        compute_metrics: Callable | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple = (None, None),
        preprocess_logits_for_metrics: Callable | None = None,
        peft_config=None,
    ):
        if args is None:
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "model")
            args = ExposeConfig(f"{str(name).rstrip('/').split('/')[-1]}-ebyd")
        elif not isinstance(args, ExposeConfig):
            raise ValueError(
                f"args must be an ExposeConfig, got {type(args).__name__}. "
                "Build one with ExposeConfig(output_dir, ...)."
            )
        self.exposure_method, self.detection_method, self.removal_method = self._build_methods(args)
        model_name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", type(model).__name__)
        if isinstance(model, str):
            model, processing_class = self._load_model(model, processing_class, args)
        self._check_model(model)
        self.known_triggers = self._encode_known_triggers(args, processing_class)
        self.model_name = str(model_name)
        check_output_dir(args.output_dir, inputs=[self.model_name], overwrite=args.overwrite_output_dir)
        self._written: set[str] = set()  # folders this trainer wrote, which it may write again
        self.num_labels = int(model.config.num_labels)
        # The suspicious model, as given: every stage works on copies of it, the user's object stays untouched.
        self.suspicious_model = copy.deepcopy(model)
        self.suspicious_model.eval()
        self.peft_config = peft_config

        if train_dataset is None:
            raise ValueError("ExposeTrainer needs train_dataset=<the clean defense set> (text and label columns).")
        train_dataset = self._prepare_dataset(train_dataset, processing_class, args, "train_dataset")
        if isinstance(eval_dataset, dict):
            eval_dataset = {
                k: self._prepare_dataset(v, processing_class, args, f"eval_dataset[{k!r}]")
                for k, v in eval_dataset.items()
            }
        elif eval_dataset is not None:
            eval_dataset = self._prepare_dataset(eval_dataset, processing_class, args, "eval_dataset")
        if data_collator is None:
            data_collator = self._default_collator(processing_class)

        output_existed = os.path.exists(args.output_dir)
        self._building = True
        super().__init__(
            model=copy.deepcopy(model),
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        )
        if not output_existed and os.path.isdir(args.output_dir) and not os.listdir(args.output_dir):
            os.rmdir(args.output_dir)  # Trainer makes it eagerly; the defense writes only when asked to save
        self._building = False
        self._stage_callbacks = list(callbacks or [])
        self._probe_dataset = self._probe_order(train_dataset)
        self.exposure: ExposureResult | None = None
        self.detection: DetectionResult | None = None
        self.report = DefenseReport(
            model=self.model_name,
            clean_rows=len(train_dataset),
            versions=_versions(),
            label_names=model_label_names(model.config),
        )

    def _build_methods(self, args: ExposeConfig) -> tuple[ExposureMethod, DetectionMethod, RemovalMethod]:
        """The three methods named in ``args``, built with their configs; a method for another modality is
        refused before any work."""
        methods = []
        for family in ("exposure", "detection", "removal"):
            registry, name = FAMILIES[family], getattr(args, f"{family}_method")
            cls = get_method(registry, name, family)
            if self.modality not in cls.modalities:
                fitting = sorted(n for n, m in registry.items() if self.modality in m.modalities)
                raise ValueError(
                    f"The {family} method {name!r} works on {'/'.join(cls.modalities)} models, not on "
                    f"{self.modality} models. Use one of: {', '.join(fitting)}."
                )
            methods.append(cls(getattr(args, f"{family}_config")))
        return tuple(methods)

    # ------------------------------------------------------------------------- modality hooks (text here)
    def _load_model(self, name: str, processing_class, args: ExposeConfig) -> tuple[torch.nn.Module, Any]:
        """The model (and its processing class, unless given) named by a Hub id or local folder; its own code runs
        only with ``trust_remote_code=True``."""
        model, tokenizer = load_sequence_classifier(
            name, trust_remote_code=args.trust_remote_code, **(args.model_init_kwargs or {})
        )
        return model, processing_class if processing_class is not None else tokenizer

    def init_hf_repo(self, token: str | None = None, private: bool | None = None):
        """Create the Hub repository only when something is pushed (``push_to_hub()``), never when the trainer is
        built: a defense that finds nothing, or only scans, creates no repository."""
        if getattr(self, "_building", False):
            return None
        return super().init_hf_repo(token=token, private=private)

    def _check_model(self, model) -> None:
        if not is_sequence_classifier(model):
            raise ValueError(
                f"ExposeTrainer defends sequence classifiers; got {type(model).__name__}. Load the model "
                "with AutoModelForSequenceClassification (image classifiers: ebyd_hf.vision.VisionExposeTrainer)."
            )

    def _default_collator(self, processing_class):
        if processing_class is None:
            raise ValueError("Pass processing_class=<the model's tokenizer> to collate the clean set.")
        return DataCollatorWithPadding(processing_class)

    def _encode_dataset(self, dataset: Dataset, tokenizer, args: ExposeConfig, what: str) -> Dataset:
        """The model's inputs and ``label``: text is tokenized (unless ``input_ids`` are given)."""
        if "input_ids" not in dataset.column_names:
            if "text" not in dataset.column_names:
                raise ValueError(f"{what} needs a 'text' column (or 'input_ids').")
            if tokenizer is None:
                raise ValueError(f"Pass processing_class=<tokenizer> to tokenize {what}.")
            check_texts(dataset["text"], what)
            length = self._text_length(args, what)
            dataset = dataset.map(  # in memory: a dataset loaded from the user's folder gets no cache file beside it
                lambda b: tokenizer(b["text"], truncation=True, max_length=length),
                batched=True,
                keep_in_memory=True,
                desc=f"Tokenizing {what}",
            )
        return dataset.select_columns([c for c in dataset.column_names if c in TOKENIZED_COLUMNS])

    def _encode_known_triggers(self, args: ExposeConfig, tokenizer) -> list[TriggerCandidate]:
        """``args.known_triggers`` as trigger candidates (``sources`` ``["known"]``), checked up front."""
        if not args.known_triggers:
            return []
        if not self.removal_method.uses_known_triggers:
            users = sorted(n for n, m in REMOVAL_METHODS.items() if m.uses_known_triggers)
            raise ValueError(
                f"known_triggers are unlearned by removal_method {' or '.join(map(repr, users))}, not by "
                f"{args.removal_method!r}: change the removal method or leave known_triggers out."
            )
        if tokenizer is None:
            raise ValueError("known_triggers are text: pass processing_class=<the model's tokenizer>.")
        records = []
        for phrase in args.known_triggers:
            ids = tokenizer(phrase, add_special_tokens=False)["input_ids"]
            if not ids:
                raise ValueError(f"known trigger {phrase!r} tokenizes to nothing: give its text as it appears.")
            records.append(TriggerCandidate(phrase, list(ids), target=-1, score=float("nan"), sources=["known"]))
        return records

    def _text_length(self, args: ExposeConfig, what: str) -> int:
        """Truncation length of text rows: ``max_length``, less the room detection and unlearning need to insert a
        trigger (a phrase or template, and the soft trigger's vectors) when the model's positions would not hold
        it (``max_length=512`` on a 512-position BERT)."""
        positions = getattr(self.suspicious_model.config, "max_position_embeddings", None)
        if not positions:
            return args.max_length
        longest_known = max((len(t.token_ids) for t in self.known_triggers), default=0)
        room = max(self.detection_method.insertion_room(), longest_known) + self.removal_method.insertion_room()
        limit = positions - 2 - room  # 2: RoBERTa-style position offsets
        if args.max_length <= limit:
            return args.max_length
        if limit < 8:
            raise ValueError(
                f"The model has {positions} positions: too few to insert triggers into {what}. Lower "
                "the detection or removal method's trigger lengths (detection_config, removal_config)."
            )
        logger.warning(
            f"max_length={args.max_length} leaves no room to insert triggers within the model's {positions} "
            f"positions: {what} is truncated to {limit} tokens."
        )
        return limit

    def _probe_order(self, train_dataset: Dataset) -> Dataset:
        """The clean set as the stop rule and ``clean_batches`` read it: sorted by length, so batches pad little."""
        lengths = [len(ids) for ids in train_dataset["input_ids"]]
        return train_dataset.select(np.argsort(lengths, kind="stable"), keep_in_memory=True)

    # ----------------------------------------------------------------------------------------- data
    def _prepare_dataset(self, dataset: Dataset, tokenizer, args: ExposeConfig, what: str) -> Dataset:
        if not isinstance(dataset, Dataset):
            raise ValueError(f"{what} must be a datasets.Dataset, got {type(dataset).__name__}.")
        if len(dataset) == 0:
            raise ValueError(f"{what} is empty: give a few hundred clean labelled examples.")
        if "label" not in dataset.column_names and "labels" in dataset.column_names:
            dataset = dataset.rename_column("labels", "label")
        if "label" not in dataset.column_names:
            raise ValueError(f"{what} has no 'label' column (columns: {', '.join(dataset.column_names)}).")
        dataset = align_labels(dataset, self.suspicious_model.config, what)
        labels = np.asarray(dataset["label"])
        if what == "train_dataset" and len(set(labels.tolist())) < 2:
            raise ValueError(
                f"{what} holds one class only ({labels[0]}); the defense needs clean examples of at least two classes."
            )
        return self._encode_dataset(dataset, tokenizer, args, what)

    # --------------------------------------------------------------------------------- stage plumbing
    def fresh_copy(self) -> torch.nn.Module:
        """A trainable copy of the suspicious model on the training device."""
        model = copy.deepcopy(self.suspicious_model)
        model.train()
        return model.to(self.args.device)

    def stage_args(self, **overrides) -> ExposeConfig:
        """The trainer's arguments with ``overrides``, for one stage. A shallow copy keeps the already set-up
        device and distributed state (re-running ``TrainingArguments.__post_init__`` would reset it)."""
        args = copy.copy(self.args)
        for name, value in overrides.items():
            if not hasattr(args, name):
                raise ValueError(f"{name!r} is not a TrainingArguments field.")
            setattr(args, name, value)
        return args

    def run_stage(
        self,
        model: torch.nn.Module,
        args: ExposeConfig,
        hooks: StageHooks | None = None,
        callbacks: list[TrainerCallback] = (),
        train_dataset: Dataset | None = None,
        eval_dataset=None,
        compute_metrics=None,
        before: Callable[[Trainer], bool] | None = None,
    ) -> tuple[Trainer, TrainOutput | None]:
        """Train ``model`` in place through ``Trainer.train`` of a short-lived :class:`StageTrainer` built from
        ``args`` (:meth:`stage_args`), with the method's ``hooks``, the stage's ``callbacks`` and the user's, on
        ``train_dataset`` (default: the clean set). ``before(stage)`` runs first and may skip training by returning
        False. The stage writes nothing: it works in a temporary folder and never pushes."""
        with tempfile.TemporaryDirectory(prefix="ebyd-stage-") as folder:
            args = copy.copy(args)
            args.output_dir, args.push_to_hub = folder, False
            args.save_strategy, args.load_best_model_at_end = SaveStrategy.NO, False
            with _keep_random_state():  # the stage continues the defense's random stream; Trainer() would reseed
                stage = StageTrainer(
                    model=model,
                    args=args,
                    data_collator=self.data_collator,
                    train_dataset=train_dataset if train_dataset is not None else self.train_dataset,
                    eval_dataset=eval_dataset,
                    processing_class=self.processing_class,
                    compute_metrics=compute_metrics,
                    callbacks=[*self._stage_callbacks, *callbacks],
                    hooks=hooks,
                )
            output = stage.train() if before is None or before(stage) else None
        model.eval()
        return stage, output

    # ------------------------------------------------------------------------------------------ stages
    def expose(self) -> ExposureResult:
        """Run the exposure method on a copy of the suspicious model. Returns the exposed model and its trace."""
        start = time.perf_counter()
        method, config = self.exposure_method, self.exposure_method.config
        overrides = dict(
            learning_rate=self.args.exposure_learning_rate,
            max_steps=self.args.exposure_max_steps,
            max_grad_norm=config.max_grad_norm,
            eval_strategy=IntervalStrategy.STEPS,
            eval_steps=config.eval_steps,
            lr_scheduler_type=SchedulerType.CONSTANT,
            warmup_steps=0,
            weight_decay=0.0,
        )
        overrides.update(method.training_overrides(self.args))
        stop_accuracy = config.stop_accuracy if config.stop_accuracy is not None else 1.0 / self.num_labels
        stop = ExposureStopCallback(stop_accuracy, config.stop_collapse)
        trace = ExposureTraceCallback()

        def not_collapsed_yet(stage: Trainer) -> bool:  # the trace callback records this step-0 check
            if stop.should_stop(stage.evaluate()):
                stop.reason = "already collapsed before exposure"
                return False
            return True

        model = self.fresh_copy()
        self.run_stage(
            model,
            self.stage_args(**overrides),
            hooks=method,
            callbacks=[stop, trace, *method.callbacks()],
            eval_dataset=self._probe_dataset,
            compute_metrics=exposure_metrics(self.num_labels),
            before=not_collapsed_yet,
        )
        self.exposure = ExposureResult(
            model=model,
            trace=trace.records,
            steps=trace.records[-1]["step"],
            stopped_by=stop.reason or "exposure_max_steps",
        )
        self.report.exposure_method = method.name
        self.report.exposure_trace = trace.records
        self.report.timings["expose"] = round(time.perf_counter() - start, 2)
        return self.exposure

    def detect(self, exposure: ExposureResult | None = None) -> DetectionResult:
        """Run the detection method: is the suspicious model backdoored, which label is targeted, what does the
        trigger look like. Exposes first if needed and not done yet."""
        start = time.perf_counter()
        method = self.detection_method
        if exposure is None and method.uses_exposure:
            exposure = self.exposure or self.expose()
        self.detection = method.detect(self, exposure)
        self.report.detection_method = method.name
        self.report.detection = self.detection
        self.report.timings["detect"] = round(time.perf_counter() - start, 2)
        return self.detection

    def purify(
        self, exposure: ExposureResult | None = None, detection: DetectionResult | None = None
    ) -> torch.nn.Module:
        """Run the removal method on a copy of the suspicious model and return the purified model (also left in
        ``trainer.model`` for ``save_model`` / ``push_to_hub``)."""
        start = time.perf_counter()
        method = self.removal_method
        if exposure is None and method.uses_exposure:
            exposure = self.exposure or self.expose()
        model, account = method.purify(self, exposure, detection if detection is not None else self.detection)
        check_finite(model, f"the model purified by {method.name!r}")
        self.model = self.model_wrapped = model
        self.callback_handler.model = model
        self.report.removal_method = method.name
        self.report.removal = account
        self.report.timings["purify"] = round(time.perf_counter() - start, 2)
        return model

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None) -> TrainOutput:
        """Run the whole defense: expose (when the detection or removal method reads the exposed model), detect,
        purify. The purified model ends in ``trainer.model``; what was found and done is in ``trainer.report``.
        Returns the purification fine-tuning's ``TrainOutput`` (its steps and mean loss; 0 steps when the removal
        method did not fine-tune), with the whole defense's ``train_runtime``."""
        if resume_from_checkpoint not in (None, False) or trial is not None:
            raise ValueError(
                "ExposeTrainer.train() runs the defense from the start; it has no checkpoints to "
                "resume and no hyperparameter search."
            )
        start = time.perf_counter()
        self._finetune_output = None
        uses_exposure = self.detection_method.uses_exposure or self.removal_method.uses_exposure
        exposure = self.expose() if uses_exposure else None
        detection = self.detect(exposure)
        self.purify(exposure, detection)
        seconds = time.perf_counter() - start
        self.report.timings["total"] = round(seconds, 2)
        finetuned = self._finetune_output
        steps, loss = (finetuned.global_step, finetuned.training_loss) if finetuned is not None else (0, 0.0)
        return TrainOutput(steps, loss, {"train_runtime": seconds, "train_loss": loss})

    def measure(
        self,
        test_dataset: Dataset,
        attack_dataset: Dataset | None = None,
        target_label: int | None = None,
        description: str | None = None,
        trigger: str | None = None,
        reference_model: torch.nn.Module | None = None,
        reference_processing_class=None,
    ) -> dict[str, dict[str, Any]]:
        """CA on ``test_dataset`` (and ASR on ``attack_dataset``, triggered rows labelled ``target_label``) of the
        suspicious model and of ``trainer.model`` (the purified model once :meth:`purify` ran); both are recorded
        in ``trainer.report.before`` / ``.after`` with the data they were measured on (``description``, and the
        ``trigger`` family's name for the ASR).

        ``reference_model``: a never-poisoned classifier of the same task (same label ids), read with
        ``reference_processing_class`` (default: the trainer's tokenizer). Its ASR on ``attack_dataset`` is the
        floor (``asr_floor``: its own errors, and rows the trigger really changed), and each model's ``excess_asr``
        = ASR - floor is what the backdoor accounts for (:func:`~ebyd_hf.metrics.excess_attack_success_rate`).

        ``target_label`` and ``attack_dataset`` are in the model's label ids: build the attack set from a test set
        whose labels are the model's (``test_dataset`` is aligned by name here; an attack set is not relabelled).

        Example:
            >>> trainer.train()  # doctest: +SKIP
            >>> trainer.measure(sst2["test"], attack_test, target_label=1)  # doctest: +SKIP
            {'before': {'ca': 0.878, 'asr': 1.0, ...}, 'after': {'ca': 0.88, 'asr': 0.04, ...}}
        """
        if self.processing_class is None:
            raise ValueError("measure() reads raw text; pass processing_class=<the tokenizer> to the trainer.")
        for name, data in (("test_dataset", test_dataset), ("attack_dataset", attack_dataset)):
            if data is not None and "text" not in data.column_names:
                raise ValueError(f"{name} needs a `text` column (raw text, as load_task returns it).")
        test_dataset = align_labels(test_dataset, self.suspicious_model.config, "test_dataset")
        if target_label is not None and target_label not in range(self.num_labels):
            raise ValueError(f"target_label={target_label} is not a label of the model (0..{self.num_labels - 1}).")
        rows = {"ca_rows": len(test_dataset), "asr_rows": None if attack_dataset is None else len(attack_dataset)}
        if description:
            rows["data"] = description
        if trigger and attack_dataset is not None:
            rows["trigger"], rows["target_label"] = trigger, target_label
        if reference_model is not None:
            check_same_labels(
                self.suspicious_model.config, getattr(reference_model, "config", None), "reference_model"
            )
        if reference_model is not None and attack_dataset is not None:
            tokenizer = reference_processing_class or self.processing_class
            predictions = predict(  # on the device the user put it: their object is not moved
                reference_model,
                tokenizer,
                attack_dataset["text"],
                batch_size=self.args.per_device_eval_batch_size,
                max_length=self.args.max_length,
            )
            rows["asr_floor"] = attack_success_rate(predictions, target_label)
        out = {}
        models = {"before": self.suspicious_model}
        if self.report.removal_method is not None:
            models["after"] = self.model
        for when, model in models.items():
            scores = measure_backdoor(
                model,
                self.processing_class,
                test_dataset,
                attack_dataset,
                target_label,
                batch_size=self.args.per_device_eval_batch_size,
                max_length=self.args.max_length,
            )
            out[when] = {**scores, **rows}
            if rows.get("asr_floor") is not None and scores["asr"] is not None:
                out[when]["excess_asr"] = scores["asr"] - rows["asr_floor"]
            setattr(self.report, when, out[when])
        return out

    # ------------------------------------------------------------------------------------ saving, Hub
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the purified model and tokenizer (as ``Trainer.save_model``) and, beside them, the defense report
        (``defense_report.json`` / ``.md``) and the exposure plot (``exposure.png``) when there is one."""
        output_dir = output_dir or self.args.output_dir
        if self.is_world_process_zero():  # the one process that writes; the others would see its files
            self._check_output(output_dir)
        super().save_model(output_dir, _internal_call=_internal_call)
        if self.is_world_process_zero() and (self.report.detection or self.report.removal_method):
            from .model_card import EXPOSURE_PLOT, REPORT_JSON, REPORT_MARKDOWN

            self.report.to_json(os.path.join(output_dir, REPORT_JSON))
            with open(os.path.join(output_dir, REPORT_MARKDOWN), "w", encoding="utf-8") as f:
                f.write(self.report.to_markdown())
            if self.report.exposure_trace:
                self.report.plot_exposure(os.path.join(output_dir, EXPOSURE_PLOT))

    def _check_output(self, output_dir: str) -> None:
        """The one guard of every write (:func:`~ebyd_hf.files.check_output_dir`): never the model's folder, never a
        non-empty folder this trainer did not write, unless ``overwrite_output_dir``."""
        resolved = os.path.realpath(output_dir)
        overwrite = self.args.overwrite_output_dir or resolved in self._written
        check_output_dir(output_dir, inputs=[self.model_name], overwrite=overwrite)
        self._written.add(resolved)

    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
    ) -> None:
        """Write ``README.md`` in ``output_dir``: the defense's model card (verdict, what was pruned or reset and
        fine-tuned, CA/ASR before and after, versions, citation), with card metadata tags ``ebyd`` and
        ``backdoor-defense``. ``push_to_hub()`` calls this and uploads it with the model and the report."""
        if not self.is_world_process_zero():
            return
        from .model_card import EXPOSURE_PLOT, render_model_card

        output_dir = self.args.output_dir
        name = model_name or (self.args.hub_model_id or os.path.basename(os.path.abspath(output_dir))).split("/")[-1]
        datasets = [dataset] if isinstance(dataset, str) else dataset
        card = render_model_card(
            self.report,
            model_name=name,
            repo_id=self.args.hub_model_id,
            base_model=finetuned_from or self.model_name,  # the purified model derives from the suspicious one
            datasets=datasets,
            plot=os.path.exists(os.path.join(output_dir, EXPOSURE_PLOT)),
            extra_tags=[tags] if isinstance(tags, str) else tags,
            pipeline_tag="image-classification" if self.modality == "image" else "text-classification",
        )
        self._check_output(output_dir)
        os.makedirs(output_dir, exist_ok=True)
        card.save(os.path.join(output_dir, "README.md"))

    def clean_batches(
        self, model: torch.nn.Module | None = None, size: int | None = None
    ) -> Iterator[dict[str, torch.Tensor]]:
        """The clean set as padded batches of ``size`` rows (default ``per_device_eval_batch_size``) on the model's
        device (sorted by length), for methods that read activations or gradients outside the training loop."""
        device = next((model or self.model).parameters()).device
        dataset = self._probe_dataset
        size = size or self.args.per_device_eval_batch_size
        for start in range(0, len(dataset), size):
            batch = self.data_collator([dataset[i] for i in range(start, min(start + size, len(dataset)))])
            yield {k: v.to(device) for k, v in batch.items()}

    def load_base_model(self) -> torch.nn.Module | None:
        """The pretrained model named by ``args.base_model`` (loaded once), or ``None`` when none is given."""
        if self.args.base_model is None:
            return None
        if getattr(self, "_base_model", None) is None:
            from transformers import AutoModel

            try:
                self._base_model = AutoModel.from_pretrained(
                    self.args.base_model, trust_remote_code=self.args.trust_remote_code
                ).eval()
            except (OSError, ValueError) as error:
                raise ValueError(f"base_model={self.args.base_model!r} could not be loaded: {error}") from error
        return self._base_model

    def finetune(
        self,
        model: torch.nn.Module,
        hooks: StageHooks | None = None,
        train_dataset: Dataset | None = None,
        **overrides,
    ) -> torch.nn.Module:
        """Fine-tune ``model`` on the clean set (or ``train_dataset``) with the trainer's own arguments
        (learning_rate, num_train_epochs, ...; ``overrides`` change some, as :meth:`stage_args`) through
        ``Trainer.train``; the removal method's ``hooks`` change its loss or step (the activeness regulariser, a soft
        trigger). With a ``peft_config``, adapters are trained and merged. The stage's state becomes
        ``trainer.state`` (its ``log_history``)."""
        if self.peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, self.peft_config)
        stage, output = self.run_stage(
            model,
            self.stage_args(**overrides) if overrides else self.args,
            hooks=hooks,
            train_dataset=train_dataset,
            eval_dataset=self.eval_dataset,
            compute_metrics=self.compute_metrics,
        )
        self.state, self._finetune_output = stage.state, output
        if self.peft_config is not None:
            model = model.merge_and_unload()
        model.eval()
        return model

    def train_stage(
        self,
        model: torch.nn.Module,
        args: ExposeConfig,
        callbacks: list[TrainerCallback] = (),
        train_dataset: Dataset | None = None,
    ) -> torch.nn.Module:
        """Train ``model`` through ``Trainer.train`` with one stage's arguments (:meth:`stage_args`) and callbacks,
        on ``train_dataset`` (default: the clean set): for methods that learn something of their own (unit
        masks, a reference model...), so they need no loop of their own."""
        self.run_stage(model, args, callbacks=list(callbacks), train_dataset=train_dataset)
        return model


class StageTrainer(Trainer):
    """The ``Trainer`` of one defense stage: plain ``Trainer`` training, whose loss and step the stage's method may
    change through its :class:`~ebyd_hf.methods.base.StageHooks`. Non-finite losses stop the stage."""

    def __init__(self, *args, hooks: StageHooks | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.hooks = hooks
        # Hooks return a per-batch mean; let Trainer scale it for gradient accumulation.
        self.model_accepts_loss_kwargs = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = None if self.hooks is None else self.hooks.compute_loss(self, model, inputs, return_outputs)
        if out is None:
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = out[0] if return_outputs else out
        if model.training and not torch.isfinite(loss).all():
            raise FloatingPointError(
                f"The training loss became {loss.item()} at step {self.state.global_step}: lower the stage's "
                f"learning rate (now {self.args.learning_rate}). Nothing was saved."
            )
        return out

    def training_step(self, model, inputs, num_items_in_batch=None):
        step = super().training_step
        out = None if self.hooks is None else self.hooks.training_step(self, model, inputs, num_items_in_batch, step)
        return out if out is not None else step(model, inputs, num_items_in_batch)


def check_finite(model: torch.nn.Module, what: str) -> None:
    """Refuse a model with a NaN or infinite weight: it must never be saved or reported as purified."""
    bad = [name for name, p in model.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]
    if bad:
        raise FloatingPointError(
            f"{what} has non-finite weights ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); it is not "
            "saved. Lower the learning rates or the removal method's perturbation sizes (removal_config)."
        )


@contextmanager
def _keep_random_state() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's random state after the block (building a ``Trainer`` reseeds them)."""
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _versions() -> dict[str, str]:
    out = {}
    for name in ("ebyd_hf", "transformers", "torch", "datasets", "accelerate", "peft"):
        try:
            out[name] = importlib.import_module(name).__version__
        except (ImportError, AttributeError):
            pass
    return out
