"""The phrase rule of the trigger scan: a trigger sentence of common words has no token that fires alone or in a
frame, but its words' embeddings moved off the directions along which fine-tuning moves the task's own words. The
tokens of highest off-direction z-score are grown by a beam search into the phrase that pushes hardest toward each
class; the model is flagged when one flips at least ``phrase.threshold`` of the probe rows the beam did not score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from ....report import TriggerCandidate
from ....trigger_search import grow_phrase, insertion_effects
from .context import ScanContext, best_first
from .rules import Reading, Rule


def grow_phrases(ctx: ScanContext, wide: bool = False, targets=None) -> tuple[list[TriggerCandidate], list[dict]]:
    """The best phrase of each length toward each class (or ``targets``), grown from the off-direction pool (clean
    features left out) on the first ``phrase.rows`` probe rows and verified on the others, strongest first; and the
    pool, as JSON. The pool is the ``phrase.pool`` tokens over ``phrase.z``, or with ``wide`` the
    ``phrase.regrow_pool`` over ``phrase.regrow_z``."""
    config = ctx.config.phrase
    least, size = (config.regrow_z, config.regrow_pool) if wide else (config.z, config.pool)
    pool = ctx.off_direction_pool(least, 3 * size)[:size]
    if len(pool) < 2:
        return [], ctx.pool_report(pool)
    cache: dict = {}
    grown = []
    for target in range(ctx.num_labels) if targets is None else targets:
        for phrase in grow_phrase(
            ctx.model,
            ctx.probe[: config.rows],
            ctx.probe_labels[: config.rows],
            pool,
            target,
            ctx.pad_id,
            max_length=config.length,
            beam=config.beam,
            seed=ctx.seed,
            cache=cache,
        ):
            grown.append((phrase, target))
    # Verified on the probe rows the beam did not score: a phrase chosen for its flips on some rows flips more of
    # those rows than of others, so its score there would be biased upward (all rows when there are no others).
    held_out = slice(config.rows, None) if len(ctx.probe) > config.rows else slice(None)
    effects = insertion_effects(
        ctx.model, ctx.probe[held_out], ctx.probe_labels[held_out], [p for p, _ in grown], ctx.pad_id, seed=ctx.seed
    )
    phrases = [
        ctx.candidate(phrase, effect, target, ["phrase"], trigger=ctx.tokenizer.decode(phrase), reset_embeddings=True)
        for (phrase, target), effect in zip(grown, effects)
    ]
    return best_first(phrases), ctx.pool_report(pool)


class PhraseRule(Rule):
    """Grown phrases against ``phrase.threshold`` (high: weak sentiment words stacked flip a clean model too). When
    one fires, the phrase to unlearn is grown again toward its target from the wider pool, which recovers more of
    the sentence; the verdict keeps the strict pool. Needs ``base_model``."""

    name: ClassVar[str] = "phrase"

    def read(self, ctx: ScanContext, targets: Sequence[int] | None = None) -> Reading | None:
        config = ctx.config.phrase
        if ctx.base is None or ctx.tokenizer is None or not config.pool:
            return None
        phrases, pool = grow_phrases(ctx, targets=targets)
        best = phrases[0] if phrases else None
        outcome = self.outcome(best.score if best else 0.0, config.threshold, best.target if best else None)
        if outcome.fired and config.regrow_pool:
            regrown, _ = grow_phrases(ctx, wide=True, targets=[outcome.target])
            known = {tuple(c.token_ids) for c in phrases}
            phrases = best_first(phrases + [c for c in regrown if tuple(c.token_ids) not in known])
        details = {
            "phrase_pool": pool,
            "phrases": [{"trigger": c.trigger, "score": c.score, "target": c.target} for c in phrases],
        }
        if not outcome.fired:
            return Reading(outcome, evidence=best, details=details)
        toward = [c for c in phrases if c.target == outcome.target]
        triggers = [c for c in toward if c.score >= config.threshold]
        return Reading(outcome, triggers, leads=toward[:2], evidence=best, details=details)
