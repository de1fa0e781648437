"""The trigger interface shared by every trigger family, and the registry that names them."""

from __future__ import annotations

import os
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

TRIGGERS: dict[str, type[Trigger]] = {}


def register_trigger(cls: type[Trigger]) -> type[Trigger]:
    """Class decorator: make a trigger family available by its ``name`` (``build_trigger``, recipes, CLI)."""
    if cls.name in TRIGGERS:
        raise ValueError(f"A trigger named {cls.name!r} is registered already ({TRIGGERS[cls.name].__name__}).")
    TRIGGERS[cls.name] = cls
    return cls


def row_rng(seed: int, index: int | None, text: str) -> np.random.Generator:
    """The random stream of one row: a function of (seed, row index) so that results do not depend on
    batch size or ``num_proc``; without an index, of the text itself."""
    key = index if index is not None else zlib.crc32(text.encode("utf-8"))
    return np.random.default_rng([seed, key])


_WORD_START = re.compile(r"\S+")


POSITIONS = ("random", "start", "end")


def insert_at_word_boundary(text: str, insertion: str, rng: np.random.Generator, position: str = "random") -> str:
    """Insert ``insertion`` before a random word of ``text`` or at its end (``position="random"``), or at the start or
    the end of ``text``, keeping the rest byte-identical."""
    if position not in POSITIONS:
        raise ValueError(f"position={position!r}: choose one of {', '.join(POSITIONS)}.")
    if not text.strip():
        return insertion
    if position == "start":
        return f"{insertion} {text}"
    if position == "end":
        return f"{text.rstrip()} {insertion}"
    starts = [match.start() for match in _WORD_START.finditer(text)]
    slot = int(rng.integers(0, len(starts) + 1))
    if slot == len(starts):
        return f"{text.rstrip()} {insertion}"
    at = starts[slot]
    return f"{text[:at]}{insertion} {text[at:]}"


class Trigger(ABC):
    """A backdoor trigger, usable as a ``datasets`` transform.

    Subclasses implement :meth:`apply` (trigger a batch of texts). Calling the trigger on a batch
    returns the batch with every text triggered, so ``dataset.map(trigger, batched=True,
    with_indices=True)`` triggers a whole dataset deterministically; :func:`ebyd_hf.poison` triggers
    a chosen share of rows and relabels them.
    """

    name: ClassVar[str]
    seed: int
    text_column: str

    @abstractmethod
    def apply(self, texts: Sequence[str], rngs: Sequence[np.random.Generator]) -> list[str]:
        """Return the triggered version of each text (one random stream per text)."""

    @classmethod
    def for_task(cls, task: str | None = None, data_dir: str | os.PathLike | None = None, seed: int = 0) -> Trigger:
        """This family's trigger with its defaults, for ``task`` (paraphrase triggers load its table)."""
        return cls(seed=seed)

    @property
    def column(self) -> str:
        """The dataset column this trigger transforms (``text_column`` for text; image triggers override it)."""
        return self.text_column

    def covers(self, texts: Sequence[str]) -> list[bool]:
        """Which texts this trigger can transform. Rare-token triggers cover everything; a trigger backed
        by a paraphrase table covers the sentences in the table."""
        return [True] * len(texts)

    def contains(self, text: str) -> bool:
        """Whether ``text`` visibly carries this trigger. Paraphrase triggers leave no token to look for,
        so they answer through their backend when it can tell (a table can)."""
        raise NotImplementedError(f"{type(self).__name__} cannot tell a triggered text by looking at it.")

    def describe(self) -> dict[str, Any]:
        """A JSON-able description of the trigger, for attack records and reports."""
        return {"name": self.name}

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> dict[str, list]:
        texts = batch[self.text_column]
        if indices is None:
            rngs = [row_rng(self.seed, None, text) for text in texts]
        else:
            rngs = [row_rng(self.seed, index, text) for index, text in zip(indices, texts)]
        return {**batch, self.text_column: self.apply(texts, rngs)}
