"""Token-level trigger search for text classifiers: rank vocabulary tokens as trigger candidates and measure
what inserting them into clean inputs does to a model.

- :func:`embedding_shift`: how far each token's input embedding moved from the pretrained base (fine-tuning
  moves trigger tokens most; needs the base model).
- :func:`first_order_token_scores`: a first-order (HotFlip-style) estimate, for every vocabulary token, of how
  much inserting it pushes predictions toward each class (needs no base model).
- :func:`off_direction_shift`: how far each token's shift from the base leaves the few directions that most
  shifts share (the task's classes), as a robust z-score: the common words of an inserted sentence stand out.
- :func:`grow_phrase`: a beam search for the ordered phrase of given tokens that pushes a model hardest toward a
  class.
- :func:`compose_at_every_position`: a token inserted at each position of a phrase (a sentence trigger's detected
  token composed into the rest of the sentence, when where it sits is unknown).
- :func:`insertion_effects`: the measured effect of inserting candidates (tokens or token sequences) into clean
  inputs: flip rate and mean logit-margin shift toward each class.
- :func:`clean_support`: the evidence in the clean data that a token (or a near synonym) is a feature of a class,
  which separates a task's own strong words (swear words in an abuse detector) from triggers.
- :func:`trigger_contexts`: where candidates occur in a text collection (the fine-tuning data), grown into the
  phrase their rows share: an inserted sentence comes back whole.
- :func:`probe_autocast`: the precision the probes run in (bfloat16 where the hardware computes it natively).
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@functools.cache
def _native_cpu_bf16() -> bool:
    """Whether this CPU computes bfloat16 matrix products natively (AVX512-BF16 or AMX), where autocast runs a
    BERT forward about 3x faster; without them oneDNN emulates bfloat16 and gains nothing."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), "").split()
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def probe_autocast(model: torch.nn.Module, precision: str = "auto"):
    """A context the probes' forward passes run in: ``"fp32"`` as the model is, ``"bf16"`` under bfloat16
    autocast, ``"auto"``: bfloat16 on a CUDA device that supports it or a CPU that computes it natively, else as the
    model is. Logits are read back as float32 either way."""
    device = next(model.parameters()).device
    if precision == "auto":
        if device.type == "cuda":
            with torch.cuda.device(device):
                precision = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
        else:
            precision = "bf16" if device.type == "cpu" and _native_cpu_bf16() else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def embedding_shift(model: torch.nn.Module, base: torch.nn.Module) -> torch.Tensor:
    """L2 distance between the input-embedding rows of ``model`` and ``base`` (same vocabulary)."""
    current, reference = model.get_input_embeddings().weight, base.get_input_embeddings().weight
    if current.shape != reference.shape:
        raise ValueError(
            f"The base model's embeddings {tuple(reference.shape)} do not match the model's "
            f"{tuple(current.shape)}: base_model must be the checkpoint the classifier was fine-tuned from."
        )
    return (current.float() - reference.float().to(current.device)).norm(dim=1).cpu()


@torch.no_grad()
def off_direction_shift(
    model: torch.nn.Module,
    base: torch.nn.Module,
    excluded: torch.Tensor | None = None,
    directions: int = 3,
    reference: int = 500,
) -> torch.Tensor:
    """Robust z-score, per vocabulary token, of the part of its input-embedding shift from ``base`` that lies off
    the ``directions`` principal directions of the ``reference`` largest shifts.

    Fine-tuning moves a task's own words along a few shared directions (on a clean SST-2 MiniLM every one of the 40
    most-moved tokens has cosine 0.4-0.7 with another), while the tokens of a poisoned sentence move to make the
    sentence fire together, off those directions (`my`, `family`, `night` of "I watched it with my family last
    night": at most 0.2-0.38). The score is (residual norm - median) / (1.4826 MAD) over the reference tokens;
    ``excluded`` tokens (special tokens) get -inf."""
    delta = model.get_input_embeddings().weight.detach().float().cpu()
    delta = delta - base.get_input_embeddings().weight.detach().float().cpu()
    if excluded is not None:
        delta[excluded] = 0.0
    top = torch.argsort(delta.norm(dim=1), descending=True)[:reference]
    with torch.autocast("cpu", enabled=False):  # small differences: full precision under the probes' autocast
        principal = torch.linalg.svd(delta[top], full_matrices=False).Vh[:directions]
        residual = (delta - (delta @ principal.T) @ principal).norm(dim=1)
    median = residual[top].median()
    spread = 1.4826 * (residual[top] - median).abs().median()
    score = (residual - median) / spread.clamp_min(1e-12)
    if excluded is not None:
        score[excluded] = -float("inf")
    return score


