"""ebyd_hf: Expose Before You Defend, the Hugging Face way.

Heavy modules load on first use, so ``import ebyd_hf`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "load_task": "ebyd_hf.data",
    "TASKS": "ebyd_hf.data",
    "TaskSpec": "ebyd_hf.data",
    "Trigger": "ebyd_hf.triggers",
    "WordTrigger": "ebyd_hf.triggers",
    "SentenceTrigger": "ebyd_hf.triggers",
    "SyntacticTrigger": "ebyd_hf.triggers",
    "StyleTrigger": "ebyd_hf.triggers",
    "ParaphraseBackend": "ebyd_hf.triggers",
    "ParaphraseTable": "ebyd_hf.triggers",
    "SCPNParaphraser": "ebyd_hf.triggers",
    "GenerationParaphraser": "ebyd_hf.triggers",
    "load_paraphrase_table": "ebyd_hf.triggers",
    "build_trigger": "ebyd_hf.triggers",
    "TRIGGERS": "ebyd_hf.triggers",
    "poison": "ebyd_hf.poisoning",
    "build_attack_test_set": "ebyd_hf.poisoning",
    "PoisonMode": "ebyd_hf.poisoning",
    "AttackConfig": "ebyd_hf.victim",
    "prepare_attack": "ebyd_hf.victim",
    "measure_backdoor": "ebyd_hf.evaluation",
    "predict": "ebyd_hf.evaluation",
    "train_victim": "ebyd_hf.victim",
    "AttackRecord": "ebyd_hf.victim",
    "ExposeConfig": "ebyd_hf.expose_config",
    "ExposeTrainer": "ebyd_hf.expose_trainer",
    "ExposureResult": "ebyd_hf.expose_trainer",
    "SoftTrigger": "ebyd_hf.adversarial",
    "DefenseReport": "ebyd_hf.report",
    "DetectionResult": "ebyd_hf.report",
    "trigger_contexts": "ebyd_hf.trigger_search",
    "TriggerContext": "ebyd_hf.trigger_search",
    "clean_accuracy": "ebyd_hf.metrics",
    "attack_success_rate": "ebyd_hf.metrics",
    "excess_attack_success_rate": "ebyd_hf.metrics",
    "defense_effectiveness_rating": "ebyd_hf.metrics",
    "compute_accuracy_metrics": "ebyd_hf.metrics",
    "load_metric": "ebyd_hf.metrics",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .adversarial import SoftTrigger  # noqa: F401
    from .data import TASKS, TaskSpec, load_task  # noqa: F401
    from .evaluation import measure_backdoor, predict  # noqa: F401
    from .expose_config import ExposeConfig  # noqa: F401
    from .expose_trainer import ExposeTrainer, ExposureResult  # noqa: F401
    from .metrics import (  # noqa: F401
        attack_success_rate,
        clean_accuracy,
        compute_accuracy_metrics,
        defense_effectiveness_rating,
        excess_attack_success_rate,
        load_metric,
    )
    from .poisoning import PoisonMode, build_attack_test_set, poison  # noqa: F401
    from .report import DefenseReport, DetectionResult  # noqa: F401
    from .trigger_search import TriggerContext, trigger_contexts  # noqa: F401
    from .triggers import (  # noqa: F401
        TRIGGERS,
        GenerationParaphraser,
        ParaphraseBackend,
        ParaphraseTable,
        SCPNParaphraser,
        SentenceTrigger,
        StyleTrigger,
        SyntacticTrigger,
        Trigger,
        WordTrigger,
        build_trigger,
        load_paraphrase_table,
    )
    from .victim import AttackConfig, AttackRecord, prepare_attack, train_victim  # noqa: F401


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ebyd_hf' has no attribute {name!r}")
