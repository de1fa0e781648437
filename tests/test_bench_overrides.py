"""The benchmark scripts' helpers (bench/): ``--set`` overrides, own fields and method options (JSON or dotted keys)
merged per ``*_config`` and checked by building the config; the detection fields of a record, read from the typed
``DetectionResult``."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from ebyd_hf import ExposeConfig
from ebyd_hf.report import DefenseReport, DetectionResult, RuleOutcome, TriggerCandidate
from ebyd_hf.vision import VisionExposeConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from overrides import parse_overrides  # noqa: E402
from records import detection_fields, detection_from_dict  # noqa: E402


def test_own_fields_are_typed_and_a_repeated_key_fills_a_list():
    overrides = parse_overrides(ExposeConfig, ["seed=3", "known_triggers=a b", "known_triggers=c", "max_length=64"])
    assert overrides == {"seed": 3, "known_triggers": ["a b", "c"], "max_length": 64}


def test_dotted_options_are_typed_by_the_method_config_and_nested():
    overrides = parse_overrides(
        ExposeConfig,
        ["detection_config.threshold=0.8", "detection_config.residue.length=0", "detection_config.max_length=None"],
    )
    assert overrides == {"detection_config": {"threshold": 0.8, "residue": {"length": 0}, "max_length": None}}
    config = ExposeConfig("unused", **overrides)
    assert config.detection_config.threshold == 0.8
    assert config.detection_config.residue.length == 0
    assert config.detection_config.residue.pool == 32  # the other options keep their defaults
    assert config.detection_config.max_length is None


def test_json_and_dotted_options_merge_in_order():
    overrides = parse_overrides(
        ExposeConfig,
        [
            'detection_config={"threshold": 0.9, "phrase": {"pool": 0, "z": 2.0}}',
            "detection_config.phrase.z=2.5",
            "detection_config.contexts=this {}",
            "detection_config.contexts=the {}",
            "removal_config.soft_trigger_length=0",
            "seed=1",
        ],
    )
    assert overrides == {
        "seed": 1,
        "detection_config": {"threshold": 0.9, "phrase": {"pool": 0, "z": 2.5}, "contexts": ["this {}", "the {}"]},
        "removal_config": {"soft_trigger_length": 0},
    }
    config = ExposeConfig("unused", **overrides)
    assert (config.detection_config.phrase.pool, config.detection_config.phrase.z) == (0, 2.5)
    assert config.removal_config.soft_trigger_length == 0


@pytest.mark.parametrize(
    "items, message",
    [
        (["detection_config.treshold=0.8"], "TriggerScanConfig has no option 'treshold'"),
        (["detection_config.residue.lenght=0"], "ResidueConfig has no option 'lenght'"),
        (['detection_config={"phrase": {"pol": 0}}'], "PhraseConfig has no option 'pol'"),
        (["detection_config.threshold=1.5"], r"TriggerScanConfig.threshold=1.5 must be in \(0, 1\]"),
        (["removal_config.soft_trigger_position=end"], "choose one of 'start', 'random', 'mixed'"),
        (["detection_threshold=0.8"], "ExposeConfig has no field detection_threshold"),
        (["detection_config.threshold.x=1"], "threshold is an option, not a nested config"),
        (["removal_config.finetune_when_clean=maybe"], "not a boolean"),
        (["detection_config.rows=many"], "not an integer"),
        (["detection_config=[1]"], "not a JSON object"),
        (["seed"], "expected KEY=VALUE"),
        (["removal_method=nope"], None),  # argparse's own choices error
    ],
)
def test_a_mistake_fails_before_anything_runs(items, message):
    with pytest.raises(SystemExit) as error:
        parse_overrides(ExposeConfig, items)
    if message is not None:
        assert error.match(message)


def test_options_are_checked_against_every_run():
    """``runs``: the settings of each run (a defense's removal method); an option one of them lacks fails up front."""
    overrides = parse_overrides(VisionExposeConfig, ["removal_config.finetune=True", "removal_config.stop_pull=None"])
    assert overrides == {"removal_config": {"finetune": True, "stop_pull": None}}
    assert VisionExposeConfig("unused", **overrides).removal_config.finetune is True
    with pytest.raises(SystemExit, match="FinetuneConfig has no option 'finetune'"):
        parse_overrides(
            VisionExposeConfig,
            ["removal_config.finetune=True"],
            [{"removal_method": "rnp"}, {"removal_method": "finetune"}],
        )
    with pytest.raises(SystemExit, match="soft_trigger_reference=True trains its reference from base_model"):
        parse_overrides(ExposeConfig, ["removal_config.soft_trigger_reference=True"])
    assert parse_overrides(
        ExposeConfig, ["removal_config.soft_trigger_reference=true"], [{"base_model": "some/base"}]
    ) == {"removal_config": {"soft_trigger_reference": True}}


def test_an_option_of_a_method_set_in_the_same_overrides_is_typed_by_its_config():
    overrides = parse_overrides(ExposeConfig, ["removal_method=fine_pruning", "removal_config.ratio=0.1"])
    assert overrides == {"removal_method": "fine_pruning", "removal_config": {"ratio": 0.1}}
    with pytest.raises(SystemExit, match="FinePruningConfig has no option 'soft_trigger_length'"):
        parse_overrides(ExposeConfig, ["removal_method=fine_pruning", "removal_config.soft_trigger_length=0"])


@pytest.mark.parametrize(
    "config_class, items",
    [  # the --set lines of bench/results/*.md
        (ExposeConfig, ["detection_config.residue.length=0", "known_triggers=i watch this movie"]),
        (ExposeConfig, ["detection_config.phrase.regrow_pool=0"]),
        (ExposeConfig, ["detection_config.phrase.pool=0", "detection_config.residue.length=0"]),
        (ExposeConfig, ["detection_config.context_candidates=0", "detection_config.phrase.pool=0"]),
        (ExposeConfig, ['detection_config={"context_candidates": 0}', "seed=2"]),
        (VisionExposeConfig, ["removal_config.finetune=True", "learning_rate=0.001"]),
        (VisionExposeConfig, ["exposure_learning_rate=1e-5", "exposure_max_steps=600"]),
        (VisionExposeConfig, ["optim=sgd", "optim_args=momentum=0.9", "exposure_learning_rate=0.01"]),
    ],
)
def test_the_documented_overrides_parse(config_class, items):
    parse_overrides(config_class, items)


def _detection() -> DetectionResult:
    token = TriggerCandidate("3d", [42], target=1, score=0.7, sources=["embedding_shift"])
    return DetectionResult(
        backdoored=True,
        score=0.87,
        threshold=0.7,
        target_label=1,
        target_score=0.87,
        trigger_candidates=[token, TriggerCandidate("when it is ,", [1, 2, 3], target=1, score=0.1)],
        triggers=[token],
        decided_by="context",
        rules=[RuleOutcome("token", 0.7, 0.8, 1, False), RuleOutcome("template", 0.05, 0.5, 0, False)]
        + [RuleOutcome("context", 0.87, 0.7, 1, True)],
        details={
            "best_token": {"trigger": "3d", "score": 0.7, "target": 1},
            "best_in_context": {"trigger": "3d", "context_score": 0.87, "target": 1},
            "templates": {"mean_flip_rate": 0.05, "target": 0},
            "phrase_pool": [{"token": "watch", "z": 7.3}],
            "phrases": [],
            "residue": {"flagged": "3d", "pool": [], "phrase": {"trigger": "i watch this"}, "used": True},
        },
    )


def test_detection_fields_read_the_typed_result():
    fields = detection_fields(_detection())
    assert fields["trigger_candidates"] == ["3d", "when it is ,"]
    assert (fields["verdict_backdoored"], fields["predicted_target"], fields["decided_by"]) == (True, 1, "context")
    assert [r["rule"] for r in fields["rules"]] == ["token", "template", "context"]
    assert fields["rules"][2] == {"rule": "context", "score": 0.87, "threshold": 0.7, "target": 1, "fired": True}
    json.dumps(fields)
    assert "rules" not in detection_fields(None) and detection_fields(None)["trigger_candidates"] == []


def test_a_report_json_reads_back_as_the_typed_result():
    report = DefenseReport(model="m", clean_rows=500, detection=_detection())
    data = json.loads(json.dumps(report.to_dict()))["detection"]
    assert detection_from_dict(data) == _detection()
    assert detection_from_dict({**data, "added_later": 1}) == _detection()
    with pytest.raises(ValueError, match="Not a detection report"):
        detection_from_dict({"backdoored": True})


def test_defense_record_of_a_detection_and_of_a_baseline():
    import defense

    report = DefenseReport(model="m", clean_rows=500, detection_method="trigger_scan", detection=_detection())
    record = defense.defense_record("detect", {"ca": None, "asr": None}, report, seconds=12.34)
    assert record["decided_by"] == "context" and len(record["rules"]) == 3
    assert record["detection_rules"]["context"] == {"trigger": "3d", "context_score": 0.87, "target": 1}
    assert record["detection_rules"]["residue"] == {
        "flagged": "3d",
        "phrase": {"trigger": "i watch this"},
        "used": True,
    }
    assert record["detection_rules"]["phrase_pool"] == ["watch"] and record["seconds"] == 12.3
    json.dumps(record)
    baseline = defense.defense_record("finetune", {"ca": 0.9, "asr": 0.5}, DefenseReport("m", 500), seconds=1.0)
    assert baseline["verdict_backdoored"] is None and baseline["detection_rules"] is None
    assert "decided_by" not in baseline and "rules" not in baseline
    assert asdict(_detection().rules[0])["rule"] == "token"
