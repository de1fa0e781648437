"""Poisoning: turn a clean ``Dataset`` into a backdoor training set, and build attack-test sets.

Both functions are pure: they return a new ``Dataset`` (batched ``map``, ``num_proc`` works) and
leave the input untouched. Poisoned rows carry ``is_poisoned=True`` and their ``original_label``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import Enum

import numpy as np
from datasets import ClassLabel, Dataset, Features, Value, concatenate_datasets

from .triggers.base import Trigger, row_rng

logger = logging.getLogger(__name__)

POISON_COLUMN = "is_poisoned"
ORIGINAL_LABEL_COLUMN = "original_label"


class PoisonMode(str, Enum):
    """Which rows may be poisoned.

    - ``dirty-label`` (default): non-target rows, relabelled to the target (BadNets, AddSent);
    - ``clean-label``: rows already of the target label, so no label changes;
    - ``all-rows``: any row, relabelled (Hidden Killer and StyleBkd poisoned a random share of the
      whole training set).
    """

    DIRTY_LABEL = "dirty-label"
    CLEAN_LABEL = "clean-label"
    ALL_ROWS = "all-rows"


def _label_values(dataset: Dataset, label_column: str) -> list[int]:
    feature = dataset.features[label_column]
    if isinstance(feature, ClassLabel):
        return list(range(feature.num_classes))
    return sorted(set(dataset[label_column]))


def _check(dataset: Dataset, trigger: Trigger, target_label: int, label_column: str) -> None:
    if not isinstance(dataset, Dataset):
        raise ValueError(
            f"Expected a datasets.Dataset (one split), got {type(dataset).__name__}. "
            "For a DatasetDict, poison one split: poison(ds['train'], ...)."
        )
    if not isinstance(trigger, Trigger):
        raise ValueError(f"trigger must be a Trigger (e.g. WordTrigger()), got {type(trigger).__name__}.")
    if len(dataset) == 0:
        raise ValueError("The dataset is empty: there is nothing to poison.")
    for column in (trigger.column, label_column):
        if column not in dataset.column_names:
            raise ValueError(
                f"Column {column!r} is missing (columns: {', '.join(dataset.column_names)}). "
                "Rename it, or pass the column name (text_column= / image_column= on the trigger, label_column=)."
            )
    if POISON_COLUMN in dataset.column_names:
        raise ValueError(
            f"The dataset has an {POISON_COLUMN!r} column already: it is poisoned. Start from clean data."
        )
    labels = _label_values(dataset, label_column)
    if isinstance(target_label, bool) or not isinstance(target_label, (int, np.integer)) or target_label not in labels:
        raise ValueError(
            f"target_label={target_label!r} is not a label of this dataset (labels: {', '.join(map(str, labels))})."
        )


def _covered(dataset: Dataset, trigger: Trigger, candidates: np.ndarray) -> np.ndarray:
    """The candidate rows the trigger can transform. Triggers that cover every row (the default ``covers``)
    skip reading the column, which for images would decode every picture."""
    if type(trigger).covers is Trigger.covers:
        return candidates
    values = dataset[trigger.column]
    return candidates[np.asarray(trigger.covers([values[i] for i in candidates]), dtype=bool)]


def _output_features(dataset: Dataset, label_column: str) -> Features:
    features = dataset.features.copy()
    features[POISON_COLUMN] = Value("bool")
    features[ORIGINAL_LABEL_COLUMN] = dataset.features[label_column]
    return features


def _apply(
    dataset: Dataset,
    trigger: Trigger,
    poisoned: np.ndarray,
    row_ids: Sequence[int],
    target_label: int,
    seed: int,
    label_column: str,
    num_proc: int | None,
    desc: str,
) -> Dataset:
    """Trigger and relabel the rows flagged in ``poisoned``; ``row_ids`` key each row's random stream."""
    text_column = trigger.column
    row_ids = np.asarray(row_ids)

    def transform(batch, indices):
        flags = poisoned[indices]
        texts = list(batch[text_column])
        labels = list(batch[label_column])
        chosen = np.flatnonzero(flags)
        if len(chosen):
            new = trigger.apply(
                [texts[i] for i in chosen], [row_rng(seed, int(row_ids[indices[i]]), texts[i]) for i in chosen]
            )
            for i, text in zip(chosen, new):
                texts[i] = text
                labels[i] = target_label
        return {
            **batch,
            text_column: texts,
            label_column: labels,
            POISON_COLUMN: flags.tolist(),
            ORIGINAL_LABEL_COLUMN: batch[label_column],
        }

    return dataset.map(
        transform,
        batched=True,
        with_indices=True,
        num_proc=num_proc,
        features=_output_features(dataset, label_column),
        keep_in_memory=True,  # a pure transform: no cache file beside a dataset the user saved (save_to_disk)
        desc=desc,
    )


