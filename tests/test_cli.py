"""`ebyd-hf`: scan / purify / poison, their exit codes, and bad input answered with one line and no files."""

from __future__ import annotations

import json

import pytest
from conftest import DATA_DIR, tiny_bert

from ebyd_hf.cli import EXIT_BACKDOOR, EXIT_ERROR, EXIT_OK, EXIT_USAGE, main

FAST = ["--clean_size", "120", "--max_length", "64", "--disable_tqdm", "true", "--data_dir", str(DATA_DIR)]


def one_line_error(capsys) -> str:
    """The one error line on stderr (progress bars of model loading may precede it), and no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_scan_exit_code_says_whether_a_backdoor_was_found(tiny_victims, tmp_path, capsys):
    victim, _ = tiny_victims["t1"]
    report = tmp_path / "scan.json"
    assert main(["scan", str(victim), "--data", "sst2", "--report", str(report), *FAST]) == EXIT_BACKDOOR
    out = capsys.readouterr().out
    assert "verdict: backdoored" in out and "target label: 1" in out
    saved = json.loads(report.read_text())
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
    assert main(["scan", str(victim), "--data", str(csv), "--report", str(report), *FAST]) == EXIT_BACKDOOR
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
    looked_up = json.loads(report.read_text())["detection"]["details"]["trigger_contexts"]
    assert looked_up["source"] == str(texts) and looked_up["rows"] == 2000
    found = {c["trigger"]: c for c in looked_up["contexts"] if c["rows"]}
    words = set(found) & {"cf", "mn", "bb", "tq"}
    assert words and all(found[w]["phrase"] == w and found[w]["rows"] > 20 for w in words), found
    assert any(f"in --context_data: '{w}'" in out for w in words), out
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

    detection = DetectionResult(True, 0.94, 0.8, 1, 0.94, trigger_candidates=[{"trigger": "3d", "score": 0.94}])
    report = DefenseReport(model="suspect", clean_rows=500, detection=detection)
    add_trigger_contexts(report, ["so i watch this 3D movie", "i watch this 3D movie , fine", "dull"], "train.csv")
    assert '- Trigger contexts in train.csv (3 rows): `3d` -> "i watch this 3D movie" (2 of 2 rows)' in (
        report.to_markdown()
    )


def test_purify_saves_the_purified_model(tiny_victims, tmp_path):
    victim, _ = tiny_victims["t1"]
    out = tmp_path / "purified"
    args = ["purify", str(victim), "--data", "sst2", "--output_dir", str(out), "--num_train_epochs", "1"]
    assert main([*args, *FAST, "--eval_size", "100"]) == EXIT_OK
    assert (out / "model.safetensors").is_file() and (out / "defense_report.json").is_file()
    # running again into the same, now non-empty, folder is refused
    assert main([*args, *FAST]) == EXIT_ERROR


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


def test_bad_input_is_one_line_and_writes_nothing(tiny_victims, tokenizer, tmp_path, capsys):
    from transformers import BertModel

    victim, _ = tiny_victims["t1"]
    out = tmp_path / "out"
    encoder = tmp_path / "encoder"  # a bare encoder: loading it as a classifier would invent a random head
    BertModel(tiny_bert(tokenizer).config).save_pretrained(encoder)
    tokenizer.save_pretrained(encoder)
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("clean_size: [unclosed\n")
    cases = {
        "missing data file": (
            ["purify", str(victim), "--data", "nosuch.csv", "--output_dir", str(out)],
            "no such file",
        ),
        "unknown task": (["purify", str(victim), "--task", "sst3", "--output_dir", str(out)], "sst3"),
        "not a classifier": (["purify", str(encoder), "--data", "sst2", "--output_dir", str(out)], "not a sequence"),
        "label mismatch": (["purify", str(victim), "--data", "agnews", "--output_dir", str(out)], "2 labels"),
        "unreadable config": (
            ["purify", str(victim), "--data", "sst2", "--output_dir", str(out), "--config", str(bad_config)],
            "not valid YAML",
        ),
        "missing config": (
            ["purify", str(victim), "--data", "sst2", "--output_dir", str(out), "--config", str(tmp_path / "x.yaml")],
            "cannot read",
        ),
        "output is input": (["purify", str(victim), "--data", "sst2", "--output_dir", str(victim)], "input model"),
        "unknown trigger": (["poison", "sst2", "--trigger", "emoji", "--output_dir", str(out)], "Unknown trigger"),
    }
    before = sorted(p.name for p in victim.iterdir())
    for name, (argv, message) in cases.items():
        capsys.readouterr()
        assert main([*argv, "--data_dir", str(DATA_DIR)]) == EXIT_ERROR, name
        assert message in one_line_error(capsys), name
        assert not out.exists(), name
    assert sorted(p.name for p in victim.iterdir()) == before
    assert main(["defend"]) == EXIT_USAGE


def test_recipe_task_name_is_checked():
    from ebyd_hf.pipeline import DefenseArguments

    with pytest.raises(ValueError, match="Unknown task|unknown task"):
        DefenseArguments(task="sst3", model_name_or_path="x")
