"""The defense as one experiment: the engine behind ``recipes/*.py`` and ``ebyd-hf scan`` / ``purify`` / ``poison``.

Each entry point takes the dataclasses its command line parses into (:class:`ScanArguments`,
:class:`PurifyArguments`, :class:`DefenseArguments` for the recipes, :class:`PoisonArguments`) and an
:class:`~ebyd_hf.ExposeConfig`.

- :func:`run_scan`: detect a backdoor in a suspicious model on a clean set (exposing it first when the detection
  method reads the exposed model); write the JSON report.
- :func:`run_defense`: expose -> detect -> purify (``ExposeTrainer.train()``), measure CA (and ASR when a trigger
  is named), save the purified model, report and model card in ``output_dir``, push them when ``--push_to_hub``.
  ``mode=benchmark`` builds the attack first (poison the task, train the victim with ``train_victim`` into
  ``<output_dir>/_victim``, a folder the Hub upload skips), then defends it, as one reproducible experiment.
- :func:`run_poison`: a poisoned copy of a task, saved with ``save_to_disk``.

Works the same under ``python`` and ``accelerate launch`` (DDP): every process runs the defense, only the main
process writes files and pushes. Every input is checked before anything is written.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset

from .data import DATA_DIR_ENV, TASKS, check_texts, get_task, load_task
from .expose_config import ExposeConfig
from .files import _first_line, check_output_dir, check_output_file, load_sequence_classifier
from .poisoning import PoisonMode
from .report import DefenseReport
from .triggers import TRIGGERS

DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")
DEFAULT_RATES = {"word": 0.1, "sentence": 0.1, "syntactic": 0.2, "style": 0.2}
PARAPHRASE_TRIGGERS = ("syntactic", "style")


@dataclass
class DataArguments:
    """The suspicious model and the clean data"""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "The suspicious sequence classifier: a local folder or a Hub id."},
    )
    data: str | None = field(
        default=None,
        metadata={
            "metavar": "TASK_OR_FILE",
            "help": f"A task ({', '.join(TASKS)}): its validation split gives the clean set, its test split the "
            "CA/ASR data. Or your own clean labelled set: a save_to_disk folder or a .csv/.tsv/.json/.jsonl file "
            "with text and label columns.",
        },
    )
    data_dir: str | None = field(
        default=None, metadata={"help": f"Local data root of the tasks (default: ${DATA_DIR_ENV}, then the Hub)."}
    )
    clean_size: int = field(default=500, metadata={"help": "Clean labelled rows the defense may use."})
    clean_seed: int = field(default=0, metadata={"help": "Seed of the clean subset (shuffled, then the first N)."})
    clean_split: str = field(
        default="validation",
        metadata={"help": "Split of a task the clean subset is drawn from.", "choices": ["validation", "train"]},
    )
    context_data: str | None = field(
        default=None,
        metadata={
            "help": "Texts to look the trigger candidates up in, such as the suspicious model's fine-tuning data "
            "(same formats as --data; a text column is enough): each candidate is reported with the phrase its "
            "rows share."
        },
    )

    def __post_init__(self):
        if self.data is None:
            raise ValueError(f"Give --data: a task ({', '.join(TASKS)}) or your own clean set (file or folder).")
        if self.data not in TASKS and not os.path.exists(self.data):
            raise ValueError(f"--data {self.data}: no such file or folder, and not a task ({', '.join(TASKS)}).")
        if self.data not in TASKS:
            check_data_path(self.data, "--data")
        if self.context_data is not None:
            check_data_path(self.context_data, "--context_data")
        if self.needs_model and self.model_name_or_path is None:
            raise ValueError("Give the suspicious model: --model_name_or_path <folder or Hub id>.")
        if self.needs_model and not str(self.model_name_or_path).strip():
            raise ValueError("--model_name_or_path is empty; give the model's folder or Hub id.")
        if self.clean_size < 2:
            raise ValueError(f"clean_size={self.clean_size}: the defense needs at least 2 clean rows.")
        if self.clean_seed < 0:
            raise ValueError(f"clean_seed={self.clean_seed} must be 0 or more.")
        if self.data_dir is not None and not os.path.isdir(self.data_dir):
            raise ValueError(f"--data_dir {self.data_dir}: no such folder; give the shared data root (text/<task>/).")

    @property
    def task(self) -> str | None:
        """The task ``data`` names, or ``None`` for the user's own data."""
        return self.data if self.data in TASKS else None

    @property
    def clean_data(self) -> str | None:
        """The user's own clean set (file or folder), or ``None`` for a task's split."""
        return None if self.data in TASKS else self.data

    @property
    def needs_model(self) -> bool:
        return True

    @property
    def is_benchmark(self) -> bool:
        return False

    def inputs(self) -> list[str | None]:
        """The user's files and folders the run reads: never written, never an output folder."""
        return [self.model_name_or_path, self.clean_data, self.context_data, self.data_dir]


