"""Safe by construction (issue 28): every bad input a user can hand the CLI or the Python API, as one table.

Each row ends in a non-zero exit (CLI) or one exception (API) whose one-line message names the fix, prints no
traceback, creates no output folder, and leaves the sha256 of every file of the user's (model folders, data files,
a folder of their own) unchanged. The "check" rows are inputs the library must accept and handle rightly (labels
aligned by name, a card that warns); they keep the same no-harm invariants. The untrusted-code test runs the real
CLI in a terminal that would answer "y" to transformers' question, and asserts the checkpoint's code never ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import DATA_DIR, ROOT, tiny_bert

from ebyd_hf.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main

NAN = float("nan")
LABELS = ("negative", "positive")


# ------------------------------------------------------------------------------------------------------- helpers
def sha256_tree(*paths: Path) -> dict[str, str]:
    """sha256 of every file under ``paths`` (a file stands for itself): what a refused input must leave as it was."""
    out = {}
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        out.update({str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files})
    return out


@dataclass
class World:
    """The user's files (under ``inputs``: model folders, data files, a folder of their own), the output folder a
    run must never create (``out``), and the ready-made objects the API rows pass."""

    root: Path
    inputs: Path
    out: Path
    cwd: Path
    marker: Path
    clean: object  # datasets.Dataset: 60 clean SST-2 validation rows
    test: object  # datasets.Dataset: 200 SST-2 test rows

    def __getattr__(self, name: str) -> str:  # w.model, w.clean_csv ... -> the path of that input, as a string
        return str(self.inputs / name.replace("_", "."))

    def config(self, output_dir: str | Path | None = None, **kwargs):
        from ebyd_hf import ExposeConfig

        options = {"use_cpu": True, "report_to": "none", "disable_tqdm": True, "max_length": 32, **kwargs}
        return ExposeConfig(str(output_dir or self.out), **options)

    def trainer(self, model: str | None = None, output_dir: str | Path | None = None, train_dataset=None, **kwargs):
        from ebyd_hf import ExposeTrainer

        clean = self.clean if train_dataset is None else train_dataset
        return ExposeTrainer(model or self.model, args=self.config(output_dir, **kwargs), train_dataset=clean)


def _from(folder: str):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(folder)


def _classifier(tokenizer, num_labels: int = 2):
    model = tiny_bert(tokenizer, num_labels=num_labels)
    if num_labels == 2:  # a fine-tuned SST-2 model carries its label names
        model.config.id2label, model.config.label2id = dict(enumerate(LABELS)), {n: i for i, n in enumerate(LABELS)}
    return model


def _custom_code(folder: Path, tokenizer, marker: Path) -> None:
    """A checkpoint whose own config, model and tokenizer code would each leave ``marker`` behind when run."""
    _classifier(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="marker-bert",
        architectures=["MarkerForSequenceClassification"],
        auto_map={
            "AutoConfig": "marker_code.MarkerConfig",
            "AutoModelForSequenceClassification": "marker_code.MarkerForSequenceClassification",
            "AutoTokenizer": ["marker_code.MarkerTokenizer", None],
        },
    )
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "marker_code.py").write_text(
        f"open({str(marker)!r}, 'a').write('the checkpoint ran its code\\n')\n"
        "from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast\n\n"
        "class MarkerConfig(BertConfig):\n    model_type = 'marker-bert'\n\n"
        "class MarkerForSequenceClassification(BertForSequenceClassification):\n    config_class = MarkerConfig\n\n"
        "class MarkerTokenizer(BertTokenizerFast):\n    pass\n"
    )


class _Payload:
    """A pickle that creates a file when unpickled: what a malicious ``pytorch_model.bin`` would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def world(tmp_path_factory, tokenizer, sst2) -> World:
    import torch
    from datasets import ClassLabel
    from transformers import BertModel

    root = tmp_path_factory.mktemp("bad-input")
    inputs, cwd = root / "inputs", root / "cwd"
    inputs.mkdir()
    cwd.mkdir()
    marker = root / "marker.txt"

    def checkpoint(name: str, model) -> Path:
        folder = inputs / name
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder

    model = checkpoint("model", _classifier(tokenizer))
    checkpoint("encoder", BertModel(tiny_bert(tokenizer).config))  # no classification head
    checkpoint("three", _classifier(tokenizer, num_labels=3))
    (checkpoint("garbage", _classifier(tokenizer)) / "model.safetensors").write_bytes(b"\x00not a checkpoint" * 16)
    weights = checkpoint("truncated", _classifier(tokenizer)) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    pickled = checkpoint("pickled", _classifier(tokenizer))
    (pickled / "model.safetensors").unlink()
    torch.save({"payload": _Payload(root / "pickle-ran.txt")}, pickled / "pytorch_model.bin")
    _custom_code(inputs / "custom", tokenizer, marker)
    (inputs / "link").symlink_to(model, target_is_directory=True)
    (inputs / "full").mkdir()
    (inputs / "full" / "notes.txt").write_text("the user's own file")

    clean = sst2["validation"].shuffle(seed=0).select(range(60))
    clean.to_csv(inputs / "clean.csv", index=False)
    (inputs / "empty.csv").write_text("")
    (inputs / "header.csv").write_text("text,label\n")
    (inputs / "empty.jsonl").write_text("")
    (inputs / "notes.txt").write_text("a fine film\t1\n")
    (inputs / "cells.csv").write_text("text,label\na fine film,1\n,0\na dull film,0\n")
    (inputs / "numbers.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in ({"text": "fine", "label": 1}, {"text": 5, "label": 0}))
    )
    (inputs / "nolabel.csv").write_text("text,label\na fine film,1\na dull film,\n")
    (inputs / "nolabelcolumn.csv").write_text("text,stars\na fine film,5\na dull film,1\n")
    (inputs / "oneclass.csv").write_text("text,label\n" + "".join(f"a fine film {i},1\n" for i in range(10)))
    (inputs / "labels5.csv").write_text("text,label\n" + "".join(f"film number {i},{i % 5}\n" for i in range(40)))
    (inputs / "bad.yaml").write_text("clean_size: [unclosed\n")
    (inputs / "unknown.yaml").write_text("detection_rows: 32\n")
    (inputs / "folder").mkdir()
    (inputs / "folder" / "notes.txt").write_text("not a dataset")
    names = ClassLabel(names=["bad", "good"])  # not the model's names
    clean.cast_column("label", names).save_to_disk(inputs / "wrongnames")
    clean.save_to_disk(inputs / "saved")

    test = sst2["test"].shuffle(seed=0).select(range(200))
    return World(root, inputs, root / "outputs" / "out", cwd, marker, clean, test)


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch):
    from huggingface_hub import HfApi

    def refuse(*args, **kwargs):
        raise AssertionError("the Hub was contacted")

    for name in ("create_repo", "upload_folder", "create_commit"):
        monkeypatch.setattr(HfApi, name, refuse)


