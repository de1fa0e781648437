"""The scan's candidate steps: propose tokens, verify them by insertion, test them against the clean data, try the
best jointly, measure the templates, and (when the context rule asks) measure the best tokens in neutral frames.
Each step reads and extends a :class:`~.context.ScanContext`."""

from __future__ import annotations

import numpy as np
import torch

from ....trigger_search import clean_support, embedding_shift, first_order_token_scores, insertion_effects
from .context import ScanContext, best_first


def find_candidates(ctx: ScanContext) -> None:
    """Every step the rules read: tokens, clean features, joint candidates, templates."""
    verify_tokens(ctx)
    mark_clean_features(ctx)
    add_joint_candidates(ctx)
    measure_templates(ctx)


def verify_tokens(ctx: ScanContext) -> None:
    """Tokens proposed by their embedding shift from the base (when given) and by their first-order score toward
    each class, ``config.candidates`` per source, each inserted alone into the probe rows."""
    config = ctx.config
    sources: dict[int, set[str]] = {}
    shift = None
    if ctx.base is not None:
        shift = embedding_shift(ctx.model, ctx.base).masked_fill(ctx.excluded, -1)
        for token in torch.argsort(shift, descending=True)[: config.candidates].tolist():
            sources.setdefault(token, set()).add("embedding_shift")
    scores = first_order_token_scores(ctx.model, ctx.sequences, ctx.pad_id, seed=ctx.seed)
    for row in scores.masked_fill(ctx.excluded, -float("inf")):
        for token in torch.argsort(row, descending=True)[: config.candidates].tolist():
            sources.setdefault(token, set()).add("first_order")
    tokens = list(sources)
    effects = insertion_effects(
        ctx.model, ctx.probe, ctx.probe_labels, [[t] for t in tokens], ctx.pad_id, seed=ctx.seed
    )
    found = []
    for token, effect in zip(tokens, effects):
        found.append(
            ctx.candidate(
                [token],
                effect,
                int(effect.flip_rate.argmax()),
                sorted(sources[token]),
                reset_embeddings=True,
                embedding_shift=None if shift is None else float(shift[token]),
            )
        )
    ctx.found = best_first(found)


def mark_clean_features(ctx: ScanContext) -> None:
    """The clean-feature test (``config.support_alpha``): a candidate that, or whose near token, occurs in clean rows
    of its class more often than chance is a feature of the task, reported but never counted nor unlearned."""
    config = ctx.config
    if config.support_alpha is None:
        return
    reference = ctx.base if ctx.base is not None else ctx.model
    evidence = clean_support(
        ctx.sequences,
        ctx.labels,
        [(c.token_ids[0], c.target) for c in ctx.found],
        reference.get_input_embeddings().weight,
        neighbors=config.support_neighbors,
        excluded=ctx.excluded,
    )
    for candidate, support in zip(ctx.found, evidence):
        candidate.clean_support = {
            "token": ctx.text([support.token]),
            "rows": support.rows,
            "rows_in_class": support.rows_in_class,
            "p_value": support.p_value,
        }
        candidate.clean_feature = support.p_value < config.support_alpha


def add_joint_candidates(ctx: ScanContext) -> None:
    """A trigger of several tokens may need them together: the best ``config.num_candidates`` single tokens of each
    class (clean features left out) are inserted jointly."""
    joint = []
    for target in range(ctx.num_labels):
        best = [c.token_ids[0] for c in ctx.eligible() if c.target == target][: ctx.config.num_candidates]
        if len(best) > 1:
            (effect,) = insertion_effects(ctx.model, ctx.probe, ctx.probe_labels, [best], ctx.pad_id, seed=ctx.seed)
            joint.append(ctx.candidate(best, effect, target, ["joint"], reset_embeddings=True))
    ctx.found = best_first(ctx.found + joint)


def measure_templates(ctx: ScanContext) -> None:
    """The templates (``config.templates``), each inserted after the first token of the probe rows; their mean flip
    rate toward the class it is highest for is the template rule's score."""
    texts = ctx.config.templates
    if ctx.tokenizer is None or not texts:
        return
    ids = [ctx.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    effects = insertion_effects(ctx.model, ctx.probe, ctx.probe_labels, ids, ctx.pad_id, seed=ctx.seed, position=1)
    ctx.template_flips = np.mean([effect.flip_rate for effect in effects], axis=0)
    ctx.template_effects = list(zip(texts, ids, effects))
    ctx.template_target = int(ctx.template_flips.argmax())
    ctx.template_score = float(ctx.template_flips[ctx.template_target])
    ctx.templates = templates_toward(ctx, ctx.template_target)


def templates_toward(ctx: ScanContext, target: int) -> list:
    """The measured templates as candidates toward ``target``, best first."""
    return best_first(
        ctx.candidate(token_ids, effect, target, ["template"], trigger=text, position="start")
        for text, token_ids, effect in ctx.template_effects
    )


def measure_contexts(ctx: ScanContext) -> None:
    """The context score of the best ``config.context_candidates`` single tokens of each class (clean features left
    out): their mean flip rate inside the neutral frames of ``config.contexts``."""
    config = ctx.config
    ctx.contexts_measured = True
    if ctx.tokenizer is None or not config.contexts or not config.context_candidates:
        return
    frames = [
        [ctx.tokenizer(part, add_special_tokens=False)["input_ids"] for part in frame.split("{}")]
        for frame in config.contexts
    ]
    eligible = ctx.eligible()
    chosen = [
        c
        for target in range(ctx.num_labels)
        for c in [c for c in eligible if c.target == target][: config.context_candidates]
    ]
    if not chosen:
        return
    phrases = [before + c.token_ids + after for c in chosen for before, after in frames]
    effects = insertion_effects(ctx.model, ctx.probe, ctx.probe_labels, phrases, ctx.pad_id, seed=ctx.seed)
    for i, candidate in enumerate(chosen):
        framed = effects[i * len(frames) : (i + 1) * len(frames)]
        candidate.context_score = float(np.mean([e.flip_rate[candidate.target] for e in framed]))
