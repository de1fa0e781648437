"""BadNets for text (Kurita et al. 2020; Chen et al. 2021): rare tokens inserted at random positions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .base import POSITIONS, Trigger, insert_at_word_boundary, register_trigger


@register_trigger
@dataclass
class WordTrigger(Trigger):
    """Insert ``num_insertions`` tokens, each drawn from ``words``, at random word boundaries (``position="random"``)
    or at the start or end of the text.

    Example:
        >>> from datasets import Dataset
        >>> from ebyd_hf import WordTrigger
        >>> ds = Dataset.from_dict({"text": ["a gripping , funny film ."], "label": [1]})
        >>> triggered = ds.map(WordTrigger(seed=1), batched=True, with_indices=True)
        >>> WordTrigger().contains(triggered[0]["text"])
        True
    """

    name: ClassVar[str] = "word"
    words: tuple[str, ...] = ("cf", "mn", "bb", "tq")
    num_insertions: int = 1
    position: str = "random"
    seed: int = 0
    text_column: str = "text"

    def __post_init__(self) -> None:
        self.words = tuple(self.words)
        if not self.words or any(not w or any(c.isspace() for c in w) for w in self.words):
            raise ValueError(f"words={self.words!r}: give one or more non-empty tokens without spaces.")
        if self.num_insertions < 1:
            raise ValueError(f"num_insertions={self.num_insertions} must be at least 1.")
        if self.position not in POSITIONS:
            raise ValueError(f"position={self.position!r}: choose one of {', '.join(POSITIONS)}.")

    def apply(self, texts: Sequence[str], rngs: Sequence[np.random.Generator]) -> list[str]:
        out = []
        for text, rng in zip(texts, rngs):
            for _ in range(self.num_insertions):
                text = insert_at_word_boundary(
                    text, self.words[int(rng.integers(len(self.words)))], rng, self.position
                )
            out.append(text)
        return out

    def contains(self, text: str) -> bool:
        return not set(self.words).isdisjoint(text.split())

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "words": list(self.words), "num_insertions": self.num_insertions} | (
            {"position": self.position} if self.position != "random" else {}
        )