# --------------------------------------------------------------------------------------------------- the table
@dataclass
class Bad:
    """One bad input: ``run(w)`` gives the CLI's argv, or a callable for the API that must raise one
    ``ValueError``; ``fix`` is a phrase of the fix its message must name. A ``check`` row runs ``run(w)`` as a test
    of its own (an input to accept and handle rightly) under the same no-harm invariants."""

    run: Callable[[World], list[str] | Callable[[], object]]
    fix: str = ""
    exit_code: int = EXIT_ERROR
    check: bool = False


def purify(w: World, *extra: str, model: str | None = None, data: str = "sst2") -> list[str]:
    return ["purify", model or w.model, "--data", data, "--output_dir", str(w.out), *FAST, *extra]


def scan(w: World, *extra: str, model: str | None = None, data: str = "sst2") -> list[str]:
    return ["scan", model or w.model, "--data", data, "--report", str(w.out / "scan.json"), *FAST, *extra]


FAST = ["--clean_size", "40", "--max_length", "32", "--disable_tqdm", "true", "--data_dir", str(DATA_DIR)]


def _train_victim(w: World, model: str, output_dir: str | None = None, **attack):
    from transformers import TrainingArguments

    from ebyd_hf import AttackConfig, train_victim

    def run():
        config = AttackConfig(**{"task": "sst2", "data_dir": str(DATA_DIR), "train_size": 100, **attack})
        args = TrainingArguments(output_dir or str(w.out), use_cpu=True, report_to="none", save_strategy="no")
        return train_victim(model, config, args)

    return run


