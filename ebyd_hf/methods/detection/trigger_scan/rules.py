"""The verdict rules of the trigger scan, in the order they are read: the first that fires decides.

Each rule reads a :class:`~.context.ScanContext` and returns a :class:`Reading`: its :class:`RuleOutcome` (score,
threshold, target, fired) and, when it fires, the triggers removal should unlearn. A rule that cannot run (no
templates, no contexts, no base model) returns ``None`` and is not recorded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ....report import RuleOutcome, TriggerCandidate
from .candidates import measure_contexts, templates_toward
from .context import ScanContext


@dataclass
class Reading:
    """What one rule read: its outcome, the triggers to unlearn when it fired (toward its target, best first), the
    candidates that lead the report when it decides, the candidate its score is of, and JSON-able measurements."""

    outcome: RuleOutcome
    triggers: list[TriggerCandidate] = field(default_factory=list)
    leads: list[TriggerCandidate] = field(default_factory=list)
    evidence: TriggerCandidate | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Rule(ABC):
    """One verdict rule: a ``name`` (recorded as ``DetectionResult.decided_by``) and :meth:`read`."""

    name: ClassVar[str]

    @abstractmethod
    def read(self, ctx: ScanContext, targets: Sequence[int] | None = None) -> Reading | None:
        """The rule's reading of the scan so far, toward any class or only ``targets`` (a model already flagged
        for another), or ``None`` when it cannot run."""

    def outcome(self, score: float, threshold: float, target: int | None) -> RuleOutcome:
        return RuleOutcome(self.name, float(score), float(threshold), target, bool(score >= threshold))


class TokenRule(Rule):
    """A single token (not a clean feature) that, inserted alone, flips at least ``threshold`` of the probe rows.
    Its triggers are every confirmed candidate toward its target, joint ones included (several strong clean words
    together flip a clean model too, so joint candidates are unlearned but never decide)."""

    name: ClassVar[str] = "token"

    def read(self, ctx: ScanContext, targets: Sequence[int] | None = None) -> Reading:
        threshold = ctx.config.threshold
        eligible = ctx.eligible(targets)
        top = eligible[0] if eligible else None
        outcome = self.outcome(top.score if top else 0.0, threshold, top.target if top else None)
        triggers = [
            c for c in ctx.found if c.score >= threshold and not c.clean_feature and c.target == outcome.target
        ]
        details = {"best_token": {"trigger": None, "score": 0.0, "target": None}}
        if top is not None:
            details["best_token"] = {"trigger": top.trigger, "score": top.score, "target": top.target}
        return Reading(outcome, triggers if outcome.fired else [], evidence=top, details=details)


class TemplateRule(Rule):
    """Neutral clause openings prepended to the rows: a structural backdoor answers to all of them, a clean model to
    one at most by chance, so the rule reads their mean flip rate toward one class against ``template_threshold``.
    Its triggers are the templates over the threshold (the best one, if none is)."""

    name: ClassVar[str] = "template"

    def read(self, ctx: ScanContext, targets: Sequence[int] | None = None) -> Reading | None:
        if not ctx.templates:
            return None
        threshold = ctx.config.template_threshold
        target, score = ctx.template_target, ctx.template_score
        if targets is not None:
            target = max(targets, key=lambda c: ctx.template_flips[c])
            score = ctx.template_flips[target]
        outcome = self.outcome(score, threshold, target)
        if not outcome.fired:
            return Reading(outcome)
        templates = ctx.templates if target == ctx.template_target else templates_toward(ctx, target)
        triggers = [c for c in templates if c.score >= threshold] or templates[:1]
        return Reading(outcome, triggers, leads=templates[: ctx.config.num_candidates])


class ContextRule(Rule):
    """A token that is one piece of an inserted sentence fires only in part alone, and almost fully with any word
    beside it: the best single tokens are inserted again inside neutral frames, and the best mean flip rate (the
    context score) is read against ``context_threshold``. Its triggers are the candidates confirmed alone or in
    context. The context scores are measured here, when the rule is reached."""

    name: ClassVar[str] = "context"

    def read(self, ctx: ScanContext, targets: Sequence[int] | None = None) -> Reading | None:
        config = ctx.config
        if not ctx.contexts_measured:
            if ctx.tokenizer is None or not config.contexts or not config.context_candidates:
                return None
            measure_contexts(ctx)
        scored = [c for c in ctx.eligible(targets) if c.context_score is not None]
        best = max(scored, key=lambda c: c.context_score, default=None)
        if best is None:
            return Reading(self.outcome(0.0, config.context_threshold, None), details={"best_in_context": None})
        outcome = self.outcome(best.context_score, config.context_threshold, best.target)
        details = {
            "best_in_context": {"trigger": best.trigger, "context_score": best.context_score, "target": best.target}
        }
        if not outcome.fired:
            return Reading(outcome, evidence=best, details=details)
        triggers = [
            c
            for c in ctx.found
            if not c.clean_feature
            and c.target == outcome.target
            and (c.score >= config.threshold or (c.context_score or 0.0) >= config.context_threshold)
        ]
        return Reading(outcome, triggers, evidence=best, details=details)
