"""Trigger scan (text models): candidate triggers inserted into clean rows, and an ordered list of verdict rules.

- :mod:`.config`: :class:`TriggerScanConfig` and its nested :class:`PhraseConfig` / :class:`ResidueConfig`.
- :mod:`.context`: :class:`ScanContext`, what the steps and rules share.
- :mod:`.candidates`: the candidate steps (tokens, clean-feature test, joint candidates, templates, contexts).
- :mod:`.rules` and :mod:`.phrase`: the verdict rules ``token``, ``template``, ``context``, ``phrase``.
- :mod:`.residue`: the residue step after a ``context`` verdict.
- :mod:`.scan`: :class:`TriggerScan`, the registered method (its docstring says what each rule catches).
"""

from .config import DEFAULT_CONTEXTS, DEFAULT_TEMPLATES, PhraseConfig, ResidueConfig, TriggerScanConfig
from .context import ScanContext
from .phrase import PhraseRule
from .rules import ContextRule, Reading, Rule, TemplateRule, TokenRule
from .scan import TriggerScan

__all__ = [
    "DEFAULT_CONTEXTS",
    "DEFAULT_TEMPLATES",
    "ContextRule",
    "PhraseConfig",
    "PhraseRule",
    "Reading",
    "ResidueConfig",
    "Rule",
    "ScanContext",
    "TemplateRule",
    "TokenRule",
    "TriggerScan",
    "TriggerScanConfig",
]
