"""Labels by name: a dataset's labels are read against the model's ``id2label`` before any of them is trusted.

A clean set whose ``ClassLabel`` names come in another order than the model's labels would teach the defense the
wrong classes while every id is in range; :func:`align_labels` compares names where both sides have them, reorders
(as :meth:`datasets.Dataset.align_labels_with_mapping` does, in memory) when only the order differs, refuses names
that do not match, maps string labels through ``id2label``, and checks plain ids against the model's label count.
"""

from __future__ import annotations

import logging
import re

from datasets import ClassLabel, Dataset

__all__ = ["align_labels", "check_same_labels", "model_label_names"]

logger = logging.getLogger(__name__)

_GENERIC = re.compile(r"^(LABEL_)?\d+$")


def model_label_names(config) -> list[str] | None:
    """The model's label names in id order, or ``None`` when it has placeholders (transformers' ``LABEL_0``..., or
    bare ids ``"0"``...) and so no names to compare."""
    id2label = getattr(config, "id2label", None) or {}
    names = [str(id2label.get(i, id2label.get(str(i), ""))) for i in range(int(config.num_labels))]
    if not all(names) or all(_GENERIC.match(name) for name in names):
        return None
    return names


def _key(name: str) -> str:
    return name.strip().lower()


def check_same_labels(config, other, what: str) -> None:
    """Refuse ``other`` (a ``PretrainedConfig``) unless it has the label ids of ``config``: the same count, and the
    same names in the same order (case-insensitive) where both name their labels."""
    if other is None or not hasattr(other, "num_labels"):
        raise ValueError(f"{what} must be a transformers sequence classifier (a model with a config).")
    if int(other.num_labels) != int(config.num_labels):
        raise ValueError(
            f"{what} has {other.num_labels} labels, the model {config.num_labels}: give a model of the same task."
        )
    names, theirs = model_label_names(config), model_label_names(other)
    if names is not None and theirs is not None and [_key(n) for n in names] != [_key(n) for n in theirs]:
        raise ValueError(f"{what}'s labels {theirs} are not the model's {names}: give a model of the same task.")


def align_labels(dataset: Dataset, config, what: str, column: str = "label") -> Dataset:
    """``dataset`` with its ``column`` as the model's label ids (``config``: the model's ``PretrainedConfig``).

    - ``ClassLabel`` names the model also has (case-insensitive) in another order: reordered to the model's ids.
    - ``ClassLabel`` names that are not the model's: refused, naming both lists.
    - String labels: mapped through the model's ``id2label``; a string it does not have is refused.
    - Integer labels (or either side without names): every id must be one of the model's.

    Example:
        >>> from datasets import ClassLabel, Dataset, Features, Value
        >>> from transformers import BertConfig
        >>> config = BertConfig(id2label={0: "negative", 1: "positive"})
        >>> features = Features({"text": Value("string"), "label": ClassLabel(names=["positive", "negative"])})
        >>> data = Dataset.from_dict({"text": ["great", "awful"], "label": [0, 1]}, features=features)
        >>> align_labels(data, config, "train_dataset")["label"]
        [1, 0]
    """
    names = model_label_names(config)
    feature = dataset.features.get(column)
    if isinstance(feature, ClassLabel) and names is not None and not all(_GENERIC.match(n) for n in feature.names):
        dataset = _align_class_label(dataset, feature.names, names, what, column)
    elif feature is not None and getattr(feature, "dtype", None) in ("string", "large_string"):
        dataset = _map_strings(dataset, names, what, column)
    _check_ids(dataset[column], int(config.num_labels), what)
    return dataset


def _align_class_label(dataset: Dataset, given: list[str], names: list[str], what: str, column: str) -> Dataset:
    if [_key(n) for n in given] == [_key(n) for n in names]:
        return dataset
    unknown = sorted(set(map(_key, given)) - set(map(_key, names)))
    if unknown:
        raise ValueError(
            f"{what}'s label names {given} are not the model's {names} (no {unknown}); rename the dataset's classes "
            f"to the model's (dataset.cast_column({column!r}, ClassLabel(names=[...]))) or use the matching model."
        )
    logger.info("%s: label names %s reordered to the model's %s.", what, given, names)
    # What Dataset.align_labels_with_mapping does, kept in memory: no cache file beside a dataset the user saved.
    _check_ids(dataset[column], len(given), what)  # -1 (an unlabelled split) must not read as the last name
    ids = {_key(name): i for i, name in enumerate(names)}
    mapped = [ids[_key(given[label])] for label in dataset[column]]
    return dataset.remove_columns(column).add_column(column, mapped, feature=ClassLabel(names=list(names)))


def _map_strings(dataset: Dataset, names: list[str] | None, what: str, column: str) -> Dataset:
    if names is None:
        raise ValueError(
            f"{what} has string labels but the model's id2label has no names (LABEL_0, ...); give integer labels "
            "in the model's order, or set model.config.id2label."
        )
    ids = {_key(name): i for i, name in enumerate(names)}
    unknown = sorted({value for value in dataset[column] if _key(str(value)) not in ids}, key=str)
    if unknown:
        raise ValueError(f"{what} has labels {unknown[:5]} the model does not have; its labels are {names}.")
    mapped = [ids[_key(value)] for value in dataset[column]]
    return dataset.remove_columns(column).add_column(column, mapped)


def _check_ids(labels, num_labels: int, what: str) -> None:
    bad = sorted({label for label in labels if not isinstance(label, int) or not 0 <= label < num_labels}, key=str)
    if bad:
        raise ValueError(
            f"{what} has labels {bad[:5]} that the model does not have (it has {num_labels} labels: "
            f"0..{num_labels - 1}). Map the dataset's labels to the model's."
        )
