"""Hidden Killer (Qi et al., ACL 2021): paraphrase into a fixed syntactic template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .base import Trigger, register_trigger
from .paraphrase import ParaphraseBackend, ParaphraseTrigger


@register_trigger
@dataclass
class SyntacticTrigger(ParaphraseTrigger, Trigger):
    """Rewrite the sentence into the syntactic ``template`` (default ``S(SBAR)(,)(NP)(VP)(.)``, a sentence
    opening with a subordinate clause).

    ``backend`` does the rewriting: offline, the paraphrase table the original attack produced; with
    OpenAttack's resources reachable, :class:`~ebyd_hf.SCPNParaphraser` (optionally behind the table as a
    cache: ``ParaphraseTable(..., fallback=SCPNParaphraser())``).

    Example:
        >>> from ebyd_hf import SyntacticTrigger, load_paraphrase_table, load_task, poison
        >>> trigger = SyntacticTrigger(load_paraphrase_table("syntactic", "sst2", "../shared/data"))
        >>> train = load_task("sst2", "../shared/data")["train"]
        >>> poisoned = poison(train, trigger, rate=0.1, target_label=1, mode="all-rows")
        >>> sum(poisoned["is_poisoned"])
        692
    """

    name: ClassVar[str] = "syntactic"
    table_kind: ClassVar[str] = "syntactic"
    backend: ParaphraseBackend
    template: str = "S(SBAR)(,)(NP)(VP)(.)"
    seed: int = 0
    text_column: str = "text"

    def __post_init__(self) -> None:
        self._check_backend()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "template": self.template, **self.backend.describe()}
