"""The trigger scan: find what the suspicious model answers to as a trigger, and read the verdict from it.

Candidate steps (:mod:`.candidates`), run first:

- tokens whose input embeddings moved most from ``base_model``, and tokens a first-order (HotFlip) estimate says
  push hardest toward each class, each inserted alone into clean probe rows and measured by its flip rate (the
  share of correctly classified rows of other classes it sends to one class);
- the clean-feature test: a token that, or whose near token, the clean data itself labels with its class is a
  feature of the task (a swear word in an abuse detector), reported but never counted nor unlearned;
- the best tokens of each class inserted jointly (a trigger of several tokens); the templates.

Verdict rules (:mod:`.rules`, :mod:`.phrase`), read in order; the first that fires decides:

1. ``token``: one token flips at least ``threshold`` of the rows alone (a rare-word trigger).
2. ``template``: neutral clause openings flip, on average, at least ``template_threshold`` (a structural trigger).
3. ``context``: a token inside neutral frames flips at least ``context_threshold`` (one piece of a sentence
   trigger, which fires only in part alone).
4. ``phrase``: tokens that moved off the task's directions, grown into a phrase, flip at least
   ``phrase.threshold`` (a sentence of common words; needs ``base_model``).

After a ``context`` verdict, the residue step (:mod:`.residue`) grows the rest of the sentence and adds the flagged
token composed into it to the triggers. No rule fired: the model is called clean, with the token rule's reading.
"""

from __future__ import annotations

from typing import ClassVar

from ....report import DetectionResult
from ....trigger_search import probe_autocast
from ...base import DetectionMethod, progress, register_detection
from .candidates import find_candidates
from .config import TriggerScanConfig
from .context import ScanContext, best_first
from .phrase import PhraseRule
from .residue import grow_residue
from .rules import ContextRule, Reading, Rule, TemplateRule, TokenRule


@register_detection
class TriggerScan(DetectionMethod):
    """Detection by trigger scan (text models): candidate triggers are inserted into clean rows, and an ordered list
    of rules reads the verdict, the target label and the triggers to unlearn from what they do.

    Example:
        >>> from ebyd_hf.methods.detection.trigger_scan import TriggerScan
        >>> scan = TriggerScan({"context_threshold": 0.75, "phrase": {"pool": 0}})
        >>> [rule.name for rule in scan.rules], scan.config.phrase.pool, scan.insertion_room()
        (['token', 'template', 'context', 'phrase'], 0, 16)
    """

    name: ClassVar[str] = "trigger_scan"
    config_class: ClassVar[type] = TriggerScanConfig
    uses_exposure: ClassVar[bool] = False
    modalities: ClassVar[tuple[str, ...]] = ("text",)
    rules: ClassVar[tuple[Rule, ...]] = (TokenRule(), TemplateRule(), ContextRule(), PhraseRule())

    def insertion_room(self) -> int:
        return max(16, self.config.num_candidates)

    def detect(self, trainer, exposure) -> DetectionResult:
        bar = progress(trainer, "Trigger scan: candidates", total=2 + len(self.rules))
        with bar, probe_autocast(trainer.suspicious_model, self.config.precision):
            ctx = ScanContext.from_trainer(trainer, self.config)
            find_candidates(ctx)
            bar.update()
            readings, decided = self.read_rules(ctx, bar)
            bar.set_description("Trigger scan: other targets")
            more = self.read_other_targets(ctx, decided) if decided is not None else []
            bar.set_description("Trigger scan: verdict")
            result = self.result(ctx, readings, decided, more)
            bar.update(bar.total - bar.n)
        result.details["base_model"] = trainer.args.base_model
        return result

    def read_rules(self, ctx: ScanContext, bar=None, targets=None) -> tuple[list[Reading], Reading | None]:
        """Every rule's reading (toward any class, or ``targets``), in order, up to the first that fires (which
        decides), or ``None`` when none does."""
        readings = []
        for rule in self.rules:
            if bar is not None:
                bar.set_description(f"Trigger scan: {rule.name} rule")
            reading = rule.read(ctx, targets)
            if bar is not None:
                bar.update()
            if reading is None:
                continue
            readings.append(reading)
            if reading.outcome.fired:
                return readings, reading
        return readings, None

    def read_other_targets(self, ctx: ScanContext, decided: Reading) -> list[Reading]:
        """A model may carry backdoors toward several labels (two triggers, two targets). Once a rule flags one
        target, the rules are read again toward the labels not flagged yet, until none fires; each firing reading
        adds its target and its triggers. A model no rule flags is never read again, so this adds no false alarm on
        a clean model."""
        flagged, more = [decided.outcome.target], []
        while len(flagged) < ctx.num_labels:
            _, also = self.read_rules(ctx, targets=[c for c in range(ctx.num_labels) if c not in flagged])
            if also is None:
                break
            more.append(also)
            flagged.append(also.outcome.target)
        return more

    def result(
        self, ctx: ScanContext, readings: list[Reading], decided: Reading | None, more: list[Reading] = ()
    ) -> DetectionResult:
        """The verdict of the deciding rule (of the first rule read when none fired), with at most
        ``num_candidates`` triggers toward its target, the residue's when the context rule decided, and the
        candidates reported best first (the deciding rule's own first)."""
        config = ctx.config
        outcome = (decided or readings[0]).outcome
        triggers = decided.triggers[: config.num_candidates] if decided else []
        details = {
            "candidates_verified": len(ctx.found) + len(ctx.templates),
            "probe_rows": len(ctx.probe),
            "probe_max_length": config.max_length,
            "best_token": None,
            "best_in_context": None,
            "contexts": list(config.contexts),
            "templates": {"mean_flip_rate": ctx.template_score, "target": ctx.template_target},
            "phrase_pool": [],
            "residue": None,
            "phrases": [],
            "clean_features": [
                {"trigger": c.trigger, "score": c.score, "target": c.target, "clean_support": c.clean_support}
                for c in ctx.found
                if len(c.token_ids) == 1 and c.clean_feature and c.score >= config.threshold
            ],
        }
        for reading in readings:
            details.update(reading.details)
        notes = []
        if decided is not None and decided.outcome.rule == ContextRule.name and self._residue_applies(ctx):
            residue = grow_residue(ctx, decided.evidence, triggers)
            triggers = triggers + residue.triggers
            details["residue"] = residue.to_dict()
            notes += [residue.note()] if residue.note() else []
        for also in more:
            triggers = triggers + also.triggers[: config.num_candidates]
        details["other_targets"] = [vars(also.outcome) for also in more]
        candidates = best_first(ctx.found[: config.num_candidates] + ctx.templates[:2])
        leads = [c for reading in ([decided] if decided else []) + list(more) for c in reading.leads]
        candidates = leads + [c for c in candidates if c not in leads]
        return DetectionResult(
            backdoored=decided is not None,
            score=outcome.score,
            threshold=outcome.threshold,
            target_label=outcome.target if decided else None,
            target_score=outcome.score,
            trigger_candidates=candidates[: config.num_candidates],
            triggers=triggers,
            decided_by=outcome.rule if decided else None,
            other_targets=[also.outcome.target for also in more],
            rules=[r.outcome for r in readings] + [also.outcome for also in more],
            notes=notes,
            details=details,
        )

    def _residue_applies(self, ctx: ScanContext) -> bool:
        return ctx.base is not None and ctx.tokenizer is not None and bool(ctx.config.residue.length)
