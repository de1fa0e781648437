"""The recipes as users run them: recipes/<task>.py on tiny models, the Hub push (HfApi patched), and the same
defense under one and two processes (accelerate launch, gloo on CPU)."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA_DIR, ROOT, tiny_bert

RECIPES = ROOT / "recipes"
# Small enough for CI, large enough that the tiny victim's backdoor is found and weakened.
FAST = [
    "--clean_size", "120",
    "--eval_size", "200",
    "--num_train_epochs", "1",
    "--max_length", "64",
    "--disable_tqdm", "true",
    "--data_dir", str(DATA_DIR),
]  # fmt: skip


def run_recipe(task: str, args: list[str]) -> None:
    """Run recipes/<task>.py in process, exactly as `python recipes/<task>.py ARGS` would."""
    argv = sys.argv
    sys.argv = [str(RECIPES / f"{task}.py"), *args]
    try:
        runpy.run_path(str(RECIPES / f"{task}.py"), run_name="__main__")
    finally:
        sys.argv = argv


def read_report(folder: Path) -> dict:
    return json.loads((folder / "defense_report.json").read_text())


@pytest.mark.parametrize("task", ["sst2", "imdb", "twitter", "agnews", "cifar10"])
def test_every_recipe_is_a_trl_style_script_whose_config_parses(task):
    """`make_parser()` + `main(script_args, training_args)`, and recipes/configs/<task>.yaml through the parser
    (an unknown or misspelt key there would be refused)."""
    recipe = runpy.run_path(str(RECIPES / f"{task}.py"), run_name="recipe")
    assert callable(recipe["main"]) and callable(recipe["make_parser"])
    args = ["--config", str(RECIPES / "configs" / f"{task}.yaml"), "--model_name_or_path", "some/model"]
    script_args, training_args = recipe["make_parser"]().parse_args_and_config(args)
    assert script_args.model_name_or_path == "some/model" and training_args.output_dir
    if task != "cifar10":
        assert script_args.task == task and script_args.mode == "defend"


def test_a_recipe_answers_bad_input_with_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(RECIPES / "sst2.py"), "--model_name_or_path", str(tmp_path / "nosuch"),
         "--output_dir", str(tmp_path / "out"), "--data_dir", str(DATA_DIR)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and "neither a model folder" in done.stderr
    assert not (tmp_path / "out").exists()


def test_sst2_recipe_defends_a_tiny_victim_and_saves_everything(tiny_victims, tmp_path):
    from transformers import AutoModelForSequenceClassification

    victim, record = tiny_victims["t1"]
    out = tmp_path / "purified"
    run_recipe(
        "sst2",
        ["--config", str(RECIPES / "configs" / "sst2.yaml"), "--model_name_or_path", str(victim),
         "--output_dir", str(out), "--trigger", "word", "--target_label", "1", *FAST],
    )  # fmt: skip
    report = read_report(out)
    assert report["verdict"] == "backdoored" and report["detection"]["target_label"] == 1
    assert report["before"]["asr"] > 0.9 and report["after"]["asr"] < report["before"]["asr"] / 2
    assert report["before"]["ca_rows"] == 200 and report["clean_rows"] == 120
    for name in ("model.safetensors", "config.json", "tokenizer.json", "README.md", "defense_report.md"):
        assert (out / name).is_file(), name
    AutoModelForSequenceClassification.from_pretrained(out)  # the purified model loads like any checkpoint
    card = (out / "README.md").read_text()
    assert "backdoor-defense" in card and f"{report['after']['asr']:.3f}" in card


@pytest.mark.parametrize("task", ["imdb", "twitter", "agnews"])
def test_every_task_recipe_runs_from_its_config(task, tokenizer, tmp_path):
    """A smoke run per recipe: its YAML config parses and the defense reaches a saved model and report."""
    num_labels = 4 if task == "agnews" else 2
    model_dir = tmp_path / "model"
    tiny_bert(tokenizer, num_labels=num_labels).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    out = tmp_path / "out"
    run_recipe(
        task,
        ["--config", str(RECIPES / "configs" / f"{task}.yaml"), "--model_name_or_path", str(model_dir),
         "--output_dir", str(out), *FAST, "--clean_size", "64", "--eval_size", "64", "--exposure_max_steps", "4",
         "--detection_config", '{"rows": 32}'],
    )  # fmt: skip
    report = read_report(out)
    assert report["clean_rows"] == 64 and report["before"]["ca_rows"] == 64
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()


def test_benchmark_mode_attacks_then_defends(tiny_victims, tmp_path):
    """One command: poison SST-2, train the victim (kept in _victim/, which the Hub upload skips), defend it."""
    start = tiny_victims["clean"][0]  # any tiny checkpoint: the victim gets a fresh head and training
    out = tmp_path / "bench"
    run_recipe(
        "sst2",
        ["--mode", "benchmark", "--model_name_or_path", str(start), "--trigger", "word", "--target_label", "0",
         "--victim_train_size", "2000", "--victim_epochs", "4", "--victim_learning_rate", "2e-3",
         "--output_dir", str(out), *FAST, "--per_device_train_batch_size", "32"],
    )  # fmt: skip
    attack = json.loads((out / "_victim" / "attack.json").read_text())
    assert attack["target_label"] == 0 and attack["poisoned_rows"] == 200
    report = read_report(out)
    assert report["before"]["asr"] == pytest.approx(attack["asr"], abs=0.1)  # same victim, a 200-row test subset
    assert report["detection"]["target_label"] == 0
    assert report["after"]["asr"] < report["before"]["asr"]


def test_push_to_hub_uploads_model_report_and_card(tiny_victims, tmp_path, monkeypatch):
    """One upload at the end: the Hub repository is created only after the defense has run."""
    from huggingface_hub import HfApi, ModelCard, RepoUrl

    from ebyd_hf import ExposeTrainer

    uploads, events = [], []
    train = ExposeTrainer.train

    def create_repo(self, repo_id, **kwargs):
        events.append("create_repo")
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def recorded_train(self, *args, **kwargs):
        events.append("train")
        return train(self, *args, **kwargs)

    monkeypatch.setattr(ExposeTrainer, "train", recorded_train)

    def upload_folder(self, *, repo_id, folder_path, ignore_patterns=None, **kwargs):
        files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
        card = ModelCard.load(Path(folder_path) / "README.md")
        uploads.append({"repo_id": repo_id, "files": files, "ignore": ignore_patterns, "card": card})

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    victim, _ = tiny_victims["t1"]
    out = tmp_path / "to-push"
    run_recipe(
        "sst2",
        ["--model_name_or_path", str(victim), "--output_dir", str(out), "--trigger", "word", "--target_label", "1",
         "--push_to_hub", "true", "--hub_model_id", "someone/tiny-purified", *FAST],
    )  # fmt: skip
    assert len(uploads) == 1 and events == ["train", "create_repo"]
    upload = uploads[0]
    assert upload["repo_id"] == "someone/tiny-purified"
    assert {"model.safetensors", "config.json", "tokenizer.json", "defense_report.json", "README.md"} <= set(
        upload["files"]
    )
    assert "_*" in upload["ignore"]  # a benchmark's _victim/ folder never leaves the machine
    card = upload["card"]
    assert {"ebyd", "backdoor-defense"} <= set(card.data.tags) and card.data.datasets == ["SetFit/sst2"]
    report = read_report(out)
    for when in ("before", "after"):
        assert f"{report[when]['ca']:.3f}" in card.text and f"{report[when]['asr']:.3f}" in card.text
    assert "Verdict: **backdoored**" in card.text and "arXiv:2410.19427" in card.text
    assert f"{report['clean_rows']} clean examples" in card.text


def test_model_card_names_a_hub_base_model_only():
    from ebyd_hf import DefenseReport
    from ebyd_hf.model_card import render_model_card

    report = DefenseReport(model="someone/suspicious", clean_rows=500)
    assert render_model_card(report, "x", base_model="someone/suspicious").data.base_model == "someone/suspicious"
    assert render_model_card(report, "x", base_model="/tmp/some/folder").data.base_model is None
    assert "no defense stage has run yet" in render_model_card(report, "x").text


def test_one_and_two_processes_agree(tiny_victims, tmp_path):
    """The same recipe under `accelerate launch --multi_gpu --num_processes 2` (gloo on CPU, global batch kept)
    reaches the same verdict and CA/ASR within noise; only the main process writes."""
    victim, _ = tiny_victims["t1"]
    common = [
        "--model_name_or_path", str(victim), "--trigger", "word", "--target_label", "1", *FAST,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(
        [sys.executable, str(RECIPES / "sst2.py"), *common, "--output_dir", str(one),
         "--per_device_train_batch_size", "32"],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    result = subprocess.run(
        [*launch, str(RECIPES / "sst2.py"), *common, "--output_dir", str(two), "--per_device_train_batch_size", "16"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Purified model, report and model card saved") == 1  # main process only
    a, b = read_report(one), read_report(two)
    assert a["verdict"] == b["verdict"] == "backdoored"
    assert a["detection"]["target_label"] == b["detection"]["target_label"] == 1
    assert a["after"]["ca"] == pytest.approx(b["after"]["ca"], abs=0.05)
    assert a["after"]["asr"] == pytest.approx(b["after"]["asr"], abs=0.15)


def test_cifar10_recipe_attacks_and_defends_a_resnet(tmp_path):
    """The image recipe end to end on the pretrained ResNet-20 (0.27M parameters), one victim epoch."""
    out = tmp_path / "cifar"
    run_recipe(
        "cifar10",
        ["--config", str(RECIPES / "configs" / "cifar10.yaml"), "--output_dir", str(out), "--data_dir",
         str(DATA_DIR), "--victim_epochs", "1", "--clean_rows", "200", "--num_train_epochs", "1",
         "--disable_tqdm", "true"],
    )  # fmt: skip
    report = read_report(out)
    assert report["clean_rows"] == 200 and report["before"]["ca_rows"] == 846
    assert report["before"]["asr"] is not None and report["after"]["ca"] is not None
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    assert "image-classification" in (out / "README.md").read_text()
