"""The cost benchmark (bench/cost.py): both runs on one victim, timed apart, each with its own stage times and peak
memory; the table gives their ratio."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import DATA_DIR

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import cost  # noqa: E402


@pytest.fixture
def tiny_cost(tiny_victims, monkeypatch):
    """bench/cost.py on the tiny word victim (300 clean rows), each run in this process."""
    folder, _ = tiny_victims["t1"]
    monkeypatch.setitem(cost.VICTIMS, "tiny-word-t1", ("sst2", [Path(folder)]))
    monkeypatch.setattr(cost, "CLEAN_ROWS", 300)
    monkeypatch.setattr(
        cost,
        "measure",
        lambda name, mode, data_dir, count=False, overrides=None: cost.run_one(name, mode, data_dir, count, overrides),
    )


def test_cost_runs_the_plain_fine_tune_and_the_defense_and_writes_their_ratio(tiny_cost, tmp_path):
    results = tmp_path / "cost.json"
    cost.main(["--only", "tiny-word-t1", "--data_dir", str(DATA_DIR), "--results", str(results), "--flops"])
    (record,) = json.loads(results.read_text())
    fine, defense = record["finetune"], record["defense"]
    assert set(fine["stage_seconds"]) == {"purify"} and {"detect", "purify"} <= set(defense["stage_seconds"])
    assert (
        defense["verdict"] in {"backdoored", "clean"} and fine["verdict"] == "not run"
    )  # the baseline does not detect
    assert record["ratio"] == round(defense["seconds"] / fine["seconds"], 2) and fine["peak_rss_gb"] > 0
    assert "| tiny-word-t1 | sst2 |" in results.with_suffix(".md").read_text()
    flops = record["flops"]  # counted in runs apart: every stage computes something, the defense more than fine-tuning
    assert set(flops["defense"]) == {"detect", "purify"} and set(flops["finetune"]) == {"purify"}
    assert all(v > 0 for stages in flops.values() for v in stages.values()) and record["flop_ratio"] > 1


def test_set_changes_the_defense_alone_and_the_table_names_it(tiny_cost, tmp_path):
    """``--set removal_config.step_budget=finetune``: the defense's purification takes a plain fine-tune's steps
    (its set holds the rows and their triggered copies), the baseline is untouched, and the row says so."""
    results = tmp_path / "cost.json"
    argv = ["--only", "tiny-word-t1", "--data_dir", str(DATA_DIR), "--results", str(results)]
    cost.main([*argv, "--set", "removal_config.step_budget=finetune"])
    (record,) = json.loads(results.read_text())
    assert record["overrides"] == {"removal_config": {"step_budget": "finetune"}}
    assert record["defense"]["verdict"] == "backdoored"
    assert abs(record["defense"]["steps"] - record["finetune"]["steps"]) <= 1, record
    table = results.with_suffix(".md").read_text()
    assert "`removal.step_budget=finetune`" in table and "ran with `--set`" in table