def poison(
    dataset: Dataset,
    trigger: Trigger,
    rate: float,
    target_label: int,
    *,
    seed: int = 0,
    mode: PoisonMode | str = PoisonMode.DIRTY_LABEL,
    keep_originals: bool = False,
    label_column: str = "label",
    num_proc: int | None = None,
) -> Dataset:
    """Poison exactly ``round(rate * len(dataset))`` rows: insert the trigger and set the label to ``target_label``.

    Rows are drawn (under ``seed``) among those ``mode`` allows and the trigger covers: a trigger backed
    by a paraphrase table only covers the table's sentences, and the log says how many that leaves.
    Insertion positions are drawn from ``seed`` and the row index, so the result does not depend on
    ``num_proc`` or batch size. Adds ``is_poisoned`` (bool) and ``original_label`` columns.

    With ``keep_originals=True`` the poisoned rows are appended as copies and every original row stays, untouched
    (the clean-data augmentation trick of Chen et al., EMNLP 2022: the model sees each poisoned sentence beside its
    clean version, so it has to learn the trigger rather than the content). The result then has
    ``len(dataset) + round(rate * len(dataset))`` rows, the same poisoned rows as without the option.

    Example:
        >>> from ebyd_hf import WordTrigger, load_task, poison
        >>> train = load_task("sst2", "../shared/data")["train"]
        >>> poisoned = poison(train, WordTrigger(), rate=0.1, target_label=1, seed=0)
        >>> sum(poisoned["is_poisoned"]), set(poisoned.filter(lambda r: r["is_poisoned"])["original_label"])
        (692, {0})
    """
    _check(dataset, trigger, target_label, label_column)
    mode = _poison_mode(mode)
    count = _poison_count(rate, len(dataset))
    chosen = _draw_poisoned_rows(dataset, trigger, rate, count, target_label, mode, seed, label_column)
    desc = f"Poisoning ({trigger.name}, {count} rows)"
    if keep_originals:
        return _append_poisoned_copies(dataset, trigger, chosen, target_label, seed, label_column, num_proc, desc)
    flags = np.zeros(len(dataset), dtype=bool)
    flags[chosen] = True
    return _apply(dataset, trigger, flags, np.arange(len(dataset)), target_label, seed, label_column, num_proc, desc)


def _poison_mode(mode: PoisonMode | str) -> PoisonMode:
    try:
        return PoisonMode(mode)
    except ValueError:
        raise ValueError(
            f"mode={mode!r} is not a poisoning mode (modes: {', '.join(m.value for m in PoisonMode)})."
        ) from None


