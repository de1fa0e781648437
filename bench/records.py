"""What the benchmark scripts record of a detection, read from the typed :class:`~ebyd_hf.report.DetectionResult`
(rebuilt from a report's JSON where the result comes from another process)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from ebyd_hf.report import DetectionResult, RuleOutcome, TriggerCandidate


def detection_fields(det: DetectionResult | None) -> dict[str, Any]:
    """A record's detection fields: verdict, score, target, the reported candidates' text, the rule that decided
    and every rule read (:func:`decision_fields`). Without a detection (a baseline), the verdict fields are empty and
    there is no ``decided_by`` / ``rules``."""
    if det is None:
        return {
            "verdict_backdoored": None,
            "detection_score": None,
            "predicted_target": None,
            "other_targets": [],
            "trigger_candidates": [],
        }
    return {
        "verdict_backdoored": det.backdoored,
        "detection_score": det.score,
        "predicted_target": det.target_label,
        "other_targets": list(det.other_targets),
        "trigger_candidates": [c.trigger for c in det.trigger_candidates],
        **decision_fields(det),
    }


def decision_fields(det: DetectionResult) -> dict[str, Any]:
    """``decided_by``: the rule that flagged the model (``None``: none fired); ``rules``: every rule read, in order,
    with its ``rule`` name, ``score``, ``threshold``, ``target`` and whether it ``fired`` (the keys of the
    library's ``defense_report.json``)."""
    return {"decided_by": det.decided_by, "rules": [asdict(outcome) for outcome in det.rules]}


def detection_from_dict(data: dict[str, Any]) -> DetectionResult:
    """The :class:`DetectionResult` a report's JSON (``DefenseReport.to_dict()["detection"]``) was written from.
    Keys the dataclasses do not know are left out; a missing required one is an error naming the key."""
    try:
        values = _known(DetectionResult, data)
        values["trigger_candidates"] = [
            TriggerCandidate(**_known(TriggerCandidate, c)) for c in data.get("trigger_candidates", [])
        ]
        values["triggers"] = [TriggerCandidate(**_known(TriggerCandidate, c)) for c in data.get("triggers", [])]
        values["rules"] = [RuleOutcome(**_known(RuleOutcome, r)) for r in data.get("rules", [])]
        return DetectionResult(**values)
    except TypeError as error:
        raise ValueError(f"Not a detection report of this version of ebyd_hf: {error}.") from None


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls) if f.init}
    return {key: value for key, value in data.items() if key in names}
