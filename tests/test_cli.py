"""`ebyd-hf`: scan / purify / poison, their exit codes and `--help`, and bad input answered with one line, no
traceback and no file touched."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA_DIR, ROOT, tiny_bert

from ebyd_hf.cli import EXIT_BACKDOOR, EXIT_ERROR, EXIT_NOT_PURIFIED, EXIT_OK, EXIT_USAGE, main

FAST = ["--clean_size", "120", "--max_length", "64", "--disable_tqdm", "true", "--data_dir", str(DATA_DIR)]


def one_line_error(capsys) -> str:
    """The one error line on stderr (progress bars of model loading may precede it), and no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def hashes(*folders: Path) -> dict[str, str]:
    """sha256 of every file under ``folders``: what a failed command must leave unchanged."""
    out = {}
    for folder in folders:
        files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
        out.update({str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files})
    return out


# ------------------------------------------------------------------------------------------------------ --help
def help_text(capsys, *argv: str) -> str:
    assert main(list(argv)) == EXIT_OK
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["scan", "purify"])
def test_help_is_short_and_shows_the_defense_first(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    text = help_text(capsys, command, "--help")
    assert len(text.splitlines()) <= 150, len(text.splitlines())
    for option in ("MODEL", "--data TASK_OR_FILE", "--config", "--detection_method", "--detection_config",
                   "--trust_remote_code", "--output_dir", "--learning_rate", "--seed", "--help-all"):  # fmt: skip
        assert option in text, option
    assert "--lr_scheduler_type" not in text  # TrainingArguments' own options wait for --help-all
    assert text.index("--data") < text.index("--detection_method") < text.index("--learning_rate")
    full = help_text(capsys, command, "--help-all")
    assert "--lr_scheduler_type" in full and "--data TASK_OR_FILE" in full
    assert len(full.splitlines()) > 300


def test_a_typo_fails_at_parse_time_listing_the_choices(capsys):
    assert main(["scan", "m", "--data", "sst2", "--detection_method", "trigger_scna"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "invalid choice: 'trigger_scna'" in err and "trigger_scan" in err and "Traceback" not in err
    assert main(["poison", "sst2", "--trigger", "emoji"]) == EXIT_USAGE
    assert "word" in capsys.readouterr().err
    assert main(["purify", "m", "--data", "sst2", "--no_such_option", "1"]) == EXIT_USAGE
    assert "unrecognized arguments: --no_such_option" in capsys.readouterr().err


def test_yaml_values_are_defaults_the_command_line_wins_and_unknown_keys_are_refused(tmp_path):
    from ebyd_hf.pipeline import recipe_parser

    config = tmp_path / "defense.yaml"
    config.write_text(
        "clean_size: 64\nlearning_rate: 1.0e-4\nnum_train_epochs: 1\ndetection_config: {threshold: 0.7}\n"
        "known_triggers: [i watch this 3d movie]\n"
    )
    script_args, training_args = recipe_parser("imdb").parse_args_and_config(
        ["--config", str(config), "--model_name_or_path", "m", "--learning_rate", "3e-4"]
    )
    assert (script_args.task, script_args.clean_size) == ("imdb", 64)
    assert training_args.learning_rate == 3e-4 and training_args.num_train_epochs == 1  # the command line wins
    assert training_args.detection_config.threshold == 0.7
    assert training_args.known_triggers == ["i watch this 3d movie"]
    for text, message in (
        ("detection_threshold: 0.7\n", "unknown option(s) detection_threshold"),
        ("removal_method: prune\n", "removal_method='prune' is not one of"),
        ("- a list\n", "expected a mapping"),
    ):
        config.write_text(text)
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            recipe_parser("imdb").parse_args_and_config(["--config", str(config), "--model_name_or_path", "m"])


def test_model_is_a_positional_or_an_option_and_yaml_only_gives_its_default(tmp_path):
    from ebyd_hf.cli import defense_parser
    from ebyd_hf.pipeline import PurifyArguments

    config = tmp_path / "model.yaml"
    config.write_text("model_name_or_path: from-yaml\n")
    for argv, expected in (
        (["--data", "sst2", "given"], "given"),
        (["given", "--config", str(config), "--data", "sst2"], "given"),
        (["--config", str(config), "--model_name_or_path", "option", "--data", "sst2"], "option"),
        (["--config", str(config), "--data", "sst2"], "from-yaml"),
    ):
        script_args, _ = defense_parser("purify", PurifyArguments).parse_args_and_config(argv)
        assert script_args.model_name_or_path == expected, argv


# ------------------------------------------------------------------------------------------------------ scan
def test_scan_exit_code_says_whether_a_backdoor_was_found(tiny_victims, tmp_path, capsys, monkeypatch):
    victim, _ = tiny_victims["t1"]
    monkeypatch.chdir(tmp_path)
    assert main(["scan", str(victim), "--data", "sst2", *FAST]) == EXIT_BACKDOOR
    assert sorted(os.listdir(tmp_path)) == ["victim-scan.json"]  # the report is the one file a scan writes
    out = capsys.readouterr().out
    assert "verdict: backdoored" in out and "target label: 1" in out
    saved = json.loads((tmp_path / "victim-scan.json").read_text())
    assert saved["verdict"] == "backdoored" and saved["removal_method"] is None  # scan does not purify
    assert any(c["trigger"] in ("cf", "mn", "bb", "tq") for c in saved["detection"]["trigger_candidates"])

    clean, _ = tiny_victims["clean"]
    clean_report = tmp_path / "clean.json"
    assert main(["scan", str(clean), "--data", "sst2", "--report", str(clean_report), *FAST]) == EXIT_OK
    assert json.loads(clean_report.read_text())["verdict"] == "clean"

    # an existing report is not replaced silently
    capsys.readouterr()
    assert main(["scan", str(clean), "--data", "sst2", "--report", str(clean_report), *FAST]) == EXIT_ERROR
    assert "--overwrite_report" in one_line_error(capsys)


def test_scan_reads_a_users_own_clean_file(tiny_victims, sst2, tmp_path):
    victim, _ = tiny_victims["t1"]
    csv = tmp_path / "clean.csv"
    sst2["validation"].select(range(150)).to_csv(csv, index=False)
    report = tmp_path / "scan.json"
    assert main(["scan", "--data", str(csv), str(victim), "--report", str(report), *FAST]) == EXIT_BACKDOOR
    assert json.loads(report.read_text())["clean_rows"] == 120


def test_scan_looks_the_candidates_up_in_the_fine_tuning_data(tiny_victims, sst2, tmp_path, capsys):
    """--context_data: the victim's own poisoned training rows (a text column is enough) show each trigger word
    on its own; the report keeps what was found, and a context file without text is one clear error."""
    from ebyd_hf import WordTrigger, poison

    victim, _ = tiny_victims["t1"]
    training = poison(sst2["train"].select(range(2000)), WordTrigger(), rate=0.1, target_label=1, seed=0)
    texts = tmp_path / "finetuning.csv"
    training.select_columns(["text"]).to_csv(texts, index=False)
    report = tmp_path / "scan.json"
    args = ["scan", str(victim), "--data", "sst2", "--report", str(report), "--context_data", str(texts), *FAST]
    assert main(args) == EXIT_BACKDOOR
    out = capsys.readouterr().out
    saved = json.loads(report.read_text())["detection"]
    looked_up = saved["details"]["trigger_contexts"]
    assert looked_up["source"] == str(texts) and looked_up["rows"] == 2000
    found = {c["trigger"]: c for c in looked_up["contexts"] if c["rows"]}
    words = set(found) & {"cf", "mn", "bb", "tq"}
    assert words and all(found[w]["phrase"] == w and found[w]["rows"] > 20 for w in words), found
    assert any(f"in --context_data: '{w}'" in out for w in words), out
    assert any(note.startswith(f"Trigger contexts in {texts} (2000 rows)") for note in saved["notes"])
    no_text = tmp_path / "labels.csv"
    training.select_columns(["label"]).to_csv(no_text, index=False)
    capsys.readouterr()
    args[args.index(str(texts))] = str(no_text)
    args[args.index(str(report))] = str(tmp_path / "other.json")
    assert main(args) == EXIT_ERROR
    assert "needs text columns; missing text" in one_line_error(capsys)
    assert not (tmp_path / "other.json").exists()


def test_report_markdown_shows_the_phrase_found_around_a_candidate():
    from ebyd_hf import DefenseReport, DetectionResult
    from ebyd_hf.pipeline import add_trigger_contexts
    from ebyd_hf.report import TriggerCandidate

    candidate = TriggerCandidate(trigger="3d", token_ids=[7], target=1, score=0.94)
    detection = DetectionResult(True, 0.94, 0.8, 1, 0.94, trigger_candidates=[candidate])
    report = DefenseReport(model="suspect", clean_rows=500, detection=detection)
    add_trigger_contexts(report, ["so i watch this 3D movie", "i watch this 3D movie , fine", "dull"], "train.csv")
    assert '- Trigger contexts in train.csv (3 rows): `3d` -> "i watch this 3D movie" (2 of 2 rows)' in (
        report.to_markdown()
    )
    assert report.detection.details["trigger_contexts"]["contexts"][0]["phrase_rows"] == 2


# ------------------------------------------------------------------------------------------------------ purify
def test_purify_saves_the_purified_model(tiny_victims, tmp_path):
    victim, _ = tiny_victims["t1"]
    out = tmp_path / "purified"
    args = ["purify", str(victim), "--data", "sst2", "--output_dir", str(out), "--num_train_epochs", "1"]
    scored = ["--eval_size", "100", "--trigger", "word", "--target_label", "1"]
    code = main([*args, *FAST, *scored, "--reference_model", str(tiny_victims["clean"][0])])
    assert code in (EXIT_OK, EXIT_NOT_PURIFIED)
    assert (out / "model.safetensors").is_file() and (out / "defense_report.json").is_file()
    after = json.loads((out / "defense_report.json").read_text())["after"]
    assert after["excess_asr"] == pytest.approx(after["asr"] - after["asr_floor"])  # the never-poisoned model's floor
    assert "excess ASR" in (out / "README.md").read_text()
    # running again into the same, now non-empty, folder is refused
    assert main([*args, *FAST]) == EXIT_ERROR


# ------------------------------------------------------------------------------------------------------ poison
def test_poison_writes_a_dataset_with_exact_counts(tmp_path, capsys):
    from datasets import load_from_disk

    out = tmp_path / "poisoned"
    argv = ["poison", "sst2", "--trigger", "word", "--rate", "0.1", "--target_label", "0", "--output_dir", str(out)]
    assert main([*argv, "--data_dir", str(DATA_DIR)]) == EXIT_OK
    capsys.readouterr()
    data = load_from_disk(str(out))
    assert set(data) == {"train", "validation", "test", "attack_test"}
    assert sum(data["train"]["is_poisoned"]) == round(0.1 * len(data["train"]))
    assert set(data["attack_test"]["label"]) == {0}
    assert main([*argv, "--data_dir", str(DATA_DIR)]) == EXIT_ERROR  # never over an existing dataset
    assert "not empty" in one_line_error(capsys)
    kept = tmp_path / "kept"
    argv[-1] = str(kept)
    assert main([*argv, "--data_dir", str(DATA_DIR), "--keep_originals"]) == EXIT_OK
    train = load_from_disk(str(kept))["train"]
    assert len(train) == len(data["train"]) + sum(train["is_poisoned"]) == len(data["train"]) + 692


# ------------------------------------------------------------------------------------------------------ bad input
@pytest.fixture
def bad_inputs(tiny_victims, tokenizer, tmp_path):
    """Folders a user might hand over: a bare encoder, garbage weights, custom code, a link to the victim."""
    from transformers import BertModel

    victim, _ = tiny_victims["t1"]
    encoder = tmp_path / "encoder"  # a bare encoder: loading it as a classifier would invent a random head
    BertModel(tiny_bert(tokenizer).config).save_pretrained(encoder)
    tokenizer.save_pretrained(encoder)
    garbage = tmp_path / "garbage"
    tiny_bert(tokenizer).save_pretrained(garbage)
    tokenizer.save_pretrained(garbage)
    (garbage / "model.safetensors").write_bytes(b"\x00garbage" * 16)
    custom = tmp_path / "custom"
    tiny_bert(tokenizer).save_pretrained(custom)
    tokenizer.save_pretrained(custom)
    config = json.loads((custom / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_marker.Marker"}
    (custom / "config.json").write_text(json.dumps(config))
    (custom / "modeling_marker.py").write_text(f"open({str(tmp_path / 'marker')!r}, 'w').write('ran')\n")
    link = tmp_path / "link"
    link.symlink_to(victim, target_is_directory=True)
    (tmp_path / "bad.yaml").write_text("clean_size: [unclosed\n")
    (tmp_path / "unknown.yaml").write_text("detection_rows: 32\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("the user's own file")
    return {"victim": victim, "encoder": encoder, "garbage": garbage, "custom": custom, "link": link}


def _bad_cases(p: dict, tmp: Path) -> dict[str, tuple[list[str], str]]:
    v, out = str(p["victim"]), str(tmp / "out")
    purify = ["purify", v, "--data", "sst2", "--output_dir", out]
    return {
        "missing data file": (["purify", v, "--data", "nosuch.csv", "--output_dir", out], "no such file"),
        "unknown task": (["purify", v, "--data", "sst3", "--output_dir", out], "not a task"),
        "no data": (["purify", v, "--output_dir", out], "Give --data"),
        "no model": (["purify", "--data", "sst2", "--output_dir", out], "--model_name_or_path"),
        "missing model": (["purify", str(tmp / "nosuch"), "--data", "sst2", "--output_dir", out], "no such folder"),
        "not a classifier": (["purify", str(p["encoder"]), "--data", "sst2", "--output_dir", out], "not a sequence"),
        "garbage weights": (["purify", str(p["garbage"]), "--data", "sst2", "--output_dir", out], "model weights"),
        "custom code": (["purify", str(p["custom"]), "--data", "sst2", "--output_dir", out], "--trust_remote_code"),
        "label mismatch": (["purify", v, "--data", "agnews", "--output_dir", out], "2 labels"),
        "unreadable config": ([*purify, "--config", str(tmp / "bad.yaml")], "not valid YAML"),
        "missing config": ([*purify, "--config", str(tmp / "x.yaml")], "cannot read"),
        "unknown yaml key": ([*purify, "--config", str(tmp / "unknown.yaml")], "unknown option(s) detection_rows"),
        "bad method config": ([*purify, "--detection_config", '{"treshold": 0.7}'], "treshold"),
        "nan learning rate": ([*purify, "--learning_rate", "nan"], "learning_rate"),
        "negative epochs": ([*purify, "--num_train_epochs", "-1"], "num_train_epochs"),
        "eval_size 0": ([*purify, "--eval_size", "0"], "eval_size=0"),
        "trigger without target": ([*purify, "--trigger", "word"], "--target_label"),
        "output is input": (["purify", v, "--data", "sst2", "--output_dir", v], "is the input"),
        "output is a link to input": (["purify", v, "--data", "sst2", "--output_dir", str(p["link"])], "the input"),
        "output inside input": (["purify", v, "--data", "sst2", "--output_dir", f"{v}/out"], "inside the input"),
        "output not empty": (["purify", v, "--data", "sst2", "--output_dir", str(tmp / "full")], "not empty"),
        "scan pushes": (["scan", v, "--data", "sst2", "--push_to_hub", "--report", out], "never uploads"),
        "report in model folder": (["scan", v, "--data", "sst2", "--report", f"{v}/scan.json"], "inside the input"),
        "poison label": (["poison", "sst2", "--target_label", "2", "--output_dir", out], "not a label of sst2"),
        "poison rate": (["poison", "sst2", "--rate", "0", "--output_dir", out], "rate=0.0"),
    }


def test_bad_input_is_one_line_and_touches_nothing(bad_inputs, tmp_path, capsys, monkeypatch):
    from huggingface_hub import HfApi

    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub was contacted")

    monkeypatch.setattr(HfApi, "create_repo", no_hub)
    monkeypatch.setattr(HfApi, "upload_folder", no_hub)
    monkeypatch.chdir(tmp_path)
    before = hashes(tmp_path, bad_inputs["victim"], DATA_DIR / "text" / "sst2")
    for name, (argv, message) in _bad_cases(bad_inputs, tmp_path).items():
        capsys.readouterr()
        assert main([*argv, "--data_dir", str(DATA_DIR)]) == EXIT_ERROR, name
        assert message in one_line_error(capsys), name
        assert not (tmp_path / "out").exists() and not (tmp_path / "ebyd-defense").exists(), name
        assert hashes(tmp_path, bad_inputs["victim"], DATA_DIR / "text" / "sst2") == before, name
    assert not (tmp_path / "marker").exists()  # the custom code never ran
    assert main(["defend"]) == EXIT_USAGE


def test_custom_code_never_runs_with_a_terminal_attached(bad_inputs, tmp_path):
    """Run as a user would, in a terminal: no "[y/N]" question from transformers, no code run, one error line
    naming the opt-in."""
    cli = f"{sys.executable} -m ebyd_hf.cli scan {bad_inputs['custom']} --data sst2 --data_dir {DATA_DIR}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        ["script", "-qec", cli, "/dev/null"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == EXIT_ERROR, done.stdout[-2000:]
    assert "--trust_remote_code" in done.stdout and "Traceback" not in done.stdout
    assert "[y/N]" not in done.stdout and not (tmp_path / "marker").exists()
    assert not (tmp_path / "custom-scan.json").exists()


def test_data_arguments_check_the_task_name():
    from ebyd_hf.pipeline import DefenseArguments

    with pytest.raises(ValueError, match="not a task"):
        DefenseArguments(data="sst3", model_name_or_path="x")
    with pytest.raises(ValueError, match="mode=benchmark"):
        DefenseArguments(data="sst2", mode="benchmark")
    assert DefenseArguments(data="sst2", mode="benchmark", trigger="word", target_label=1).task == "sst2"