def _poison(w: World, **kwargs):
    from ebyd_hf import WordTrigger, poison

    return lambda: poison(w.clean, WordTrigger(), **{"rate": 0.1, "target_label": 1, "seed": 0, **kwargs})


def _measure(w: World, test):
    trainer = w.trainer()
    return lambda: trainer.measure(test)


def _labels5(w: World):
    from datasets import Dataset

    return Dataset.from_dict({"text": [f"film number {i}" for i in range(40)], "label": [i % 5 for i in range(40)]})


def _with_empty_text(w: World):
    rows = w.clean.to_dict()
    rows["text"][7] = " "
    return type(w.clean).from_dict(rows, features=w.clean.features)


def _reversed_names(test):
    """The same rows with the label names in the opposite order (and each id flipped, so every text keeps its
    meaning): a dataset saved by a tool that sorted the classes another way."""
    from datasets import ClassLabel

    flipped = test.map(lambda batch: {"label": [1 - y for y in batch["label"]]}, batched=True)
    return flipped.cast_column("label", ClassLabel(names=list(reversed(LABELS))))


def check_reversed_label_names_score_as_the_aligned_ones(w: World, capsys):
    trainer = w.trainer()
    aligned = trainer.measure(w.test)["before"]["ca"]
    assert trainer.measure(_reversed_names(w.test))["before"]["ca"] == aligned
    reversed_clean = w.trainer(train_dataset=_reversed_names(w.clean))
    assert reversed_clean.train_dataset["label"] == w.trainer().train_dataset["label"]


_NOT_PURIFIED: dict[str, object] = {}


def _purify_a_clean_model(w: World, capsys) -> dict[str, object]:
    """``purify`` of a model with no backdoor, ASR measured: run once, read by two rows."""
    if not _NOT_PURIFIED:
        out = w.root / "outputs" / "not-purified"
        argv = purify(w, "--test_data", w.clean_csv, "--trigger", "word", "--target_label", "1", data=w.clean_csv)
        argv[argv.index(str(w.out))] = str(out)
        capsys.readouterr()
        code = main([*argv, "--num_train_epochs", "1", "--eval_size", "40"])
        _NOT_PURIFIED.update(code=code, printed="".join(capsys.readouterr()), card=out / "README.md")
    return _NOT_PURIFIED


def check_cli_exit_says_the_defense_did_not_lower_asr(w: World, capsys):
    done = _purify_a_clean_model(w, capsys)
    assert done["code"] not in (EXIT_OK, EXIT_ERROR), done["printed"][-2000:]
    assert "did not lower the attack success rate" in done["printed"]


def check_card_warns_when_the_model_is_not_purified(w: World, capsys):
    card = _purify_a_clean_model(w, capsys)["card"].read_text()
    assert "**Warning:**" in card and "not purified" in card


def check_poison_writes_nothing_beside_a_saved_dataset(w: World, capsys):
    from datasets import load_from_disk

    from ebyd_hf import WordTrigger, poison

    poisoned = poison(load_from_disk(w.saved), WordTrigger(), rate=0.1, target_label=1, seed=0)
    assert sum(poisoned["is_poisoned"]) == 6  # the invariants then check the saved folder is as it was