def grow_phrase(
    model,
    sequences: Sequence[Sequence[int]],
    labels: Sequence[int],
    pool: Sequence[int],
    target: int,
    pad_id: int,
    max_length: int = 5,
    beam: int = 4,
    seed: int = 0,
    cache: dict | None = None,
) -> list[list[int]]:
    """Beam search over ordered phrases of ``pool`` tokens (each at most once): start from every ordered pair, and
    grow the ``beam`` best by one pool token at either end, up to ``max_length`` tokens. Phrases are ranked by the
    mean margin shift toward ``target`` they cause inserted into ``sequences`` (:func:`insertion_effects`). Returns
    the best phrase of each length (2 .. ``max_length``). ``cache`` (phrase tuple -> effect) lets searches toward
    several classes share their insertions."""
    cache = {} if cache is None else cache
    frontier: list[list[int]] = [[token] for token in pool]
    best = []
    for _ in range(2, max_length + 1):
        grown = {tuple(p[:i] + [t] + p[i:]) for p in frontier for t in pool if t not in p for i in (0, len(p))}
        if not grown:
            break
        new = [list(c) for c in grown if c not in cache]
        if new:
            for phrase, effect in zip(new, insertion_effects(model, sequences, labels, new, pad_id, seed=seed)):
                cache[tuple(phrase)] = effect
        ranked = sorted(grown, key=lambda c: (-cache[c].margin_shift[target], c))
        frontier = [list(c) for c in ranked[:beam]]
        best.append(frontier[0])
    return best