@dataclass
class ScanArguments(DataArguments):
    """The suspicious model, the clean data and the scan's report"""

    report: str | None = field(
        default=None,
        metadata={"help": "Where the JSON report is written (default: <model folder name>-scan.json here)."},
    )
    overwrite_report: bool = field(default=False, metadata={"help": "Replace an existing report file."})

    def report_path(self) -> str:
        return self.report or f"{Path(self.model_name_or_path).name or 'model'}-scan.json"


@dataclass
class PurifyArguments(DataArguments):
    """The suspicious model, the clean data, and the data CA/ASR are measured on"""

    test_data: str | None = field(
        default=None, metadata={"help": "Your own test set for CA (and ASR with --trigger); same formats as --data."}
    )
    eval_size: int | None = field(
        default=None, metadata={"help": "Score CA/ASR on this many test rows (a seeded subset); default: all."}
    )
    trigger: str | None = field(
        default=None,
        metadata={
            "help": "A trigger family to measure ASR with (and the benchmark's attack).",
            "choices": [*TRIGGERS],
        },
    )
    target_label: int | None = field(default=None, metadata={"help": "The attack's target label (with --trigger)."})
    reference_model: str | None = field(
        default=None,
        metadata={
            "help": "A never-poisoned model of the same task (folder or Hub id): its ASR on the attack rows is the "
            "floor, and the report and card give the excess ASR over it (with --trigger)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.reference_model is not None and self.trigger is None:
            raise ValueError("--reference_model is the floor of the ASR: give --trigger and --target_label as well.")
        if self.test_data is not None:
            check_data_path(self.test_data, "--test_data")
        if self.eval_size is not None and self.eval_size < 1:
            raise ValueError(f"eval_size={self.eval_size}: score on at least 1 row, or leave it unset for all.")
        if self.trigger is not None and self.target_label is None:
            raise ValueError(f"--trigger {self.trigger} needs --target_label to measure ASR.")
        if self.trigger is not None and self.task is None and self.test_data is None:
            raise ValueError(
                f"--trigger {self.trigger} measures ASR on test rows: give --test_data FILE (your own data has no "
                "test split)."
            )
        if self.target_label is not None and self.target_label < 0:
            raise ValueError(f"target_label={self.target_label} must be a label id (0, 1, ...).")

    def inputs(self) -> list[str | None]:
        return [*super().inputs(), self.test_data, self.reference_model]


@dataclass
class DefenseArguments(PurifyArguments):
    """What to defend (or, with mode=benchmark, to attack first) and on which data"""

    mode: str = field(
        default="defend",
        metadata={
            "help": "defend a given model, or benchmark (attack, then defend).",
            "choices": ["defend", "benchmark"],
        },
    )
    rate: float | None = field(
        default=None, metadata={"help": "benchmark: poisoning rate (default 0.1 word/sentence, 0.2 paraphrases)."}
    )
    poison_mode: str | None = field(
        default=None,
        metadata={
            "help": "benchmark: which rows are poisoned (default: all-rows for paraphrases, else dirty-label).",
            "choices": [mode.value for mode in PoisonMode],
        },
    )
    victim_train_size: int | None = field(
        default=None, metadata={"help": "benchmark: training rows of the victim (seeded subset; default all)."}
    )
    victim_epochs: float = field(default=3.0, metadata={"help": "benchmark: victim training epochs."})
    victim_learning_rate: float = field(default=5e-5, metadata={"help": "benchmark: victim learning rate."})

    def __post_init__(self):
        super().__post_init__()
        if self.is_benchmark and (self.task is None or self.trigger is None or self.target_label is None):
            raise ValueError("mode=benchmark poisons a task: give --data <task>, --trigger and --target_label.")
        if self.rate is not None and not 0 < self.rate <= 1:  # also refuses nan
            raise ValueError(f"rate={self.rate} must be in (0, 1].")
        for name in ("victim_epochs", "victim_learning_rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value} must be a positive number.")
        if self.victim_train_size is not None and self.victim_train_size < 1:
            raise ValueError(f"victim_train_size={self.victim_train_size} must be at least 1.")

    @property
    def needs_model(self) -> bool:
        return not self.is_benchmark

    @property
    def is_benchmark(self) -> bool:
        return self.mode == "benchmark"


def clean_subset(dataset: Dataset, size: int, seed: int, what: str = "clean split") -> Dataset:
    """``size`` rows of ``dataset``, shuffled with ``seed``: the defender's clean labelled data."""
    if size > len(dataset):
        raise ValueError(f"clean_size={size} but the {what} has only {len(dataset)} rows; lower --clean_size.")
    return dataset.shuffle(seed=seed).select(range(size))


def check_data_path(path: str, option: str) -> None:
    """A data file or folder the command line names: it must exist, and a file must have a format it reads."""
    if not os.path.exists(path):
        raise ValueError(f"{option} {path}: no such file or folder.")
    suffix = Path(path).suffix.lower()
    if os.path.isfile(path) and suffix not in DATA_SUFFIXES:
        raise ValueError(
            f"{option} {path}: unsupported file type {suffix or '(none)'!r}; use {', '.join(DATA_SUFFIXES)} or a "
            "save_to_disk folder."
        )


def load_local_dataset(
    path: str, columns: tuple[str, ...] = ("text", "label"), splits: tuple[str, ...] = ("validation", "train", "test")
) -> Dataset:
    """A labelled dataset from a ``save_to_disk`` folder (a ``DatasetDict`` gives the first of ``splits`` it has:
    validation, else train) or a .csv / .tsv / .json / .jsonl file, checked for ``columns`` (``text`` and
    ``label``), for rows, and for an empty or non-text ``text`` and a missing ``label`` in any row (named)."""
    source = Path(path)
    if source.is_dir():
        data = _load_saved(path, splits)
    elif source.is_file():
        data = _load_file(path)
    else:
        raise ValueError(f"{path}: no such file or folder.")
    missing = set(columns) - set(data.column_names)
    if missing:
        raise ValueError(f"{path}: needs {' and '.join(columns)} columns; missing {', '.join(sorted(missing))}.")
    if len(data) == 0:
        raise ValueError(f"{path} has no rows; give a file with a header and rows under it.")
    name = source.name or path
    if "text" in columns:
        check_texts(data["text"], name)
    if "label" in columns:
        for row, label in enumerate(data["label"], start=1):
            if label is None or (isinstance(label, float) and not math.isfinite(label)):
                raise ValueError(f"row {row} of {name} has no 'label'; fill it in or drop the row.")
    return data


def _load_saved(path: str, splits: tuple[str, ...]) -> Dataset:
    from datasets import DatasetDict, load_from_disk

    try:
        # In memory: shuffling, tokenizing or aligning a dataset read from its folder would otherwise write cache
        # files into that folder, which is the user's.
        data = load_from_disk(path, keep_in_memory=True)
    except (FileNotFoundError, ValueError, OSError) as error:
        raise ValueError(
            f"{path} is a folder but not a dataset saved with save_to_disk ({_first_line(error)}); give a "
            f"{'/'.join(DATA_SUFFIXES)} file or a save_to_disk folder."
        ) from error
    if isinstance(data, DatasetDict):
        split = next((s for s in splits if s in data), None)
        if split is None:
            raise ValueError(f"{path}: the saved DatasetDict has no {'/'.join(splits)} split.")
        data = data[split]
    return data


def _load_file(path: str) -> Dataset:
    from datasets import load_dataset

    builders = {".csv": ("csv", {}), ".tsv": ("csv", {"delimiter": "\t"}), ".json": ("json", {})}
    builders[".jsonl"] = builders[".json"]
    suffix = Path(path).suffix.lower()
    if suffix not in builders:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .json or .jsonl.")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty; give a file with a header (text, label) and at least one row.")
    builder, kwargs = builders[suffix]
    try:
        return load_dataset(builder, data_files=path, split="train", **kwargs)
    except ValueError as error:
        if "corresponds to no data" in str(error):  # datasets' words for a header and no rows
            raise ValueError(f"{path} has no rows; give a file with a header and rows under it.") from None
        raise ValueError(f"{path}: cannot read it as {suffix[1:].upper()} ({_first_line(error)}).") from error
    except Exception as error:  # the datasets builders' own errors: one line naming the file instead
        cause = error.__cause__ or error.__context__ or error
        raise ValueError(
            f"{path}: cannot read it as {suffix[1:].upper()} ({_first_line(cause)}); check that it is a valid "
            f"{suffix[1:]} file with text and label columns."
        ) from error


def add_trigger_contexts(report: DefenseReport, texts, source: str) -> None:
    """Look the report's trigger candidates up in ``texts`` (:func:`~ebyd_hf.trigger_search.trigger_contexts`):
    one readable line in ``detection.notes``, the data under ``detection.details["trigger_contexts"]``."""
    from dataclasses import asdict

    from .trigger_search import trigger_contexts

    if report.detection is None or not report.detection.trigger_candidates:
        return
    found = trigger_contexts(texts, [c.trigger for c in report.detection.trigger_candidates])
    report.detection.details["trigger_contexts"] = {
        "source": source,
        "rows": len(texts),
        "contexts": [asdict(context) for context in found],
    }
    shown = ", ".join(f'`{c.trigger}` -> "{c.phrase}" ({c.phrase_rows} of {c.rows} rows)' for c in found if c.rows)
    report.detection.notes.append(f"Trigger contexts in {source} ({len(texts)} rows): {shown or 'none found'}")


@dataclass
class DefenseSetup:
    """A ready :class:`ExposeTrainer` and the data its defense is scored on."""

    trainer: Any
    test: Dataset | None = None
    attack_test: Dataset | None = None
    description: str = ""
    context_texts: list[str] | None = None
    """``--context_data``'s texts, where the trigger candidates are looked up."""
    reference: Any = None
    """``--reference_model``, loaded as ``(model, tokenizer)``: the never-poisoned model the excess ASR is measured
    against."""


def load_clean_set(script_args: DataArguments, task) -> Dataset:
    """The defender's clean subset: ``clean_size`` rows of the user's own data or of the task's clean split."""
    if script_args.clean_data is not None:
        pool, name = load_local_dataset(script_args.clean_data), script_args.clean_data
    else:
        if script_args.clean_split not in task:
            raise ValueError(f"clean_split={script_args.clean_split!r}: {script_args.task} has {', '.join(task)}.")
        pool, name = task[script_args.clean_split], f"{script_args.task} {script_args.clean_split} split"
    return clean_subset(pool, script_args.clean_size, script_args.clean_seed, name)


def load_context_texts(script_args: DataArguments) -> list[str] | None:
    if script_args.context_data is None:
        return None
    context = load_local_dataset(script_args.context_data, ("text",), ("train", "validation", "test"))
    return list(context["text"])


def scoring_data(
    script_args: PurifyArguments, task, seed: int, model_config=None
) -> tuple[Dataset | None, Dataset | None, str]:
    """The test set CA is measured on, the triggered test set ASR is measured on (with ``--trigger``), and their
    description for the report. With ``model_config`` (the suspicious model's), the test labels are read against
    the model's labels (:func:`~ebyd_hf.labels.align_labels`) before the attack set is built from them, so a test
    set the model cannot be scored on is refused before the defense runs."""
    from .poisoning import build_attack_test_set
    from .triggers import build_trigger

    if script_args.test_data is not None:
        test, description = load_local_dataset(script_args.test_data), script_args.test_data
    elif task is not None:
        test, description = task["test"], f"{script_args.task} test split"
    else:
        return None, None, ""
    if model_config is not None:
        from .labels import align_labels

        test = align_labels(test, model_config, "--test_data" if script_args.test_data else "the test split")
    if script_args.target_label is not None and model_config is not None:
        if script_args.target_label not in range(int(model_config.num_labels)):
            raise ValueError(
                f"target_label={script_args.target_label} is not a label of the model "
                f"(0..{int(model_config.num_labels) - 1}); give one of its labels to --target_label."
            )
    if script_args.eval_size is not None and script_args.eval_size < len(test):
        test = test.shuffle(seed=seed).select(range(script_args.eval_size))
    attack_test = None
    if script_args.trigger is not None:
        trigger = build_trigger(script_args.trigger, script_args.task, script_args.data_dir, seed=seed)
        attack_test = build_attack_test_set(test, trigger, script_args.target_label, seed=seed)
    return test, attack_test, description


def load_model(model_path: str, script_args: DataArguments, config: ExposeConfig):
    """The suspicious model and its tokenizer (:func:`~ebyd_hf.files.load_sequence_classifier`), its label count
    checked against the task's."""
    model, tokenizer = load_sequence_classifier(
        model_path, trust_remote_code=config.trust_remote_code, **(config.model_init_kwargs or {})
    )
    num_labels = get_task(script_args.task).num_labels if script_args.task else None
    if num_labels is not None and model.config.num_labels != num_labels:
        raise ValueError(
            f"{model_path!r} has {model.config.num_labels} labels but {script_args.task} has {num_labels}; pick "
            "the matching task, or give your own data with --data FILE."
        )
    return model, tokenizer


def build_trainer(model_path: str, script_args: DataArguments, config: ExposeConfig, clean: Dataset, loaded=None):
    """Load the suspicious model (:func:`load_model`, unless ``loaded`` gives it as ``(model, tokenizer)``) and
    wrap it in an :class:`ExposeTrainer`. The trainer is built with ``push_to_hub`` off, so no Hub repository is
    created before :func:`publish` pushes."""
    from .expose_trainer import ExposeTrainer

    model, tokenizer = loaded or load_model(model_path, script_args, config)
    push, config.push_to_hub = config.push_to_hub, False
    try:
        return ExposeTrainer(model, config, train_dataset=clean, processing_class=tokenizer)
    finally:
        config.push_to_hub = push


def _recorded_base_model(folder: str) -> str | None:
    """The checkpoint a victim was fine-tuned from, when its folder holds an ``attack.json`` (train_victim)."""
    record = Path(folder) / "attack.json"
    if not record.is_file():
        return None
    try:
        values = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{record} cannot be read ({_first_line(error)}); remove it, or pass --base_model yourself."
        ) from error
    base = values.get("model") if isinstance(values, dict) else None
    return base if isinstance(base, str) else None


