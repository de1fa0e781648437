"""The defense's report and model card: model-index numbers, the target by name, warnings when not purified."""

import math

import pytest
from huggingface_hub import ModelCard
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ebyd_hf import (
    DefenseReport,
    ExposeConfig,
    ExposeTrainer,
    WordTrigger,
    build_attack_test_set,
    measure_backdoor,
)
from ebyd_hf.metrics import defense_effectiveness_rating
from ebyd_hf.model_card import render_model_card


def _report(before, after, removal="unlearn_trigger"):
    return DefenseReport(
        model="suspicious", clean_rows=300, removal_method=removal, before=before, after=after, label_names=["a", "b"]
    )


@pytest.mark.parametrize(
    "after,warned",
    [
        ({"ca": 0.88, "asr": 0.10}, []),
        ({"ca": 0.88, "asr": 0.995}, ["did not lower the attack success rate"]),
        ({"ca": 0.88, "asr": 0.98}, ["removed less than half"]),  # lowered by two points: still a backdoor
        ({"ca": 0.85, "asr": 0.10}, ["cost 3.0 points of clean accuracy"]),
        ({"ca": 0.80, "asr": 1.00}, ["did not lower", "cost 8.0 points"]),
    ],
)
def test_the_report_says_plainly_when_the_defense_did_not_purify(after, warned):
    report = _report({"ca": 0.88, "asr": 1.0}, after)
    assert len(report.warnings) == len(warned)
    assert all(text in warning for text, warning in zip(warned, report.warnings))
    assert report.purified is (not warned)
    assert report.to_dict()["warnings"] == report.warnings
    card = str(render_model_card(report, "m"))
    assert card.count("> **Warning:**") == len(warned)
    assert all(f"> **Warning:** {w}" in report.to_markdown() for w in report.warnings)


@pytest.mark.parametrize(
    "before,after,warned",
    [
        (1.00, 0.15, []),  # 0.05 above the floor: removed
        (1.00, 0.40, ["still 0.300 above a never-poisoned model's (0.100)"]),  # halved, yet well above the floor
        (0.10, 0.10, []),  # at the floor before: nothing to remove, nothing left
    ],
)
def test_with_a_floor_the_excess_left_decides(before, after, warned):
    report = _report({"ca": 0.88, "asr": before, "asr_floor": 0.1}, {"ca": 0.88, "asr": after, "asr_floor": 0.1})
    assert len(report.warnings) == len(warned) and all(t in w for t, w in zip(warned, report.warnings))
    assert report.purified is (not warned)


def test_nothing_measured_or_nothing_removed_is_never_certified():
    unmeasured = _report({}, {})
    assert unmeasured.warnings == [] and unmeasured.purified is None
    assert "no measurement certifies it" in str(render_model_card(unmeasured, "m"))
    scan_only = _report({"ca": 0.88, "asr": 1.0}, {}, removal=None)
    assert scan_only.purified is False
    assert "No removal ran" in str(render_model_card(scan_only, "m"))


def test_labels_are_named_where_the_model_names_them():
    report = _report({}, {})
    assert (report.label_name(1), report.label_name(None)) == ("1 (b)", "—")
    assert DefenseReport(model="m", clean_rows=1).label_name(1) == "1"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.1, 88.0, None])
def test_der_refuses_what_is_not_a_rate(bad):
    with pytest.raises(ValueError, match="must be a rate in \\[0, 1\\]"):
        defense_effectiveness_rating(ca_before=bad, asr_before=1.0, ca_after=0.9, asr_after=0.1)
    assert defense_effectiveness_rating(0.9, 1.0, 0.9, 0.0) == 1.0


def test_the_cards_model_index_equals_a_recomputation_of_ca_and_asr(tiny_victims, sst2, tmp_path):
    """The card bar: a real defense of the tiny word victim, measured by the trainer; the rendered card's
    model-index numbers equal CA/ASR measured again, independently, on the same data."""
    folder, _ = tiny_victims["t1"]
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    clean = sst2["validation"].shuffle(seed=0).select(range(300))
    args = ExposeConfig(
        str(tmp_path / "out"), use_cpu=True, disable_tqdm=True, report_to="none", seed=0, num_train_epochs=2
    )
    trainer = ExposeTrainer(model, args, train_dataset=clean, processing_class=tokenizer)
    trainer.train()
    test = sst2["test"].shuffle(seed=3).select(range(300))
    attack = build_attack_test_set(test, WordTrigger(), target_label=1)
    reference = AutoModelForSequenceClassification.from_pretrained(tiny_victims["clean"][0])  # never poisoned
    trainer.measure(
        test, attack, target_label=1, description="SST-2 test (300 rows)", trigger="word", reference_model=reference
    )

    card = ModelCard(str(render_model_card(trainer.report, "tiny-purified", datasets=["sst2"])))
    results = {r.metric_name: r for r in card.data.eval_results}
    for when, scored in (("before", model), ("after", trainer.model)):
        again = measure_backdoor(scored, tokenizer, test, attack, 1, max_length=args.max_length)
        assert results[f"Clean accuracy ({when} defense)"].metric_value == round(again["ca"], 4)
        assert results[f"ASR ({when} defense)"].metric_value == round(again["asr"], 4)
        floor = measure_backdoor(reference, tokenizer, test, attack, 1, max_length=args.max_length)["asr"]
        excess = results[f"Excess ASR over a never-poisoned model ({when} defense)"].metric_value
        assert excess == round(again["asr"] - floor, 4)
    assert {r.dataset_type for r in results.values()} == {"sst2"}
    assert results["ASR (after defense)"].dataset_name == "SST-2 test (300 rows), triggered (word)"
    assert results["Clean accuracy (after defense)"].dataset_name == "SST-2 test (300 rows)"
    assert "- Target label: 1 (positive)" in card.text
    assert "| model | CA | ASR | excess ASR |" in card.text and "excess ASR (floor" in trainer.report.to_markdown()
    assert "  - triggers unlearned: `" in card.text  # the removal as readable text, not JSON
    assert trainer.report.purified == (not trainer.report.warnings)
