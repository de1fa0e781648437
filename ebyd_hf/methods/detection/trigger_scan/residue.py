"""The residue step of the trigger scan, after the verdict: a token the context rule flagged is a piece of a longer
trigger, and unlearning it alone leaves the rest of the sentence able to fire. The other pieces are the tokens that
are neutral alone but moved off the task's directions: the beam grows them into a phrase of ``residue.length``
tokens, and when it flips at least ``residue.threshold``, the flagged token inserted at each of its positions joins
the triggers to unlearn (where the token sits in the sentence is unknown; one of the positions is right)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ....report import TriggerCandidate
from ....trigger_search import compose_at_every_position, grow_phrase, insertion_effects
from .context import ScanContext


@dataclass
class Residue:
    """What the residue step searched and grew: ``triggers`` are the compositions to unlearn (empty unless ``used``)."""

    flagged: str
    pool: list[dict[str, Any]]
    phrase: dict[str, Any] | None = None
    used: bool = False
    triggers: list[TriggerCandidate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"flagged": self.flagged, "pool": self.pool, "phrase": self.phrase, "used": self.used}

    def note(self) -> str | None:
        """The line of the markdown report, when a phrase was grown."""
        if self.phrase is None:
            return None
        use = (
            f"`{self.flagged}` unlearned at each of its {len(self.phrase['token_ids']) + 1} positions"
            if self.used
            else "under residue.threshold, not unlearned"
        )
        return f'Residue of `{self.flagged}`: "{self.phrase["trigger"]}" ({self.phrase["score"]:.3f}); {use}'


def grow_residue(ctx: ScanContext, flagged: TriggerCandidate, triggers: list[TriggerCandidate]) -> Residue:
    """The residue of ``flagged`` (the token whose context score flagged the model), grown from the tokens that are
    neutral alone; the tokens of ``triggers`` (already unlearned) are left out of the search."""
    config, target = ctx.config.residue, flagged.target
    left_out = {t for c in [flagged, *triggers] for t in c.token_ids}
    ranked = ctx.off_direction_pool(config.z, 2 * config.pool, left_out)
    alone = insertion_effects(ctx.model, ctx.probe, ctx.probe_labels, [[t] for t in ranked], ctx.pad_id, seed=ctx.seed)
    pool = [t for t, e in zip(ranked, alone) if e.flip_rate[target] < config.neutral][: config.pool]
    found = Residue(flagged=flagged.trigger, pool=ctx.pool_report(pool))
    if len(pool) < 2:
        return found
    (*_, phrase) = grow_phrase(
        ctx.model,
        ctx.probe[: config.rows],
        ctx.probe_labels[: config.rows],
        pool,
        target,
        ctx.pad_id,
        max_length=config.length,
        beam=ctx.config.phrase.beam,
        seed=ctx.seed,
    )
    composed = compose_at_every_position(phrase, flagged.token_ids)
    effects = insertion_effects(ctx.model, ctx.probe, ctx.probe_labels, [phrase, *composed], ctx.pad_id, seed=ctx.seed)
    measured = ctx.candidate(phrase, effects[0], target, [], trigger=ctx.tokenizer.decode(phrase))
    found.phrase = {
        "trigger": measured.trigger,
        "token_ids": phrase,
        "score": measured.score,
        "margin_shift": measured.margin_shift,
    }
    found.used = measured.score >= config.threshold
    if found.used:
        found.triggers = [
            ctx.candidate(ids, effect, target, ["residue"], trigger=ctx.tokenizer.decode(ids))
            for ids, effect in zip(composed, effects[1:])
        ]
    return found
