"""Trigger families as ``datasets`` transforms: word (BadNets), sentence (AddSent), syntactic (Hidden
Killer) and style (StyleBkd). Each registers itself in :data:`TRIGGERS`; :func:`build_trigger` makes
one by name with its defaults."""

from __future__ import annotations

import os

from .base import TRIGGERS, Trigger, register_trigger
from .paraphrase import (
    GenerationParaphraser,
    ParaphraseBackend,
    ParaphraseTable,
    SCPNParaphraser,
    load_paraphrase_table,
)
from .sentence import SentenceTrigger
from .style import StyleTrigger
from .syntactic import SyntacticTrigger
from .word import WordTrigger

__all__ = [
    "TRIGGERS",
    "GenerationParaphraser",
    "ParaphraseBackend",
    "ParaphraseTable",
    "SCPNParaphraser",
    "SentenceTrigger",
    "StyleTrigger",
    "SyntacticTrigger",
    "Trigger",
    "WordTrigger",
    "build_trigger",
    "load_paraphrase_table",
    "register_trigger",
]


def build_trigger(
    name: str, task: str | None = None, data_dir: str | os.PathLike | None = None, seed: int = 0
) -> Trigger:
    """A trigger of family ``name`` with its defaults. Paraphrase triggers use the task's paraphrase table
    from ``data_dir`` / ``$EBYD_DATA_DIR`` (``paraphrases/syntactic/<task>``, ``paraphrases/style-bible/<task>``).

    Example:
        >>> from ebyd_hf import build_trigger
        >>> build_trigger("word")
        WordTrigger(words=('cf', 'mn', 'bb', 'tq'), num_insertions=1, seed=0, text_column='text')
    """
    if name not in TRIGGERS:
        raise ValueError(f"Unknown trigger {name!r}. Known triggers: {', '.join(TRIGGERS)}.")
    return TRIGGERS[name].for_task(task, data_dir, seed=seed)