def check_trainer_writes_nothing_beside_a_saved_clean_set(w: World, capsys):
    from datasets import load_from_disk

    trainer = w.trainer(train_dataset=load_from_disk(w.saved))
    assert len(trainer.train_dataset) == 60


def check_der_refuses_nan(w: World, capsys):
    from ebyd_hf import defense_effectiveness_rating

    with pytest.raises(ValueError, match="ca_before=nan"):
        defense_effectiveness_rating(NAN, 1.0, 0.9, 0.1)


CASES = {
    # --- the issue's table: numbers that are not numbers, or out of range
    "cli nan radius": Bad(lambda w: purify(w, "--removal_config", '{"activeness_radius": NaN}'), "finite number"),
    "api nan radius": Bad(lambda w: lambda: w.config(removal_config={"activeness_radius": NAN}), "activeness_radius"),
    "api nan learning_rate": Bad(lambda w: lambda: w.config(learning_rate=NAN), "learning_rate=nan"),
    "api nan exposure_learning_rate": Bad(
        lambda w: lambda: w.config(exposure_learning_rate=NAN), "exposure_learning_rate=nan"
    ),
    "api negative soft-trigger rate": Bad(
        lambda w: lambda: w.config(removal_config={"soft_trigger_learning_rate": -1}), "(0, inf)"
    ),
    "api max_length 0": Bad(lambda w: lambda: w.config(max_length=0), "max_length=0 must be in [8, inf)"),
    "api unknown exposure_method": Bad(lambda w: lambda: w.config(exposure_method="foo"), "clean_unlearning"),
    "cli epochs -1": Bad(lambda w: purify(w, "--num_train_epochs", "-1"), "num_train_epochs=-1.0 must be in"),
    "cli nan learning rate": Bad(lambda w: purify(w, "--learning_rate", "nan"), "learning_rate=nan"),
    "cli eval_size 0": Bad(lambda w: purify(w, "--eval_size", "0"), "eval_size=0"),
    "cli clean_size 1": Bad(lambda w: purify(w, "--clean_size", "1"), "at least 2 clean rows"),
    "cli clean_size over the file": Bad(
        lambda w: purify(w, "--clean_size", "500", data=w.clean_csv), "lower --clean_size"
    ),
    "cli negative target": Bad(lambda w: purify(w, "--trigger", "word", "--target_label", "-1"), "label id"),
    "cli poison rate nan": Bad(lambda w: ["poison", "sst2", "--rate", "nan", "--output_dir", str(w.out)], "rate=nan"),
    "api attack rate nan": Bad(lambda w: _train_victim(w, w.model, rate=NAN), "rate=nan must be a finite number"),
    "api attack train_size 0": Bad(lambda w: _train_victim(w, w.model, train_size=0), "train_size=0 must be in"),
    "api poison rate nan": Bad(lambda w: _poison(w, rate=NAN), "rate=nan must be a share"),
    "api der nan": Bad(lambda w: check_der_refuses_nan, check=True),
    # --- labels the model does not have, or names that do not match
    "cli test labels 0..4 on a binary model": Bad(
        lambda w: purify(w, "--test_data", w.labels5_csv), "labels [2, 3, 4] that the model does not have"
    ),
    "api test labels 0..4 on a binary model": Bad(lambda w: _measure(w, _labels5(w)), "Map the dataset's labels"),
    "cli clean labels 0..4": Bad(lambda w: purify(w, data=w.labels5_csv), "that the model does not have"),
    "cli target label the model lacks": Bad(
        lambda w: purify(w, "--test_data", w.clean_csv, "--trigger", "word", "--target_label", "4", data=w.clean_csv),
        "--target_label",
    ),
    "cli label names not the model's": Bad(lambda w: scan(w, data=w.wrongnames), "cast_column"),
    "api label names not the model's": Bad(
        lambda w: lambda: w.trainer(train_dataset=w.clean.cast_column("label", _bad_good())), "cast_column"
    ),
    "api test label names reversed": Bad(lambda w: check_reversed_label_names_score_as_the_aligned_ones, check=True),
    "cli reference model of another task": Bad(  # refused before the defense runs, not after it
        lambda w: purify(w, "--trigger", "word", "--target_label", "1", "--reference_model", w.three),
        "three' has 3 labels",
    ),
    "cli reference model without a trigger": Bad(lambda w: purify(w, "--reference_model", w.model), "--trigger"),
    "api reference model of another task": Bad(
        lambda w: lambda: w.trainer().measure(w.test, w.test, 1, reference_model=_from(w.three)), "same task"
    ),
    "api 3-label checkpoint to train_victim": Bad(lambda w: _train_victim(w, w.three), "3 labels but sst2 has 2"),
    "cli 3-label checkpoint on sst2": Bad(lambda w: purify(w, model=w.three), "has 3 labels but sst2 has 2"),
    # --- the user's files: the output guard, API and CLI
    "api output is a link to the model": Bad(lambda w: lambda: w.trainer(w.link, output_dir=w.model), "is the input"),
    "api model through a link, output the model folder": Bad(
        lambda w: lambda: w.trainer(w.model, output_dir=w.link), "is the input"
    ),
    "api output inside the model folder": Bad(
        lambda w: lambda: w.trainer(output_dir=Path(w.link) / "purified"), "inside the input folder"
    ),
    "api output not empty": Bad(lambda w: lambda: w.trainer(output_dir=w.full), "overwrite_output_dir=True"),
    "api train_victim into a link to its model": Bad(
        lambda w: _train_victim(w, w.model, output_dir=w.link), "input model's folder"
    ),
    "cli output is the model": Bad(lambda w: purify(w, "--output_dir", w.model), "is the input"),
    "cli output is a link to the model": Bad(lambda w: purify(w, "--output_dir", w.link), "is the input"),
    "cli output not empty": Bad(lambda w: purify(w, "--output_dir", w.full), "--overwrite_output_dir"),
    "cli report inside the model folder": Bad(
        lambda w: scan(w, "--report", str(Path(w.link) / "scan.json")), "inside the input folder"
    ),
    # --- untrusted code, the Hub
    "cli scan custom code": Bad(lambda w: scan(w, model=w.custom), "--trust_remote_code"),
    "cli purify custom code": Bad(lambda w: purify(w, model=w.custom), "--trust_remote_code"),
    "api custom code": Bad(lambda w: lambda: w.trainer(w.custom), "trust_remote_code=True"),
    "api train_victim custom code": Bad(lambda w: _train_victim(w, w.custom), "trust_remote_code=True"),
    "cli pickled payload": Bad(lambda w: scan(w, model=w.pickled), "which could run code"),
    "cli scan --push_to_hub": Bad(lambda w: scan(w, "--push_to_hub", "--hub_model_id", "me/x"), "drop --push_to_hub"),
    # --- models that are not there, not readable, or not classifiers
    "cli nonexistent model": Bad(lambda w: scan(w, model=str(w.root / "nosuch")), "no such folder"),
    "api nonexistent model": Bad(lambda w: lambda: w.trainer(str(w.root / "nosuch")), "no such folder"),
    "cli hub id not in the cache": Bad(lambda w: scan(w, model="nobody-has/this-model"), "(offline"),
    "cli garbage weights": Bad(lambda w: scan(w, model=w.garbage), "save the model again"),
    "api truncated weights": Bad(lambda w: lambda: w.trainer(w.truncated), "the file is truncated"),
    "api bare BertModel": Bad(lambda w: lambda: w.trainer(w.encoder), "AutoModelForSequenceClassification"),
    "cli bare BertModel": Bad(lambda w: purify(w, model=w.encoder), "not a sequence classifier"),
    "cli model_init_kwargs that do not fit": Bad(
        lambda w: scan(w, "--model_init_kwargs", '{"num_labels": 3}'), "model_init_kwargs ['num_labels']"
    ),
    # --- data files
    "cli empty csv": Bad(lambda w: scan(w, data=w.empty_csv), "empty.csv is empty"),
    "cli header-only csv": Bad(lambda w: scan(w, data=w.header_csv), "has no rows"),
    "cli empty jsonl test data": Bad(lambda w: purify(w, "--test_data", w.empty_jsonl), "empty.jsonl is empty"),
    "cli empty context data": Bad(lambda w: scan(w, "--context_data", w.empty_csv), "empty.csv is empty"),
    "cli empty text cell": Bad(lambda w: scan(w, data=w.cells_csv), "row 2 of cells.csv has an empty 'text'"),
    "cli non-text cell": Bad(lambda w: scan(w, data=w.numbers_jsonl), "row 2 of numbers.jsonl has a non-text"),
    "cli empty label cell": Bad(lambda w: scan(w, data=w.nolabel_csv), "row 2 of nolabel.csv has no 'label'"),
    "api empty text cell": Bad(lambda w: lambda: w.trainer(train_dataset=_with_empty_text(w)), "row 8"),
    "cli unsupported data file": Bad(lambda w: scan(w, data=w.notes_txt), "use .csv, .tsv, .json, .jsonl"),
    "cli data folder that is not a dataset": Bad(lambda w: scan(w, data=w.folder), "save_to_disk"),
    "cli trigger without test data": Bad(
        lambda w: purify(w, "--trigger", "word", "--target_label", "1", data=w.clean_csv), "--test_data"
    ),
    # --- what held: one clear line each
    "cli unknown task": Bad(lambda w: purify(w, data="sst3"), "not a task"),
    "cli missing label column": Bad(lambda w: scan(w, data=w.nolabelcolumn_csv), "missing label"),
    "cli one-class set": Bad(lambda w: scan(w, "--clean_size", "10", data=w.oneclass_csv), "one class"),
    "cli bad yaml": Bad(lambda w: purify(w, "--config", w.bad_yaml), "not valid YAML"),
    "cli unknown yaml key": Bad(lambda w: purify(w, "--config", w.unknown_yaml), "unknown option(s) detection_rows"),
    "cli typo in a choice": Bad(
        lambda w: scan(w, "--detection_method", "trigger_scna"), "invalid choice", exit_code=EXIT_USAGE
    ),
    "cli missing data_dir": Bad(lambda w: scan(w, "--data_dir", str(w.root / "nodata")), "no such folder"),
    "cli poison label": Bad(
        lambda w: ["poison", "sst2", "--target_label", "2", "--output_dir", str(w.out)], "not a label of sst2"
    ),
    "api poison label": Bad(lambda w: _poison(w, target_label=5), "not a label of this dataset"),
    "api poison a saved dataset": Bad(lambda w: check_poison_writes_nothing_beside_a_saved_dataset, check=True),
    "api clean set from a saved dataset": Bad(
        lambda w: check_trainer_writes_nothing_beside_a_saved_clean_set, check=True
    ),
    # --- outcomes measured: the CLI and the card say when the defense did not lower ASR
    "cli exit code: ASR not lowered": Bad(lambda w: check_cli_exit_says_the_defense_did_not_lower_asr, check=True),
    "card warns: not purified": Bad(lambda w: check_card_warns_when_the_model_is_not_purified, check=True),
}


