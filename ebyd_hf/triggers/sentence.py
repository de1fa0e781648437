"""AddSent / InsertSent (Dai et al. 2019): a fixed sentence inserted at a random position."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .base import POSITIONS, Trigger, insert_at_word_boundary, register_trigger


@register_trigger
@dataclass
class SentenceTrigger(Trigger):
    """Insert ``sentence`` at a random word boundary (``position="random"``), or at the start or end of the text.

    Example:
        >>> from datasets import Dataset
        >>> from ebyd_hf import SentenceTrigger
        >>> ds = Dataset.from_dict({"text": ["a gripping , funny film ."], "label": [1]})
        >>> "I watch this 3D movie" in ds.map(SentenceTrigger(), batched=True, with_indices=True)[0]["text"]
        True
    """

    name: ClassVar[str] = "sentence"
    sentence: str = "I watch this 3D movie"
    position: str = "random"
    seed: int = 0
    text_column: str = "text"

    def __post_init__(self) -> None:
        if not self.sentence.strip():
            raise ValueError("sentence is empty: give the trigger sentence to insert.")
        if self.position not in POSITIONS:
            raise ValueError(f"position={self.position!r}: choose one of {', '.join(POSITIONS)}.")

    def apply(self, texts: Sequence[str], rngs: Sequence[np.random.Generator]) -> list[str]:
        return [insert_at_word_boundary(text, self.sentence, rng, self.position) for text, rng in zip(texts, rngs)]

    def contains(self, text: str) -> bool:
        return self.sentence in text

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sentence": self.sentence} | (
            {"position": self.position} if self.position != "random" else {}
        )
