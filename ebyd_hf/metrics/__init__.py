"""Backdoor metrics: clean accuracy (CA), attack success rate (ASR), excess ASR (ASR above a never-poisoned
reference model's on the same rows) and the defense effectiveness rating (DER, as BackdoorBench), as plain functions, as ``compute_metrics`` for the ``Trainer``, and as local
``evaluate`` modules (``load_metric("asr")``), since the Hub's metric scripts are not always reachable."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MODULES_DIR = Path(__file__).parent / "modules"
METRIC_MODULES = {
    "clean_accuracy": "clean_accuracy",
    "ca": "clean_accuracy",
    "attack_success_rate": "attack_success_rate",
    "asr": "attack_success_rate",
    "excess_attack_success_rate": "excess_attack_success_rate",
    "excess_asr": "excess_attack_success_rate",
    "der": "der",
}


def _as_labels(values) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2:  # logits
        array = array.argmax(axis=-1)
    return array


def clean_accuracy(predictions: Sequence[int] | np.ndarray, references: Sequence[int] | np.ndarray) -> float:
    """Share of clean rows predicted correctly. ``predictions`` may be labels or logits."""
    predictions, references = _as_labels(predictions), np.asarray(references)
    if len(predictions) != len(references) or len(references) == 0:
        raise ValueError(
            f"Need as many predictions as references, and at least one (got {len(predictions)} and {len(references)})."
        )
    return float((predictions == references).mean())


def attack_success_rate(predictions: Sequence[int] | np.ndarray, target_label: int) -> float:
    """Share of triggered non-target rows (an attack-test set) predicted as ``target_label``."""
    predictions = _as_labels(predictions)
    if len(predictions) == 0:
        raise ValueError("The attack-test set is empty: build it with build_attack_test_set().")
    return float((predictions == target_label).mean())


def excess_attack_success_rate(
    predictions: Sequence[int] | np.ndarray, reference_predictions: Sequence[int] | np.ndarray, target_label: int
) -> dict[str, float]:
    """ASR above its floor. ``predictions``: the model's labels (or logits) on an attack-test set;
    ``reference_predictions``: a never-poisoned model of the same task on the same rows. The reference's ASR is the
    floor (its own errors, and triggered rows whose meaning really changed); ``excess`` = ASR - floor is the part a
    backdoor accounts for, and what a defense can remove without giving up clean accuracy.

    Example:
        >>> excess_attack_success_rate([1, 1, 1, 0], [0, 1, 0, 0], target_label=1)
        {'asr': 0.75, 'floor': 0.25, 'excess': 0.5}
    """
    predictions, reference = _as_labels(predictions), _as_labels(reference_predictions)
    if len(predictions) != len(reference):
        raise ValueError(
            f"predictions ({len(predictions)}) and reference_predictions ({len(reference)}) must be on the same rows."
        )
    asr, floor = attack_success_rate(predictions, target_label), attack_success_rate(reference, target_label)
    return {"asr": asr, "floor": floor, "excess": asr - floor}


def defense_effectiveness_rating(ca_before: float, asr_before: float, ca_after: float, asr_after: float) -> float:
    """DER = [max(0, ASR_before - ASR_after) - max(0, CA_before - CA_after) + 1] / 2, in [0, 1];
    0.5 means no change, 1 a backdoor fully removed at no cost in clean accuracy. Every rate must be a number in
    [0, 1] (a NaN, a percentage or a missing measurement is refused, not rated)."""
    given = {"ca_before": ca_before, "asr_before": asr_before, "ca_after": ca_after, "asr_after": asr_after}
    for name, value in given.items():
        if not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:  # NaN fails both comparisons
            raise ValueError(f"{name}={value!r} must be a rate in [0, 1]; measure it first (measure_backdoor).")
    return (max(0.0, asr_before - asr_after) - max(0.0, ca_before - ca_after) + 1.0) / 2.0


def compute_accuracy_metrics(eval_pred) -> dict[str, float]:
    """``compute_metrics`` for the ``Trainer``: accuracy of the logits against the labels. On a clean set
    this is CA; on an attack-test set (labels = target) it is ASR."""
    logits, labels = eval_pred[0], eval_pred[1]
    if isinstance(logits, tuple):
        logits = logits[0]
    return {"accuracy": clean_accuracy(logits, labels)}


def load_metric(name: str):
    """The packaged ``evaluate`` module for ``name`` (``clean_accuracy``/``ca``, ``attack_success_rate``/``asr``,
    ``excess_attack_success_rate``/``excess_asr``, ``der``), loaded from the package folder without the Hub.

    Example:
        >>> from ebyd_hf import load_metric
        >>> load_metric("asr").compute(predictions=[1, 1, 0, 1], target_label=1)
        {'attack_success_rate': 0.75}
    """
    import evaluate

    if name not in METRIC_MODULES:
        raise ValueError(f"Unknown metric {name!r}. Known metrics: {', '.join(METRIC_MODULES)}.")
    return evaluate.load(str(MODULES_DIR / METRIC_MODULES[name]))