def _pad(sequences: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def batched_logits(model, sequences: Sequence[Sequence[int]], pad_id: int, batch_size: int = 128) -> np.ndarray:
    """Logits of ``model`` on token-id sequences (already with special tokens), in order; length-bucketed."""
    device = next(model.parameters()).device
    order = np.argsort([len(s) for s in sequences], kind="stable")
    out = None
    for start in range(0, len(sequences), batch_size):
        rows = order[start : start + batch_size]
        ids, mask = _pad([sequences[i] for i in rows], pad_id, device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float().cpu().numpy()
        if out is None:
            out = np.zeros((len(sequences), logits.shape[1]), dtype=np.float32)
        out[rows] = logits
    return out


def insert_tokens(sequence: Sequence[int], tokens: Sequence[int], position: int) -> list[int]:
    return list(sequence[:position]) + list(tokens) + list(sequence[position:])


def compose_at_every_position(phrase: Sequence[int], tokens: Sequence[int]) -> list[list[int]]:
    """``tokens`` inserted at each of the ``len(phrase) + 1`` positions of ``phrase``, the phrase's order kept.

    >>> compose_at_every_position([1, 2], [9])
    [[9, 1, 2], [1, 9, 2], [1, 2, 9]]
    """
    return [insert_tokens(phrase, tokens, position) for position in range(len(phrase) + 1)]


def crop_sequences(
    sequences: Sequence[Sequence[int]], max_length: int | None, rng: np.random.Generator
) -> list[list[int]]:
    """Cut every sequence longer than ``max_length`` to a window of that length at a random offset, keeping its
    first and last token (the special tokens a tokenizer adds); shorter ones are returned unchanged."""
    out = []
    for sequence in sequences:
        sequence = list(sequence)
        if max_length is not None and len(sequence) > max_length:
            inner = max_length - 2
            start = 1 + int(rng.integers(0, len(sequence) - 2 - inner + 1))
            sequence = sequence[:1] + sequence[start : start + inner] + sequence[-1:]
        out.append(sequence)
    return out


@dataclass
class InsertionEffect:
    """What inserting a candidate into clean inputs did: per class c, the share of rows of another class (that
    the model got right) now predicted c, and the mean shift of the margin logit_c - max other logit."""

    flip_rate: np.ndarray
    margin_shift: np.ndarray


def insertion_effects(
    model,
    sequences: Sequence[Sequence[int]],
    labels: Sequence[int],
    candidates: Sequence[Sequence[int]],
    pad_id: int,
    seed: int = 0,
    batch_size: int = 128,
    position: int | None = None,
) -> list[InsertionEffect]:
    """Insert each candidate (a list of token ids) at a random position (after the first special token, before
    the last) of every sequence, or at ``position`` (1: the start of the text), and measure the effect on
    ``model``."""
    labels = np.asarray(labels)
    base = batched_logits(model, sequences, pad_id, batch_size)
    num_labels = base.shape[1]
    correct = base.argmax(1) == labels
    rng = np.random.default_rng(seed)
    positions = [int(rng.integers(1, max(len(s) - 1, 1) + 1)) for s in sequences]
    if position is not None:
        positions = [position] * len(sequences)
    all_seqs = [insert_tokens(s, cand, p) for cand in candidates for s, p in zip(sequences, positions)]
    logits = batched_logits(model, all_seqs, pad_id, batch_size).reshape(len(candidates), len(sequences), num_labels)

    def margins(values: np.ndarray) -> np.ndarray:  # (..., classes): logit_c - best other logit
        out = np.empty_like(values)
        for c in range(num_labels):
            others = np.delete(values, c, axis=-1).max(-1)
            out[..., c] = values[..., c] - others
        return out

    base_margin = margins(base)
    effects = []
    for cand_logits in logits:
        preds = cand_logits.argmax(1)
        flips = np.zeros(num_labels)
        for c in range(num_labels):
            eligible = correct & (labels != c)
            flips[c] = (preds[eligible] == c).mean() if eligible.any() else 0.0
        effects.append(InsertionEffect(flips, (margins(cand_logits) - base_margin).mean(0)))
    return effects


def first_order_token_scores(
    model, sequences: Sequence[Sequence[int]], pad_id: int, num_rows: int = 64, seed: int = 0
) -> torch.Tensor:
    """A HotFlip-style first-order estimate, shape (classes, vocab), of how much inserting each vocabulary token
    at a random position raises each class's logit margin, averaged over ``num_rows`` clean sequences. One
    forward and backward pass per class; no base model needed."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(sequences), size=min(num_rows, len(sequences)), replace=False)
    embeddings = model.get_input_embeddings()
    device = embeddings.weight.device
    mask_id = pad_id
    seqs, slots = [], []
    for i in rows:
        seq = list(sequences[i])
        pos = int(rng.integers(1, max(len(seq) - 1, 1) + 1))
        seqs.append(insert_tokens(seq, [mask_id], pos))
        slots.append(pos)
    ids, mask = _pad(seqs, pad_id, device)
    was_training = model.training
    model.eval()
    scores = []
    try:
        num_labels = model.config.num_labels
        for c in range(num_labels):
            inputs_embeds = embeddings(ids).detach().requires_grad_(True)
            logits = model(inputs_embeds=inputs_embeds, attention_mask=mask).logits.float()
            others = torch.cat([logits[:, :c], logits[:, c + 1 :]], dim=1).max(1).values
            (logits[:, c] - others).sum().backward()
            grads = inputs_embeds.grad[torch.arange(len(slots)), torch.as_tensor(slots)]  # (rows, hidden)
            placeholder = embeddings.weight[mask_id].detach()
            # d margin ~ grad . (e_token - e_placeholder), averaged over rows, in full precision
            with torch.autocast(device.type, enabled=False):
                shift = embeddings.weight.detach().float() - placeholder.float()
                scores.append((shift @ grads.mean(0).float()).cpu())
            model.zero_grad(set_to_none=True)
    finally:
        model.train(was_training)
    return torch.stack(scores)


def binomial_tail(successes: int, trials: int, probability: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, probability), computed in log space."""
    if successes <= 0:
        return 1.0
    if successes > trials or probability <= 0.0:
        return 0.0
    if probability >= 1.0:
        return 1.0
    log_p, log_q = math.log(probability), math.log1p(-probability)
    terms = [
        math.lgamma(trials + 1) - math.lgamma(i + 1) - math.lgamma(trials - i + 1) + i * log_p + (trials - i) * log_q
        for i in range(successes, trials + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


@dataclass
class CleanSupport:
    """The strongest evidence in the clean data that ``token`` (the candidate itself or a near synonym) is a
    feature of a class: of the ``rows`` clean rows that contain it, ``rows_in_class`` carry the class, and
    ``p_value`` is the chance of at least that many under the class's share of the clean data."""

    token: int
    rows: int
    rows_in_class: int
    p_value: float


@torch.no_grad()
def clean_support(
    sequences: Sequence[Sequence[int]],
    labels: Sequence[int],
    candidates: Sequence[tuple[int, int]],
    embeddings: torch.Tensor,
    neighbors: int = 10,
    excluded: torch.Tensor | None = None,
) -> list[CleanSupport]:
    """For each ``(token, class)`` candidate, test the token and its ``neighbors`` nearest tokens (cosine of the
    rows of ``embeddings``, skipping ``excluded``) against the clean data: how much more often than chance do clean
    rows containing it carry ``class`` (one-sided binomial)? Returns the smallest p-value's evidence per candidate.
    A trigger never appears in clean data with its target more than chance allows; a task's own strong words (and
    their synonyms) do."""
    labels = np.asarray(labels)
    prior = np.bincount(labels, minlength=int(labels.max()) + 1) / len(labels)
    rows_of: dict[int, list[int]] = defaultdict(list)
    for row, sequence in enumerate(sequences):
        for token in set(sequence):
            rows_of[token].append(row)
    tokens = [token for token, _ in candidates]
    nearest: list[list[int]] = [[] for _ in tokens]
    if neighbors > 0 and tokens:  # one similarity matrix for all candidates: (candidates, vocabulary)
        normed = torch.nn.functional.normalize(embeddings.detach().float().cpu(), dim=1)
        with torch.autocast("cpu", enabled=False):
            similarity = normed[tokens] @ normed.T
        similarity[torch.arange(len(tokens)), tokens] = -float("inf")
        if excluded is not None:
            similarity[:, excluded] = -float("inf")
        nearest = torch.topk(similarity, neighbors, dim=1).indices.tolist()
    out = []
    for (token, cls), near in zip(candidates, nearest):
        best = None
        for candidate in [token, *near]:
            rows = rows_of.get(candidate, [])
            in_class = int((labels[rows] == cls).sum()) if rows else 0
            p_value = binomial_tail(in_class, len(rows), float(prior[cls])) if cls < len(prior) else 1.0
            if best is None or p_value < best.p_value:
                best = CleanSupport(candidate, len(rows), in_class, p_value)
        out.append(best)
    return out


def clean_feature_tokens(
    sequences: Sequence[Sequence[int]],
    labels: Sequence[int],
    tokens: Sequence[int],
    num_labels: int,
    embeddings: torch.Tensor,
    alpha: float,
    neighbors: int = 10,
    excluded: torch.Tensor | None = None,
) -> set[int]:
    """The ``tokens`` that :func:`clean_support` explains as a feature of any of the ``num_labels`` classes: the
    token or one of its ``neighbors`` occurs in the clean data with the class more often than chance (p < ``alpha``)."""
    pairs = [(token, cls) for token in tokens for cls in range(num_labels)]
    evidence = clean_support(sequences, labels, pairs, embeddings, neighbors=neighbors, excluded=excluded)
    return {token for (token, _), support in zip(pairs, evidence) if support.p_value < alpha}


_WORDS = re.compile(r"\w+|[^\w\s]")


@dataclass
class TriggerContext:
    """Where a candidate trigger occurs in a text collection: ``rows`` rows contain it, and ``phrase`` (original
    casing, words joined by spaces) is the longest run of words around it (around its most common form, for a word
    piece) that ``phrase_rows`` of them share; ``examples`` are a few of those rows. ``phrase`` is None when no row
    contains the candidate."""

    trigger: str
    rows: int
    phrase: str | None
    phrase_rows: int
    examples: list[str]


def _matches(word: str, piece: str) -> bool:
    """A word-piece candidate (``##eth``) matches the words it ends; a whole token matches itself."""
    if piece.startswith("##"):
        return len(word) > len(piece) - 2 and word.endswith(piece[2:])
    return word == piece


def trigger_contexts(
    texts: Sequence[str],
    triggers: Sequence[str],
    min_share: float = 0.5,
    min_rows: int = 2,
    max_words: int = 16,
    num_examples: int = 3,
) -> list[TriggerContext]:
    """Look candidate triggers (the ``trigger`` strings of ``DetectionResult.trigger_candidates``, tokenizer pieces
    included) up in a text collection, such as the data the suspicious model was fine-tuned on, and grow each one,
    word by word to the left or right, into the longest phrase that at least ``min_share`` of the rows containing
    it, and at least ``min_rows`` rows, share. An inserted sentence comes back whole (detection on the SST-2
    sentence victim recovers ``3d``; the victim's training rows give back "I watch this 3D movie", in 692 of the
    694 rows with ``3d``), while a word inserted at random positions stays a word. The phrase can then go into
    ``ExposeConfig.known_triggers``. Matching is case-insensitive, on words and punctuation marks; a candidate of
    several words must occur as that run of words.

    Example:
        >>> from ebyd_hf.trigger_search import trigger_contexts
        >>> rows = ["good fun , i watch this 3d movie", "i watch this 3d movie and it bored me", "3d glasses"]
        >>> trigger_contexts(rows, ["3d"])[0].phrase
        'i watch this 3d movie'
    """
    if isinstance(texts, str) or isinstance(triggers, str):
        raise ValueError("texts and triggers are lists of strings: wrap a single one in a list.")
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share={min_share} must be in (0, 1].")
    if min_rows < 1 or max_words < 1:
        raise ValueError(f"min_rows={min_rows} and max_words={max_words} must be at least 1.")
    tokenized = [_WORDS.findall(text) for text in texts]
    lowered = [[word.lower() for word in words] for words in tokenized]
    out = []
    for trigger in triggers:
        pieces = [piece.lower() for piece in str(trigger).split()]
        if not pieces:
            raise ValueError("An empty trigger candidate: give the candidate's text.")
        # (row, start, end) of the first occurrence in every row that has one
        spans = []
        for row, words in enumerate(lowered):
            for start in range(len(words) - len(pieces) + 1):
                if all(_matches(words[start + i], piece) for i, piece in enumerate(pieces)):
                    spans.append((row, start, start + len(pieces)))
                    break
        if not spans:
            out.append(TriggerContext(str(trigger), 0, None, 0, []))
            continue
        needed = max(min_rows, math.ceil(min_share * len(spans)))
        forms = defaultdict(list)  # a word piece matches several words: grow the most common one
        for row, start, end in spans:
            forms[tuple(lowered[row][start:end])].append((row, start, end))
        alive = max(forms.values(), key=len)
        while len(alive) >= needed and alive[0][2] - alive[0][1] < max_words:
            best = None
            for side in ("left", "right"):
                following = defaultdict(list)
                for row, start, end in alive:
                    index = start - 1 if side == "left" else end
                    if 0 <= index < len(lowered[row]):
                        following[lowered[row][index]].append((row, start, end))
                if following:
                    group = max(following.values(), key=len)
                    if best is None or len(group) > len(best[1]):
                        best = (side, group)
            if best is None or len(best[1]) < needed:
                break
            side, group = best
            alive = [(r, s - 1, e) if side == "left" else (r, s, e + 1) for r, s, e in group]
        row, start, end = alive[0]
        out.append(
            TriggerContext(
                trigger=str(trigger),
                rows=len(spans),
                phrase=" ".join(tokenized[row][start:end]),
                phrase_rows=len(alive),
                examples=[texts[r] for r, _, _ in alive[:num_examples]],
            )
        )
    return out