def _benchmark_victim(script_args: DefenseArguments, config: ExposeConfig):
    """Train the victim of ``mode=benchmark``; returns its folder, the checkpoint it started from, and the
    attack's test data."""
    from accelerate import PartialState
    from transformers import TrainingArguments

    from .victim import AttackConfig, prepare_attack, train_victim

    source = script_args.model_name_or_path
    if source is None:
        from .demo import default_model

        source = default_model()
    trigger = script_args.trigger
    attack = AttackConfig(
        task=script_args.task,
        trigger=trigger,
        rate=script_args.rate if script_args.rate is not None else DEFAULT_RATES.get(trigger, 0.1),
        target_label=script_args.target_label,
        mode=script_args.poison_mode or ("all-rows" if trigger in PARAPHRASE_TRIGGERS else "dirty-label"),
        data_dir=script_args.data_dir,
        train_size=script_args.victim_train_size,
        eval_size=script_args.eval_size,
        max_length=config.max_length,
        seed=config.seed,
    )
    victim_dir = os.path.join(config.output_dir, "_victim")
    victim_args = TrainingArguments(
        victim_dir,
        num_train_epochs=script_args.victim_epochs,
        learning_rate=script_args.victim_learning_rate,
        warmup_steps=0.06,
        weight_decay=0.01,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        train_sampling_strategy="group_by_length",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        seed=config.seed,
        use_cpu=config.use_cpu,
        disable_tqdm=config.disable_tqdm,
        dataloader_pin_memory=config.dataloader_pin_memory,
    )
    train_victim(source, attack, victim_args)
    PartialState().wait_for_everyone()  # the main process saved the victim; the others load it next
    data = prepare_attack(attack)
    return victim_dir, source, data.test, data.attack_test


