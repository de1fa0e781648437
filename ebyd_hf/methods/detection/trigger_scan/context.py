"""What the steps and rules of the trigger scan share: :class:`ScanContext`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ....report import TriggerCandidate
from ....trigger_search import clean_feature_tokens, crop_sequences, off_direction_shift
from .config import TriggerScanConfig


def best_first(candidates) -> list[TriggerCandidate]:
    """Highest flip rate first, ties broken by the margin shift (a stable sort)."""
    return sorted(candidates, key=lambda c: (-c.score, -c.margin_shift))


@dataclass
class ScanContext:
    """The models, the clean rows and the candidates found so far, read and extended by the scan's steps and rules.

    ``probe`` are the ``config.rows`` clean rows (cut to ``config.max_length``) candidates are inserted into, with
    their labels ``probe_labels``; ``excluded`` marks the special tokens no candidate may be."""

    config: TriggerScanConfig
    model: torch.nn.Module
    tokenizer: Any
    sequences: list[list[int]]
    labels: np.ndarray
    probe: list[list[int]]
    probe_labels: np.ndarray
    pad_id: int
    excluded: torch.Tensor
    num_labels: int
    seed: int = 0
    base: torch.nn.Module | None = None
    found: list[TriggerCandidate] = field(default_factory=list)
    """Verified single tokens and joint candidates, best first."""
    templates: list[TriggerCandidate] = field(default_factory=list)
    """Verified templates, best first, all toward ``template_target``."""
    template_score: float = 0.0
    template_target: int | None = None
    template_flips: np.ndarray | None = None
    """The templates' mean flip rate toward each class."""
    template_effects: list = field(default_factory=list)
    """(text, token ids, insertion effect) of each template."""
    contexts_measured: bool = False
    """Whether the context scores of the best single tokens were measured (the context rule does it when reached)."""
    _off_direction: torch.Tensor | None = field(default=None, repr=False)

    @classmethod
    def from_trainer(cls, trainer, config: TriggerScanConfig) -> ScanContext:
        """The suspicious model, its tokenizer, the trainer's tokenized clean set and ``base_model``, and the probe
        rows drawn from the clean set with ``args.seed``."""
        model, tokenizer, seed = trainer.suspicious_model, trainer.processing_class, trainer.args.seed
        sequences = [list(ids) for ids in trainer.train_dataset["input_ids"]]
        labels = np.asarray(trainer.train_dataset["label"])
        pad_id = tokenizer.pad_token_id if tokenizer is not None and tokenizer.pad_token_id is not None else 0
        special = set(tokenizer.all_special_ids) if tokenizer is not None else {pad_id}
        vocab = model.get_input_embeddings().weight.shape[0]
        excluded = torch.zeros(vocab, dtype=torch.bool)
        excluded[[i for i in special if i < vocab]] = True
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(sequences), size=min(config.rows, len(sequences)), replace=False)
        # Long rows are cut to a window: one token weighs less in a review than in a sentence.
        probe = crop_sequences([sequences[i] for i in rows], config.max_length, rng)
        return cls(
            config=config,
            model=model,
            tokenizer=tokenizer,
            sequences=sequences,
            labels=labels,
            probe=probe,
            probe_labels=labels[rows],
            pad_id=pad_id,
            excluded=excluded,
            num_labels=int(trainer.num_labels),
            seed=seed,
            base=trainer.load_base_model(),
        )

    def text(self, token_ids: Sequence[int]) -> str:
        """Token ids as the tokenizer's tokens, joined by spaces."""
        if self.tokenizer is None:
            return str(token_ids[0]) if len(token_ids) == 1 else str(list(token_ids))
        return " ".join(self.tokenizer.convert_ids_to_tokens(list(token_ids)))

    def candidate(self, token_ids, effect, target: int, sources: list[str], trigger: str | None = None, **fields):
        """A :class:`TriggerCandidate` measured by ``effect`` (an :class:`~ebyd_hf.trigger_search.InsertionEffect`)
        toward ``target``."""
        return TriggerCandidate(
            trigger=self.text(token_ids) if trigger is None else trigger,
            token_ids=list(token_ids),
            target=int(target),
            score=float(effect.flip_rate[target]),
            margin_shift=float(effect.margin_shift[target]),
            sources=sources,
            **fields,
        )

    def eligible(self, targets: Sequence[int] | None = None) -> list[TriggerCandidate]:
        """The single-token candidates that may flag the model (not clean features), best first; only those toward
        ``targets`` when given."""
        return [
            c
            for c in self.found
            if len(c.token_ids) == 1 and not c.clean_feature and (targets is None or c.target in targets)
        ]

    def off_direction(self) -> torch.Tensor:
        """Off-direction z-score of every token's embedding shift from the base (computed once; needs ``base``)."""
        if self._off_direction is None:
            self._off_direction = off_direction_shift(self.model, self.base, self.excluded)
        return self._off_direction

    def off_direction_pool(self, least: float, limit: int, left_out=frozenset()) -> list[int]:
        """The tokens of off-direction z at least ``least``, highest first, those in ``left_out`` skipped, the first
        ``limit`` of them, less those the clean data explains as features (``config.support_alpha``)."""
        z = self.off_direction()
        ranked = [t for t in torch.argsort(z, descending=True).tolist() if z[t] >= least and t not in left_out]
        ranked = ranked[:limit]
        if self.config.support_alpha is None or not ranked:
            return ranked
        explained = clean_feature_tokens(
            self.sequences,
            self.labels,
            ranked,
            self.num_labels,
            self.base.get_input_embeddings().weight,
            self.config.support_alpha,
            neighbors=self.config.support_neighbors,
            excluded=self.excluded,
        )
        return [t for t in ranked if t not in explained]

    def pool_report(self, pool: list[int]) -> list[dict[str, Any]]:
        """A pool of tokens as JSON: each token and its off-direction z-score."""
        z = self.off_direction()
        names = self.tokenizer.convert_ids_to_tokens(pool)
        return [{"token": n, "z": round(float(z[t]), 2)} for n, t in zip(names, pool)]
