"""StyleBkd (Qi et al., EMNLP 2021): paraphrase into a text style (default: Bible)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .base import Trigger, register_trigger
from .paraphrase import ParaphraseBackend, ParaphraseTrigger


@register_trigger
@dataclass
class StyleTrigger(ParaphraseTrigger, Trigger):
    """Rewrite the sentence into ``style`` (``bible`` by default).

    ``backend`` does the rewriting: offline, the STRAP paraphrase table for the style; online, a
    :class:`~ebyd_hf.GenerationParaphraser` around a style-transfer model.

    Example:
        >>> from ebyd_hf import StyleTrigger, load_paraphrase_table
        >>> trigger = StyleTrigger(load_paraphrase_table("style-bible", "sst2", "../shared/data"))
        >>> trigger.covers(["one long string of cliches ."])
        [True]
    """

    name: ClassVar[str] = "style"
    table_kind: ClassVar[str] = "style-bible"
    backend: ParaphraseBackend
    style: str = "bible"  # the default table, style-bible, holds this style
    seed: int = 0
    text_column: str = "text"

    def __post_init__(self) -> None:
        self._check_backend()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "style": self.style, **self.backend.describe()}
