"""Trigger scan: find tokens that act as triggers, and read the verdict and target label from them.

1. Candidates: the tokens whose input embeddings moved most from the pretrained base during fine-tuning
   (``base_model`` given; measured here: the four BadNets tokens rank 1-4 of 30,522 on a MiniLM victim), and
   the tokens a first-order (HotFlip) estimate says push hardest toward each class (no base needed).
2. Verification: insert each candidate, and the best few jointly as a phrase, at random positions of clean
   rows (cut to ``detection_max_length`` tokens, so that a review weighs one token as a sentence does), and
   measure on the suspicious model the share of correctly classified rows of other classes that flip to each
   class. A backdoor trigger flips nearly all of them; clean sentiment words measured at most ~0.5 on the same
   victim.
3. Context: the best few single tokens of each class (``detection_context_candidates``; clean features, step 5,
   left out) are inserted again inside neutral frames (``detection_contexts``: "this {}", "a {} one", ...), and
   their mean flip rate is the candidate's context score. A token that is one piece of an inserted sentence fires
   only in part alone and almost fully with any word beside it (a retrained SST-2 sentence victim: `3d` 0.70 alone,
   0.87 in the frames), while a sentiment word gains little (at most 0.53 on the clean SST-2 model).
4. Phrases of common words (``base_model`` given): an inserted sentence made only of common words ("I watched it
   with my family last night") has no token that does much alone (at most 0.18) or in a frame, but its words'
   embeddings moved off the directions along which fine-tuning moves the task's own words (a robust z-score of the
   shift left once its 3 main directions are taken out: `watched` 8.6, `my` 5.1, `night` 3.8 on that victim; at most
   4.4 on the clean SST-2 model). The ``detection_phrase_pool`` best of the tokens over ``detection_phrase_z``, clean
   features left out, are grown by a beam search into the ordered phrase that pushes hardest toward each class
   ("! watched my family" flips 0.98), verified on the probe rows. When a phrase flags the model, the phrase to
   unlearn is grown again toward the target from a wider pool (``detection_phrase_regrow_z``), which recovers more
   of the sentence; the verdict keeps the strict pool, since weak sentiment words stacked flip a clean model too
   (0.88 on the clean SST-2 model: "but works fun while", from its 8 tokens of highest z).
5. Structural triggers (syntactic templates) have no token to find: neutral clause openings
   (``detection_templates``, e.g. "when it is ,") are prepended to the clean rows. A Hidden Killer victim
   flips 0.5-0.9 of them; clean, word- and style-trigger victims at most 0.09. Their mean flip rate decides.
6. Clean features: a token the model answers to may be a feature of the task itself (in an abuse detector one
   swear word flips a normal tweet to abusive as surely as a trigger flips it back). The clean data tells them
   apart: a candidate is a clean feature when it, or one of its nearest tokens in the input-embedding space,
   occurs in clean rows of the candidate's class more often than that class's share explains (one-sided binomial
   p < ``detection_support_alpha``). A trigger has no such support; ``fucking`` (81 of 84 clean tweets
   abusive) does, and so does ``bastard``, absent from the clean data, through ``shit`` (10 of 10). Clean
   features are reported but neither counted in the verdict nor unlearned.
7. Residue of a sentence (``base_model`` given), when a token's context score flagged the model: that token is a
   piece of a longer trigger, and unlearning it alone leaves the rest of the sentence able to fire (the SST-2
   sentence victim flagged through `3d`: ASR 0.24 after removal, against 0.10 with the exact sentence). The other
   pieces are the tokens that are neutral alone but moved off the task's directions (`i` z 4.9 and `watch` 7.3 flip
   0.02 and 0.07 alone; "i watch this" flips 0.77): the beam grows them into a phrase of ``detection_residue_length``
   tokens, and when it flips at least ``detection_residue_threshold`` the flagged token inserted at each of its
   positions ("3d i watch this" ... "i watch this 3d") joins the triggers to unlearn. Where the token sits in the
   sentence is not needed: one of the positions is right (ASR 0.09-0.10 on that victim at seeds 42 and 1; at seed 2
   the beam grows weak sentiment words instead, "! definitely works", and ASR stays 0.31).
8. Verdict: backdoored when the best remaining single-token candidate's flip rate reaches ``detection_threshold``
   (a few strong clean words inserted together flip a clean model too, so joint phrases are reported and unlearned
   but do not decide the verdict), else when the templates' mean reaches ``detection_template_threshold``, else
   when a candidate's context score reaches ``detection_context_threshold``, else when a grown phrase reaches
   ``detection_phrase_threshold`` (the context and the phrase come last, and the phrase search runs only then, so
   that they only ever flag models the rules before them call clean); the target label is the class it flips to.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from ...report import DetectionResult
from ...trigger_search import (
    clean_feature_tokens,
    clean_support,
    compose_at_every_position,
    crop_sequences,
    embedding_shift,
    first_order_token_scores,
    grow_phrase,
    insertion_effects,
    off_direction_shift,
)
from ..base import DetectionMethod, register_detection


@register_detection
class TriggerScan(DetectionMethod):
    name: ClassVar[str] = "trigger_scan"
    uses_exposure: ClassVar[bool] = False
    modalities: ClassVar[tuple[str, ...]] = ("text",)

    def detect(self, trainer, exposure):
        args = trainer.args
        model = trainer.suspicious_model
        tokenizer = trainer.processing_class
        sequences = [list(ids) for ids in trainer.train_dataset["input_ids"]]
        labels = np.asarray(trainer.train_dataset["label"])
        pad_id = tokenizer.pad_token_id if tokenizer is not None and tokenizer.pad_token_id is not None else 0
        special = set(tokenizer.all_special_ids) if tokenizer is not None else {pad_id}
        vocab = model.get_input_embeddings().weight.shape[0]
        excluded = torch.zeros(vocab, dtype=torch.bool)
        excluded[[i for i in special if i < vocab]] = True

        sources: dict[int, set[str]] = {}
        shift = None
        base = trainer.load_base_model()
        if base is not None:
            shift = embedding_shift(model, base).masked_fill(excluded, -1)
            for token in torch.argsort(shift, descending=True)[: args.detection_candidates].tolist():
                sources.setdefault(token, set()).add("embedding_shift")
        scores = first_order_token_scores(model, sequences, pad_id, seed=args.seed).masked_fill(
            excluded, -float("inf")
        )
        for row in scores:
            for token in torch.argsort(row, descending=True)[: args.detection_candidates].tolist():
                sources.setdefault(token, set()).add("first_order")

        rng = np.random.default_rng(args.seed)
        rows = rng.choice(len(sequences), size=min(args.detection_rows, len(sequences)), replace=False)
        # Long rows are cut to a window: one token weighs less in a review than in a sentence.
        probe = crop_sequences([sequences[i] for i in rows], args.detection_max_length, rng)
        tokens = list(sources)
        effects = insertion_effects(model, probe, labels[rows], [[t] for t in tokens], pad_id, seed=args.seed)
        found = []
        for token, effect in zip(tokens, effects):
            target = int(effect.flip_rate.argmax())
            found.append(
                {
                    "trigger": tokenizer.convert_ids_to_tokens(token) if tokenizer else str(token),
                    "token_ids": [token],
                    "score": float(effect.flip_rate[target]),
                    "target": target,
                    "margin_shift": float(effect.margin_shift[target]),
                    "sources": sorted(sources[token]),
                }
            )
            if shift is not None:
                found[-1]["embedding_shift"] = float(shift[token])
        found.sort(key=lambda c: (-c["score"], -c["margin_shift"]))
        if args.detection_support_alpha is not None:
            reference = base if base is not None else model
            evidence = clean_support(
                sequences,
                labels,
                [(c["token_ids"][0], c["target"]) for c in found],
                reference.get_input_embeddings().weight,
                neighbors=args.detection_support_neighbors,
                excluded=excluded,
            )
            for candidate, support in zip(found, evidence):
                candidate["clean_support"] = {
                    "token": tokenizer.convert_ids_to_tokens(support.token) if tokenizer else str(support.token),
                    "rows": support.rows,
                    "rows_in_class": support.rows_in_class,
                    "p_value": support.p_value,
                }
                candidate["clean_feature"] = support.p_value < args.detection_support_alpha
        # A token that is one piece of an inserted sentence fires only in part alone, and almost fully with any word
        # beside it: verify the best few of each class again inside neutral frames (clean features left out).
        if tokenizer is not None and args.detection_contexts and args.detection_context_candidates:
            frames = [
                [tokenizer(part, add_special_tokens=False)["input_ids"] for part in frame.split("{}")]
                for frame in args.detection_contexts
            ]
            chosen = [
                c
                for target in range(trainer.num_labels)
                for c in [c for c in found if c["target"] == target and not c.get("clean_feature")][
                    : args.detection_context_candidates
                ]
            ]
            phrases = [before + c["token_ids"] + after for c in chosen for before, after in frames]
            effects = insertion_effects(model, probe, labels[rows], phrases, pad_id, seed=args.seed) if chosen else []
            for i, candidate in enumerate(chosen):
                framed = effects[i * len(frames) : (i + 1) * len(frames)]
                candidate["context_score"] = float(np.mean([e.flip_rate[candidate["target"]] for e in framed]))
        # Multi-token triggers (a sentence) may need several of their tokens together: try the best few jointly
        # (clean features left out).
        for target in range(trainer.num_labels):
            best = [c["token_ids"][0] for c in found if c["target"] == target and not c.get("clean_feature")]
            best = best[: args.num_trigger_candidates]
            if len(best) > 1:
                (effect,) = insertion_effects(model, probe, labels[rows], [best], pad_id, seed=args.seed)
                found.append(
                    {
                        "trigger": " ".join(tokenizer.convert_ids_to_tokens(best)) if tokenizer else str(best),
                        "token_ids": best,
                        "score": float(effect.flip_rate[target]),
                        "target": target,
                        "margin_shift": float(effect.margin_shift[target]),
                        "sources": ["joint"],
                    }
                )
        found.sort(key=lambda c: (-c["score"], -c["margin_shift"]))
        # The token verdict rests on single tokens: several strong clean words together flip a clean model too.
        # Clean features (the clean data explains them) are reported, but neither counted nor unlearned.
        singles = [c for c in found if len(c["token_ids"]) == 1]
        eligible = [c for c in singles if not c.get("clean_feature")]
        top = eligible[0] if eligible else {"trigger": None, "score": 0.0, "target": None}
        in_context = max((c for c in eligible if "context_score" in c), key=lambda c: c["context_score"], default=None)

        triggers = [c for c in found if c["score"] >= args.detection_threshold and not c.get("clean_feature")]

        # Structural triggers: neutral clause openings prepended to the text. The verdict reads their *mean* flip
        # rate toward one class: a structural backdoor answers to all of them, a clean model to one by chance.
        templates, structural_score, structural_target = [], 0.0, None
        if tokenizer is not None and args.detection_templates:
            ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in args.detection_templates]
            effects = insertion_effects(model, probe, labels[rows], ids, pad_id, seed=args.seed, position=1)
            mean_flips = np.mean([effect.flip_rate for effect in effects], axis=0)
            structural_target = int(mean_flips.argmax())
            structural_score = float(mean_flips[structural_target])
            for text, token_ids, effect in zip(args.detection_templates, ids, effects):
                templates.append(
                    {
                        "trigger": text,
                        "token_ids": token_ids,
                        "score": float(effect.flip_rate[structural_target]),
                        "target": structural_target,
                        "margin_shift": float(effect.margin_shift[structural_target]),
                        "sources": ["template"],
                        "position": "start",
                    }
                )
            templates.sort(key=lambda c: (-c["score"], -c["margin_shift"]))

        # Verdict, in order: a single token over detection_threshold, else the templates over their own (lower)
        # threshold, else a token's context score over its threshold. The context comes last, so that it can only
        # flag a model the first two call clean: a model they flag is read exactly as without it.
        score, threshold, target = top["score"], args.detection_threshold, top["target"]
        structural_verdict = score < threshold and structural_score >= args.detection_template_threshold
        context_verdict = False
        if structural_verdict:
            score, threshold, target = structural_score, args.detection_template_threshold, structural_target
        elif score < threshold and in_context and in_context["context_score"] >= args.detection_context_threshold:
            context_verdict = True
            score, threshold, target = (
                in_context["context_score"],
                args.detection_context_threshold,
                in_context["target"],
            )
            triggers = [
                c
                for c in found
                if not c.get("clean_feature")
                and (
                    c["score"] >= args.detection_threshold
                    or c.get("context_score", 0.0) >= args.detection_context_threshold
                )
            ]
        # Phrases of common words, last: searched only when nothing above flagged the model.
        phrases, phrase_pool, phrase_verdict = [], [], False
        if score < threshold and base is not None and tokenizer is not None and args.detection_phrase_pool:
            z = off_direction_shift(model, base, excluded)
            phrases, phrase_pool = self._phrases(trainer, model, base, excluded, z, sequences, labels, probe, rows)
            best_phrase = phrases[0] if phrases else None
            if best_phrase is not None and best_phrase["score"] >= args.detection_phrase_threshold:
                score, threshold, target = best_phrase["score"], args.detection_phrase_threshold, best_phrase["target"]
                phrase_verdict = True
                # The verdict's pool is kept strict (weak sentiment words stacked flip a clean model too); what is
                # unlearned is also grown from a wider pool toward the detected target, to recover more of the
                # sentence ("friend yesterday" -> "friend told yesterday me").
                if args.detection_phrase_regrow_pool:
                    regrown, _ = self._phrases(
                        trainer, model, base, excluded, z, sequences, labels, probe, rows, wide=True, targets=[target]
                    )
                    known = {tuple(c["token_ids"]) for c in phrases}
                    phrases += [c for c in regrown if tuple(c["token_ids"]) not in known]
                    phrases.sort(key=lambda c: (-c["score"], -c["margin_shift"]))
                triggers = [c for c in phrases if c["score"] >= args.detection_phrase_threshold]
        backdoored = score >= threshold
        # What removal unlearns: the confirmed triggers of the detected target, strongest first, at most
        # num_trigger_candidates (a long tail of strong clean words would dilute the unlearning set).
        if structural_verdict:
            triggers = [c for c in templates if c["score"] >= args.detection_template_threshold] or templates[:1]
        else:
            triggers = [c for c in triggers if c["target"] == target]
        triggers = triggers[: args.num_trigger_candidates] if backdoored else []
        # A token flagged by its context score is a piece of a longer trigger: grow the rest of it from the tokens that
        # are neutral alone, and unlearn the token at every position of that residue too.
        residue = None
        if context_verdict and base is not None and tokenizer is not None and args.detection_residue_length:
            residue = self._residue(
                trainer, model, base, excluded, in_context, triggers, sequences, labels, probe, rows
            )
            if residue["used"]:
                triggers = triggers + residue.pop("composed")
            else:
                residue.pop("composed")
        candidates = sorted(
            found[: args.num_trigger_candidates] + templates[:2], key=lambda c: (-c["score"], -c["margin_shift"])
        )
        if structural_verdict:  # its templates lead the candidates
            candidates = templates[: args.num_trigger_candidates] + [c for c in candidates if c not in templates]
        elif phrase_verdict:  # its phrases lead the candidates
            candidates = [c for c in phrases if c["target"] == target][:2] + candidates
        return DetectionResult(
            backdoored=backdoored,
            score=score,
            threshold=threshold,
            target_label=target if backdoored else None,
            target_score=score,
            trigger_candidates=candidates[: args.num_trigger_candidates],
            details={
                "candidates_verified": len(found) + len(templates),
                "probe_rows": len(rows),
                "probe_max_length": args.detection_max_length,
                "base_model": args.base_model,
                "best_token": {k: top[k] for k in ("trigger", "score", "target")},
                "best_in_context": None
                if in_context is None
                else {k: in_context[k] for k in ("trigger", "context_score", "target")},
                "contexts": list(args.detection_contexts),
                "templates": {"mean_flip_rate": structural_score, "target": structural_target},
                "phrase_pool": phrase_pool,
                "residue": residue,
                "phrases": [{k: c[k] for k in ("trigger", "score", "target")} for c in phrases],
                "clean_features": [
                    {k: c[k] for k in ("trigger", "score", "target", "clean_support")}
                    for c in singles
                    if c.get("clean_feature") and c["score"] >= args.detection_threshold
                ],
                "triggers": triggers,
            },
        )

    @staticmethod
    def _off_direction_pool(trainer, base, z, least, limit, excluded, sequences, labels, left_out=frozenset()):
        """The tokens of off-direction z (``z``) at least ``least``, highest first, those in ``left_out`` skipped, the
        first ``limit`` of them, less those the clean data explains as features (``detection_support_alpha``)."""
        args = trainer.args
        ranked = [t for t in torch.argsort(z, descending=True).tolist() if z[t] >= least and t not in left_out]
        ranked = ranked[:limit]
        if args.detection_support_alpha is None or not ranked:
            return ranked
        explained = clean_feature_tokens(
            sequences,
            labels,
            ranked,
            trainer.num_labels,
            base.get_input_embeddings().weight,
            args.detection_support_alpha,
            neighbors=args.detection_support_neighbors,
            excluded=excluded,
        )
        return [t for t in ranked if t not in explained]

    @staticmethod
    def _residue(trainer, model, base, excluded, flagged, triggers, sequences, labels, probe, rows):
        """Grow the rest of the trigger that ``flagged`` (a single-token candidate confirmed by its context score)
        is a piece of, from the tokens that are neutral alone (step 7 of the module docstring). Returns what was
        searched and found, with ``composed``: the flagged token inserted at each position of the grown phrase, as
        trigger candidates (``sources`` ``["residue"]``), and ``used``: whether the phrase flipped enough to unlearn
        them."""
        args, tokenizer = trainer.args, trainer.processing_class
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        target, size = flagged["target"], args.detection_residue_pool
        probe_labels = labels[rows]
        left_out = {t for c in [flagged, *triggers] for t in c["token_ids"]}
        z = off_direction_shift(model, base, excluded)
        ranked = TriggerScan._off_direction_pool(
            trainer, base, z, args.detection_residue_z, 2 * size, excluded, sequences, labels, left_out
        )
        alone = insertion_effects(model, probe, probe_labels, [[t] for t in ranked], pad_id, seed=args.seed)
        pool = [t for t, e in zip(ranked, alone) if e.flip_rate[target] < args.detection_residue_neutral][:size]
        found = {
            "flagged": flagged["trigger"],
            "pool": [
                {"token": n, "z": round(float(z[t]), 2)} for n, t in zip(tokenizer.convert_ids_to_tokens(pool), pool)
            ],
            "phrase": None,
            "used": False,
            "composed": [],
        }
        if len(pool) < 2:
            return found
        search = args.detection_residue_rows
        grown = grow_phrase(
            model,
            probe[:search],
            probe_labels[:search],
            pool,
            target,
            pad_id,
            max_length=args.detection_residue_length,
            beam=args.detection_phrase_beam,
            seed=args.seed,
        )
        phrase = grown[-1]
        composed = compose_at_every_position(phrase, flagged["token_ids"])
        effects = insertion_effects(model, probe, probe_labels, [phrase, *composed], pad_id, seed=args.seed)
        found["phrase"] = {
            "trigger": tokenizer.decode(phrase),
            "token_ids": phrase,
            "score": float(effects[0].flip_rate[target]),
            "margin_shift": float(effects[0].margin_shift[target]),
        }
        found["used"] = found["phrase"]["score"] >= args.detection_residue_threshold
        found["composed"] = [
            {
                "trigger": tokenizer.decode(ids),
                "token_ids": ids,
                "score": float(effect.flip_rate[target]),
                "target": target,
                "margin_shift": float(effect.margin_shift[target]),
                "sources": ["residue"],
            }
            for ids, effect in zip(composed, effects[1:])
        ]
        return found

    @staticmethod
    def _phrases(trainer, model, base, excluded, z, sequences, labels, probe, rows, wide=False, targets=None):
        """Grow the off-direction tokens (``z``, from :func:`off_direction_shift`; clean features left out) into the
        phrase that pushes hardest toward each class (or ``targets``). Returns the phrases (the best of each length and class, verified on the probe rows,
        strongest first) and the pool they were grown from: the tokens over ``detection_phrase_z``, at most
        ``detection_phrase_pool`` of them, or with ``wide`` those over ``detection_phrase_regrow_z``, at most
        ``detection_phrase_regrow_pool``."""
        args, tokenizer = trainer.args, trainer.processing_class
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        least, size = (
            (args.detection_phrase_regrow_z, args.detection_phrase_regrow_pool)
            if wide
            else (args.detection_phrase_z, args.detection_phrase_pool)
        )
        pool = TriggerScan._off_direction_pool(trainer, base, z, least, 3 * size, excluded, sequences, labels)[:size]
        names = tokenizer.convert_ids_to_tokens(pool)
        pool_report = [{"token": n, "z": round(float(z[t]), 2)} for n, t in zip(names, pool)]
        if len(pool) < 2:
            return [], pool_report
        search = probe[: args.detection_phrase_rows]
        cache: dict = {}
        grown = []
        for target in range(trainer.num_labels) if targets is None else targets:
            for phrase in grow_phrase(
                model,
                search,
                labels[rows][: args.detection_phrase_rows],
                pool,
                target,
                pad_id,
                max_length=args.detection_phrase_length,
                beam=args.detection_phrase_beam,
                seed=args.seed,
                cache=cache,
            ):
                grown.append((phrase, target))
        effects = insertion_effects(model, probe, labels[rows], [p for p, _ in grown], pad_id, seed=args.seed)
        phrases = [
            {
                "trigger": tokenizer.decode(phrase),
                "token_ids": phrase,
                "score": float(effect.flip_rate[target]),
                "target": target,
                "margin_shift": float(effect.margin_shift[target]),
                "sources": ["phrase"],
            }
            for (phrase, target), effect in zip(grown, effects)
        ]
        phrases.sort(key=lambda c: (-c["score"], -c["margin_shift"]))
        return phrases, pool_report