def _bad_good():
    from datasets import ClassLabel

    return ClassLabel(names=["bad", "good"])


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, world, capsys, monkeypatch):
    case = CASES[name]
    monkeypatch.chdir(world.cwd)  # where a default report or output folder would land
    before = sha256_tree(world.inputs, DATA_DIR / "text" / "sst2")
    try:
        _run_case(case, world, capsys)
        assert sha256_tree(world.inputs, DATA_DIR / "text" / "sst2") == before
        assert not world.out.exists() and not os.listdir(world.cwd)
        assert not world.marker.exists() and not (world.root / "pickle-ran.txt").exists()  # no checkpoint code ran
    finally:  # a row that fails must not fail the next ones
        shutil.rmtree(world.out, ignore_errors=True)
        for left in world.cwd.iterdir():
            shutil.rmtree(left) if left.is_dir() else left.unlink()


def _run_case(case: Bad, world: World, capsys) -> None:
    if case.check:
        case.run(world)(world, capsys)
    else:
        run = case.run(world)
        if isinstance(run, list):
            capsys.readouterr()
            code = main(run)
            out, err = capsys.readouterr()
            assert code == case.exit_code, f"exit {code}\n{out[-1500:]}\n{err[-3000:]}"
            assert "Traceback" not in out + err, err[-3000:]
            errors = [line for line in err.replace("\r", "\n").splitlines() if "error" in line.lower()]
            assert len(errors) == 1, err[-3000:]
            assert case.fix in errors[0], errors[0]
        else:
            with pytest.raises(ValueError) as raised:
                run()
            message = str(raised.value)
            assert case.fix in message and "\n" not in message, message