def prepare_scan(script_args: DataArguments, config: ExposeConfig) -> DefenseSetup:
    """The clean set, the context texts and an :class:`ExposeTrainer` on the suspicious model; writes nothing."""
    task = load_task(script_args.task, script_args.data_dir) if script_args.task else None
    clean = load_clean_set(script_args, task)
    context = load_context_texts(script_args)
    return DefenseSetup(
        build_trainer(script_args.model_name_or_path, script_args, config, clean), context_texts=context
    )


def prepare_defense(script_args: PurifyArguments, config: ExposeConfig) -> DefenseSetup:
    """Check the inputs and the output folder, build the clean set, the victim (benchmark mode) and the scoring
    data, and load the suspicious model into an :class:`ExposeTrainer`. Nothing is written before every check on
    the user's inputs has passed (benchmark mode then trains its victim into ``output_dir/_victim``)."""
    check_output_dir(config.output_dir, inputs=script_args.inputs(), overwrite=config.overwrite_output_dir)
    task = load_task(script_args.task, script_args.data_dir) if script_args.task else None
    clean = load_clean_set(script_args, task)
    context = load_context_texts(script_args)
    if script_args.is_benchmark:
        model_path, base, test, attack_test = _benchmark_victim(script_args, config)
        config.overwrite_output_dir = True  # checked above; it now holds only the victim this run trained
        description = f"{script_args.task} test split"
        loaded = None
    else:
        model_path = script_args.model_name_or_path
        loaded = load_model(model_path, script_args, config)
        base = _recorded_base_model(model_path) if os.path.isdir(model_path) else None
        test, attack_test, description = scoring_data(script_args, task, config.seed, loaded[0].config)
    if config.base_model is None and base is not None and os.path.exists(base):
        config.base_model = base  # the pretrained weights the victim was fine-tuned from, recorded in attack.json
    reference = None
    if getattr(script_args, "reference_model", None) is not None:  # checked now, not after the defense
        from .labels import check_same_labels

        reference = load_model(script_args.reference_model, script_args, config)
        suspect_config = loaded[0].config if loaded is not None else reference[0].config
        check_same_labels(suspect_config, reference[0].config, "--reference_model")
    trainer = build_trainer(model_path, script_args, config, clean, loaded)
    return DefenseSetup(trainer, test, attack_test, description, context, reference)