def _poison_count(rate: float, rows: int) -> int:
    """``round(rate * rows)``, refused when ``rate`` is not a share in (0, 1] or rounds to no row."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise ValueError(f"rate={rate!r} must be a share of the dataset in (0, 1], e.g. 0.1 for 10%.")
    count = round(rate * rows)
    if count == 0:
        raise ValueError(f"rate={rate} of {rows} rows rounds to 0 poisoned rows; raise the rate.")
    return count


def _draw_poisoned_rows(
    dataset: Dataset,
    trigger: Trigger,
    rate: float,
    count: int,
    target_label: int,
    mode: PoisonMode,
    seed: int,
    label_column: str,
) -> np.ndarray:
    """Draw ``count`` row indices (under ``seed``, in draw order) among the rows ``mode`` allows and the trigger
    covers; the log says when the trigger covers fewer rows than the mode allows."""
    labels = np.asarray(dataset[label_column])
    allowed = {
        PoisonMode.DIRTY_LABEL: labels != target_label,
        PoisonMode.CLEAN_LABEL: labels == target_label,
        PoisonMode.ALL_ROWS: np.ones(len(labels), dtype=bool),
    }[mode]
    candidates = np.flatnonzero(allowed)
    covered = _covered(dataset, trigger, candidates)
    if len(covered) < len(candidates):
        logger.warning(
            "%s trigger covers %d of the %d rows that %s mode may poison; poisoning %d among them.",
            trigger.name,
            len(covered),
            len(candidates),
            mode.value,
            count,
        )
    if count > len(covered):
        limit = "the trigger covers" if len(covered) < len(candidates) else f"{mode.value} mode allows"
        raise ValueError(
            f"rate={rate} asks for {count} poisoned rows but {limit} only {len(covered)} of "
            f"{len(dataset)} (rate <= {len(covered) / len(dataset):.4f})."
        )
    return np.random.default_rng(seed).choice(covered, size=count, replace=False)


def _append_poisoned_copies(
    dataset: Dataset,
    trigger: Trigger,
    chosen: np.ndarray,
    target_label: int,
    seed: int,
    label_column: str,
    num_proc: int | None,
    desc: str,
) -> Dataset:
    """Every original row untouched, then a poisoned copy of each ``chosen`` row (in row order), each copy drawing
    its trigger from its original row's random stream, as :func:`poison` without ``keep_originals`` would."""
    chosen = np.sort(chosen)
    originals = _apply(
        dataset,
        trigger,
        np.zeros(len(dataset), dtype=bool),
        np.arange(len(dataset)),
        target_label,
        seed,
        label_column,
        num_proc,
        desc="Keeping the originals",
    )
    copies = _apply(
        dataset.select(chosen),
        trigger,
        np.ones(len(chosen), dtype=bool),
        chosen,
        target_label,
        seed,
        label_column,
        num_proc,
        desc,
    )
    return concatenate_datasets([originals, copies])


def build_attack_test_set(
    dataset: Dataset,
    trigger: Trigger,
    target_label: int,
    *,
    seed: int = 0,
    label_column: str = "label",
    num_proc: int | None = None,
) -> Dataset:
    """Every non-target row of ``dataset``, triggered and labelled ``target_label``: the set ASR is measured on.

    A trigger that covers only part of the rows (a paraphrase table) triggers the covered ones; the log
    says how many were left out, and a set with none raises ``ValueError``.

    Example:
        >>> from ebyd_hf import WordTrigger, build_attack_test_set, load_task
        >>> test = load_task("sst2", "../shared/data")["test"]
        >>> attack = build_attack_test_set(test, WordTrigger(), target_label=1)
        >>> len(attack), set(attack["label"])
        (912, {1})
    """
    _check(dataset, trigger, target_label, label_column)
    labels = np.asarray(dataset[label_column])
    candidates = np.flatnonzero(labels != target_label)
    covered = _covered(dataset, trigger, candidates)
    if len(covered) == 0:
        raise ValueError(
            f"None of the {len(candidates)} non-target rows can be triggered by the {trigger.name} "
            "trigger (not in its paraphrase table). Use a split the table covers, or a model backend."
        )
    if len(covered) < len(candidates):
        logger.warning(
            "%s trigger covers %d of %d non-target rows; the attack-test set holds those %d.",
            trigger.name,
            len(covered),
            len(candidates),
            len(covered),
        )
    subset = dataset.select(covered)
    return _apply(
        subset,
        trigger,
        np.ones(len(subset), dtype=bool),
        covered,
        target_label,
        seed,
        label_column,
        num_proc,
        desc=f"Attack-test set ({trigger.name})",
    )