def test_the_table_covers_the_issue():
    assert len(CASES) >= 30
    assert sum(not case.check and case.fix == "" for case in CASES.values()) == 0


# ------------------------------------------------------------------------------------------- untrusted code
def _run_in_terminal(argv: list[str], cwd: Path, timeout: float = 240) -> tuple[int, str]:
    """Run ``argv`` with a terminal (a pty) as stdin, stdout and stderr, "y" typed ahead: had transformers asked
    "run the custom code? [y/N]", the answer would have been yes. Returns the exit code and everything shown."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    child = subprocess.Popen(argv, stdin=secondary, stdout=secondary, stderr=secondary, cwd=cwd, env=env)
    os.close(secondary)
    os.write(primary, b"y\n")
    shown = b""
    try:
        while True:
            ready, _, _ = select.select([primary], [], [], timeout)
            if not ready:
                child.kill()
                raise AssertionError(f"no output for {timeout} s: {shown[-2000:]!r}")
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    return child.wait(timeout=timeout), shown.decode(errors="replace")


@pytest.mark.parametrize("command", ["scan", "purify"])
def test_custom_code_never_runs_in_a_terminal_without_the_opt_in(command, world):
    argv = [sys.executable, "-m", "ebyd_hf.cli", command, world.custom, "--data", world.clean_csv]
    argv += ["--output_dir" if command == "purify" else "--report", str(world.out), *FAST]
    before = sha256_tree(world.inputs)
    code, shown = _run_in_terminal(argv, world.cwd)
    assert code == EXIT_ERROR, shown[-3000:]
    assert "--trust_remote_code" in shown and "Traceback" not in shown and "[y/N]" not in shown, shown[-3000:]
    assert not world.marker.exists(), "the checkpoint's code ran"
    assert not world.out.exists() and not os.listdir(world.cwd)
    assert sha256_tree(world.inputs) == before


def test_the_custom_code_folder_does_run_its_code_when_trusted(world, tmp_path):
    """The control of the test above: opted in, the same folder's code runs and leaves its marker."""
    from ebyd_hf.files import load_sequence_classifier

    folder, marker = tmp_path / "custom", tmp_path / "marker.txt"
    shutil.copytree(world.custom, folder)
    code = (folder / "marker_code.py").read_text().replace(str(world.marker), str(marker))
    (folder / "marker_code.py").write_text(code)
    model, _ = load_sequence_classifier(str(folder), trust_remote_code=True)
    assert type(model).__name__ == "MarkerForSequenceClassification" and marker.exists()