def run_defense(script_args: PurifyArguments, config: ExposeConfig) -> DefenseReport:
    """Run one defense (or benchmark) end to end and return its report; see the module docstring."""
    setup = prepare_defense(script_args, config)
    trainer = setup.trainer
    trainer.train()
    if setup.context_texts is not None:
        add_trigger_contexts(trainer.report, setup.context_texts, script_args.context_data)
    if setup.test is not None:
        trainer.measure(
            setup.test,
            setup.attack_test,
            script_args.target_label,
            setup.description,
            trigger=script_args.trigger,
            reference_model=None if setup.reference is None else setup.reference[0],
            reference_processing_class=None if setup.reference is None else setup.reference[1],
        )
    publish(trainer, (get_task(script_args.task).hub_id or script_args.task) if script_args.task else None)
    return trainer.report


def publish(trainer, dataset: str | None = None) -> None:
    """Save the purified model, its report and model card to ``output_dir``, push them when ``push_to_hub`` is
    set (one upload from the main process; the Hub repository is created then), and print the report."""
    if trainer.args.push_to_hub:  # push_to_hub saves the model and report and writes the card first
        trainer.push_to_hub(dataset=dataset)
    else:
        trainer.save_model()
        trainer.create_model_card(dataset=dataset)
    if trainer.is_world_process_zero():
        print()
        print(trainer.report.to_markdown())
        print(f"Purified model, report and model card saved to {trainer.args.output_dir}")


