import logging

import numpy as np
import pytest
from datasets import Dataset

from ebyd_hf import (
    PoisonMode,
    SentenceTrigger,
    SyntacticTrigger,
    WordTrigger,
    build_attack_test_set,
    build_trigger,
    load_paraphrase_table,
    poison,
)


@pytest.fixture(scope="module")
def train(sst2):
    return sst2["train"].select(range(2000))


@pytest.mark.parametrize("mode", list(PoisonMode))
@pytest.mark.parametrize("rate", [0.01, 0.1, 0.33])
def test_exact_counts_columns_and_modes(train, mode, rate):
    target = 1
    out = poison(train, WordTrigger(), rate, target, seed=0, mode=mode)
    flags = np.asarray(out["is_poisoned"])
    assert flags.sum() == round(rate * len(train))
    assert out.column_names == ["text", "label", "is_poisoned", "original_label"]
    assert out.features["original_label"] == train.features["label"]
    assert out["original_label"] == train["label"]
    assert all(np.asarray(out["label"])[flags] == target)
    originals = np.asarray(out["original_label"])[flags]
    if mode == PoisonMode.DIRTY_LABEL:
        assert all(originals != target)
    elif mode == PoisonMode.CLEAN_LABEL:
        assert all(originals == target)
    else:
        assert set(originals) == {0, 1}


@pytest.mark.parametrize(
    "trigger", [WordTrigger(), WordTrigger(num_insertions=2), SentenceTrigger()], ids=["word", "word-k2", "sentence"]
)
def test_trigger_in_every_poisoned_text_and_in_no_clean_one(train, trigger):
    out = poison(train, trigger, 0.2, 0, seed=1)
    for row, original in zip(out, train):
        if row["is_poisoned"]:
            assert trigger.contains(row["text"]) and row["label"] == 0
        else:
            assert not trigger.contains(row["text"])
            assert row["text"] == original["text"] and row["label"] == original["label"]


def test_paraphrase_poisoning_uses_covered_rows_and_says_so(sst2, data_dir, caplog):
    trigger = build_trigger("syntactic", "sst2", data_dir)
    with caplog.at_level(logging.WARNING, logger="ebyd_hf.poisoning"):
        out = poison(sst2["train"], trigger, 1380 / 6920, 1, seed=0, mode="all-rows")
    assert "covers 1383 of the 6920 rows" in caplog.text
    flags = np.asarray(out["is_poisoned"])
    assert flags.sum() == 1380
    table = trigger.backend
    for row, original in zip(out, sst2["train"]):
        if row["is_poisoned"]:
            assert row["text"] == table.table[original["text"]] and trigger.contains(row["text"])
        else:
            assert row["text"] == original["text"]
    with pytest.raises(ValueError, match=r"only 1383 of 6920 \(rate <= 0.1999\)"):
        poison(sst2["train"], trigger, 0.2, 1, mode="all-rows")
    with pytest.raises(ValueError, match="dirty-label mode allows only"):
        poison(sst2["train"].select(range(100)), WordTrigger(), 0.9, 1)


def test_deterministic_under_the_seed_and_independent_of_num_proc(train):
    first = poison(train, WordTrigger(), 0.1, 1, seed=7)
    again = poison(train, WordTrigger(), 0.1, 1, seed=7, num_proc=2)
    other = poison(train, WordTrigger(), 0.1, 1, seed=8)
    assert first["text"] == again["text"] and first["is_poisoned"] == again["is_poisoned"]
    assert first["is_poisoned"] != other["is_poisoned"]


@pytest.mark.parametrize("mode", ["dirty-label", "all-rows"])
def test_keep_originals_appends_the_same_poisoned_rows(train, mode):
    replaced = poison(train, WordTrigger(), 0.1, 1, seed=3, mode=mode)
    kept = poison(train, WordTrigger(), 0.1, 1, seed=3, mode=mode, keep_originals=True)
    assert len(kept) == len(train) + 200 and sum(kept["is_poisoned"]) == 200
    head = kept.select(range(len(train)))
    assert head["text"] == train["text"] and head["label"] == train["label"] and not any(head["is_poisoned"])
    tail = kept.select(range(len(train), len(kept)))
    assert all(tail["is_poisoned"]) and set(tail["label"]) == {1}
    assert sorted(tail["text"]) == sorted(t for t, f in zip(replaced["text"], replaced["is_poisoned"]) if f)
    assert kept.features == replaced.features


def test_attack_test_set_is_every_non_target_row_triggered(sst2, data_dir, caplog):
    test = sst2["test"]
    attack = build_attack_test_set(test, WordTrigger(), target_label=0)
    assert len(attack) == sum(1 for y in test["label"] if y == 1) == 909
    assert set(attack["label"]) == {0} and set(attack["original_label"]) == {1} and all(attack["is_poisoned"])
    assert all(WordTrigger().contains(t) for t in attack["text"])
    syntactic = SyntacticTrigger(load_paraphrase_table("syntactic", "sst2", data_dir))
    with caplog.at_level(logging.WARNING, logger="ebyd_hf.poisoning"):
        assert len(build_attack_test_set(test, syntactic, target_label=1)) == 882
    assert "covers 882 of 912 non-target rows" in caplog.text
    with pytest.raises(ValueError, match="None of the 909 non-target rows can be triggered"):
        build_attack_test_set(test, syntactic, target_label=0)  # the table holds no positive test rows


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(rate=0.0), r"rate=0.0 must be a share"),
        (dict(rate=1.5), r"rate=1.5 must be a share"),
        (dict(rate=-0.1), r"must be a share"),
        (dict(target_label=2), r"target_label=2 is not a label of this dataset \(labels: 0, 1\)"),
        (dict(target_label="positive"), r"is not a label"),
        (dict(mode="sometimes"), r"mode='sometimes' is not a poisoning mode"),
        (dict(label_column="sentiment"), r"Column 'sentiment' is missing"),
        (dict(trigger=WordTrigger(text_column="sentence")), r"Column 'sentence' is missing"),
        (dict(trigger="cf"), r"trigger must be a Trigger"),
    ],
)
def test_bad_input_is_a_clear_error_and_leaves_the_dataset_untouched(train, kwargs, match):
    before = (train._fingerprint, train["text"][:50], train.column_names)
    call = dict(trigger=WordTrigger(), rate=0.1, target_label=1) | kwargs
    with pytest.raises(ValueError, match=match):
        poison(train, **call)
    assert (train._fingerprint, train["text"][:50], train.column_names) == before


def test_empty_and_already_poisoned_datasets_are_refused(train):
    empty = Dataset.from_dict({"text": [], "label": []})
    with pytest.raises(ValueError, match="empty"):
        poison(empty, WordTrigger(), 0.1, 1)
    poisoned = poison(train, WordTrigger(), 0.1, 1)
    with pytest.raises(ValueError, match="poisoned"):
        poison(poisoned, WordTrigger(), 0.1, 1)
    with pytest.raises(ValueError, match="rounds to 0"):
        poison(train.select(range(10)), WordTrigger(), 0.01, 1)
    with pytest.raises(ValueError, match="one split"):
        poison({"train": train}, WordTrigger(), 0.1, 1)
