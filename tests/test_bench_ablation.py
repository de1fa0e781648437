"""The rule ablation (bench/ablation.py): the verdict with a rule removed is the first other rule that fires."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import ablation  # noqa: E402


def _record(targets, **fired):
    rules = {
        name: None if target is None else {"score": 1.0, "threshold": 0.5, "target": target, "fired": target >= 0}
        for name, target in fired.items()
    }
    return {"order": list(fired), "rules": rules, "targets": targets}


def test_removing_a_rule_hands_the_verdict_to_the_next_that_fires():
    record = _record([1], token=-1, template=None, context=1, phrase=0)  # -1: read, did not fire
    assert ablation.verdict(record) == (True, 1, "context")
    assert ablation.verdict(record, without="context") == (True, 0, "phrase")
    assert ablation.right(record) and not ablation.right(record, without="context")  # phrase names the wrong target
    clean = _record([], token=-1, template=-1, context=-1, phrase=1)
    assert not ablation.right(clean) and ablation.right(clean, without="phrase")  # the phrase rule's false alarm
    table = ablation.markdown([record | {"victim": "v", "set": "zoo"}])
    assert "- zoo: 1 of 1 right with every rule; without token 1, without template 1, without context 0" in table
    # without base_model the phrase rule cannot run: the rules that need none must carry the verdict
    assert ablation.verdict(record, without=("phrase", "context")) == (False, None, None)
    assert (
        "- zoo, no `base_model` (so no phrase rule): 1 of 1 right; also without token 1, also without template 1, "
        in table
    )
    assert "also without context 0." in table  # context alone caught it
    assert "| v | zoo | 1 | 1.000 / 0.50 → -1 | — | **1.000 / 0.50 → 1** |" in table