def run_scan(script_args: ScanArguments, config: ExposeConfig) -> DefenseReport:
    """Expose and detect only (no purification, no Hub): the verdict, target label and trigger candidates, written
    as a JSON report to ``script_args.report_path()``, the one file a scan writes."""
    if config.push_to_hub:
        raise ValueError("scan never uploads anything; drop --push_to_hub (purify --push_to_hub uploads a model).")
    report_path = script_args.report_path()
    check_output_file(
        report_path,
        inputs=script_args.inputs(),
        overwrite=script_args.overwrite_report,
        overwrite_hint="--overwrite_report",
    )
    setup = prepare_scan(script_args, config)
    setup.trainer.detect()
    report = setup.trainer.report
    if setup.context_texts is not None:
        add_trigger_contexts(report, setup.context_texts, script_args.context_data)
    if setup.trainer.is_world_process_zero():
        report.to_json(report_path)
    return report


@dataclass
class PoisonArguments:
    """What to poison"""

    task: str = field(default="sst2", metadata={"help": "Task to poison.", "choices": [*TASKS]})
    trigger: str = field(default="word", metadata={"help": "Trigger family.", "choices": [*TRIGGERS]})
    rate: float = field(default=0.1, metadata={"help": "Share of the training rows poisoned."})
    target_label: int = field(default=1, metadata={"help": "The attacker's target label."})
    mode: str | None = field(
        default=None,
        metadata={
            "help": "Which rows are poisoned (default: all-rows for paraphrase triggers, else dirty-label).",
            "choices": [mode.value for mode in PoisonMode],
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the poisoning (rows and positions)."})
    keep_originals: bool = field(
        default=False,
        metadata={"help": "Append the poisoned rows as copies and keep every original row (clean-data augmentation)."},
    )
    data_dir: str | None = field(default=None, metadata={"help": f"Local data root (default: ${DATA_DIR_ENV})."})
    output_dir: str | None = field(
        default=None, metadata={"help": "New folder for the poisoned DatasetDict (default: TASK-TRIGGER-poisoned)."}
    )

    def __post_init__(self):
        if not 0 < self.rate <= 1:  # also refuses nan
            raise ValueError(f"rate={self.rate} must be in (0, 1].")
        if self.seed < 0:
            raise ValueError(f"seed={self.seed} must be 0 or more.")
        num_labels = get_task(self.task).num_labels
        if self.target_label not in range(num_labels):
            raise ValueError(f"target_label={self.target_label} is not a label of {self.task} (0..{num_labels - 1}).")
        self.output_dir = self.output_dir or f"{self.task}-{self.trigger}-poisoned"


def run_poison(args: PoisonArguments):
    """Poison ``args.task``'s training split and build its attack test set; save the ``DatasetDict`` (train,
    validation, test, attack_test) to ``args.output_dir``, a new folder. Returns it and the folder."""
    from datasets import DatasetDict

    from .poisoning import build_attack_test_set, poison
    from .triggers import build_trigger

    check_output_dir(args.output_dir, inputs=[args.data_dir])
    trigger = build_trigger(args.trigger, args.task, args.data_dir, seed=args.seed)
    task = load_task(args.task, args.data_dir)
    mode = args.mode or ("all-rows" if args.trigger in PARAPHRASE_TRIGGERS else "dirty-label")
    train = poison(
        task["train"],
        trigger,
        args.rate,
        args.target_label,
        seed=args.seed,
        mode=mode,
        keep_originals=args.keep_originals,
    )
    attack_test = build_attack_test_set(task["test"], trigger, args.target_label, seed=args.seed)
    poisoned = DatasetDict(train=train, validation=task["validation"], test=task["test"], attack_test=attack_test)
    poisoned.save_to_disk(args.output_dir)
    return poisoned, args.output_dir


def recipe_parser(task: str):
    """The parser of ``recipes/<task>.py``: :class:`DefenseArguments` and :class:`ExposeConfig`, with ``--config``
    YAML defaults, and ``--data`` defaulting to the recipe's task."""
    from .parser import EbydParser

    parser = EbydParser((DefenseArguments, ExposeConfig), prog=f"recipes/{task}.py")
    parser.set_defaults(data=task)
    return parser


def run_recipe(main, parser, argv: list[str] | None = None):
    """``python recipes/<task>.py ...``: parse the command line (``--config`` YAML included) with ``parser`` and
    call the recipe's ``main(script_args, training_args)``; bad input exits with one line and no traceback."""
    import sys

    try:
        return main(*parser.parse_args_and_config(argv))
    except ValueError as error:
        sys.exit(f"error: {error}")
