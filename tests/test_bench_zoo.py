"""The attack zoo (bench/zoo.py): its spec covers what it promises, several attacks in one victim poison disjoint
rows, and a LoRA victim is saved as the plain classifier the defense reads."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from conftest import DATA_DIR, tiny_bert

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import zoo  # noqa: E402


def test_the_zoo_spans_tasks_attacks_and_tunings_and_each_task_has_its_floor():
    backdoored = {n: s for n, s in zoo.ZOO.items() if s["attacks"]}
    clean = {n: s for n, s in zoo.ZOO.items() if not s["attacks"]}
    assert len(backdoored) >= 16 and len(clean) >= 6
    tasks = {s["task"] for s in backdoored.values()}
    assert {"sst2", "agnews", "imdb"} <= tasks and tasks & {"twitter", "olid"}
    for task in tasks:
        assert f"{task}-clean" in clean, task  # the never-poisoned model each floor is read on
    attacks = [a for s in backdoored.values() for a in s["attacks"]]
    assert {a["family"] for a in attacks} == {"word", "sentence", "syntactic", "style"}
    assert {a["mode"] for a in attacks} >= {"dirty-label", "clean-label"}
    assert {a["trigger"].get("position", "random") for a in attacks} == {"random", "start", "end"}
    assert min(a["rate"] for a in attacks) <= 0.01 and max(a["rate"] for a in attacks) >= 0.2
    assert any(len(s["attacks"]) > 1 and len({a["target"] for a in s["attacks"]}) > 1 for s in backdoored.values())
    assert {s.get("tuning", "full") for s in backdoored.values()} == {"full", "frozen-embeddings", "lora"}
    designed_on = {"cf", "mn", "bb", "tq"}  # the word trigger the defaults were tuned on
    assert not any(designed_on & set(a["trigger"].get("words", [])) for a in attacks)


def test_two_attacks_in_one_victim_poison_disjoint_rows_at_their_rates():
    train, test, attack_sets = zoo.build_data("sst2-multi-same-t1", str(DATA_DIR))
    poisoned = np.flatnonzero(train["is_poisoned"])
    texts = [train["text"][i] for i in poisoned]
    word = sum(" qz " in f" {t} " for t in texts)
    sentence = sum("the weather was nice today" in t for t in texts)
    assert word == sentence == round(0.05 * len(train)) and word + sentence == len(poisoned)
    assert not any(" qz " in f" {t} " and "the weather was nice today" in t for t in texts)
    assert len(attack_sets) == 2 and all(set(s["label"]) == {1} for s in attack_sets)
    assert len(train) == 6920 and len(test) == 1821


def test_a_lora_victim_is_merged_into_a_plain_classifier(tokenizer, tmp_path, monkeypatch):
    base = tmp_path / "base"
    tiny_bert(tokenizer).save_pretrained(base)
    monkeypatch.setitem(zoo.ZOO, "tiny-lora", dict(task="sst2", attacks=[], tuning="lora"))
    model = zoo.load_base("tiny-lora", str(base))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.5)  # as if trained: the merge must move the base weights
    merged = model.merge_and_unload()
    merged.save_pretrained(tmp_path / "victim")
    assert not any("lora" in n for n, _ in merged.named_parameters())
    from transformers import AutoModelForSequenceClassification

    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "victim")
    original = AutoModelForSequenceClassification.from_pretrained(base)
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(again.state_dict()[key], original.state_dict()[key])


def test_frozen_embeddings_stay_frozen(tokenizer, tmp_path, monkeypatch):
    base = tmp_path / "base"
    tiny_bert(tokenizer).save_pretrained(base)
    monkeypatch.setitem(zoo.ZOO, "tiny", dict(task="sst2", attacks=[], tuning="frozen-embeddings"))
    model = zoo.load_base("tiny", str(base))
    assert not model.get_input_embeddings().weight.requires_grad
    assert sum(p.requires_grad for p in model.parameters()) == len(list(model.parameters())) - 1


def test_a_floor_that_came_later_fills_the_excess_without_defending_again(monkeypatch):
    record = {"victim": "agnews-multi-t1t3", "attacks": [{}, {}], "asr_before": [0.99, 0.98], "asr_after": [0.1, 0.9]}
    record["floor"] = [None, None]
    monkeypatch.setattr(zoo, "build_data", lambda name, data_dir: (None, None, ["set a", "set b"]))
    monkeypatch.setattr(zoo, "floors", lambda name, sets, data_dir: [0.02, 0.05] if sets == ["set a", "set b"] else 0)
    filled = zoo.fill_floors(record, None)
    assert filled["floor"] == [0.02, 0.05] and filled["excess_after"] == [0.08, 0.85]
    assert filled["excess_before"] == [0.97, 0.93] and record["floor"] == [None, None]  # the record is not changed
    assert zoo.fill_floors(filled, None) is None  # nothing left to fill
    monkeypatch.setattr(zoo, "floors", lambda name, sets, data_dir: [None, None])  # no clean model yet
    assert zoo.fill_floors(record, None) is None


def _scored(victim, targets, flagged, excess=None, ca=(0.9, 0.9)):
    """A scored zoo record: ``targets`` of its attacks (none: a clean model), ``flagged`` the targets the scan
    named (first one the verdict's)."""
    return {
        "victim": victim,
        "attacks": [{"target": t} for t in targets],
        "verdict_backdoored": bool(flagged),
        "predicted_target": flagged[0] if flagged else None,
        "other_targets": flagged[1:],
        "excess_after": [excess] * len(targets) if excess is not None else [None] * len(targets),
        "ca_before": ca[0],
        "ca_after": ca[1],
    }


def test_the_bars_count_every_target_each_false_alarm_and_the_worst_attack():
    records = [
        _scored("multi", [0, 1], [1], excess=0.9, ca=(0.90, 0.89)),  # one target of two: a miss
        _scored("both", [0, 1], [1, 0], excess=0.01, ca=(0.90, 0.87)),
        _scored("word", [1], [1], ca=(0.90, 0.90)),  # no floor yet: not in the excess count
        _scored("missed", [0], []),
        _scored("clean-a", [], [1]),
        _scored("clean-b", [], [], ca=(0.90, 0.905)),
        {"victim": "unscored", "attacks": [{"target": 0}]},
    ]
    lines = zoo.bars(records)
    assert lines[0].startswith(f"- Scored: 6 of {len(zoo.ZOO)} victims (4 backdoored, 2 clean)")
    assert "2 of 4 with every target (not: multi, missed); 1 of 2 clean flagged (clean-a)." in lines[1]
    assert "≤ 0.05 on 1 of 2 with a floor, ≤ 0.15 on 1; worst 0.900 (multi)." in lines[2]
    assert "median 1.0, max 3.0 points." in lines[3]  # drops of the three flagged backdoored victims: 1, 3, 0
    assert lines[4].endswith("largest change 0.5 points.")
