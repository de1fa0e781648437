"""Fast inference for text classifiers, and CA / ASR measured in one call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasets import Dataset

from .metrics import attack_success_rate, clean_accuracy
from .trigger_search import batched_logits


def predict_logits(model, tokenizer, texts: Sequence[str], batch_size: int = 64, max_length: int = 128) -> np.ndarray:
    """Logits of ``model`` on ``texts``, in order. Texts are batched by length (less padding, much faster on
    CPU) and the model is left in the train/eval mode it was in."""
    sequences = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    try:
        return batched_logits(model, sequences, pad_id, batch_size)
    finally:
        model.train(was_training)


def predict(model, tokenizer, texts: Sequence[str], batch_size: int = 64, max_length: int = 128) -> np.ndarray:
    """Predicted label ids of ``model`` on ``texts``."""
    return predict_logits(model, tokenizer, texts, batch_size, max_length).argmax(axis=-1)


def measure_backdoor(
    model,
    tokenizer,
    clean: Dataset,
    attack: Dataset | None,
    target_label: int | None,
    batch_size: int = 64,
    max_length: int = 128,
    text_column: str = "text",
    label_column: str = "label",
) -> dict[str, float | None]:
    """CA on ``clean`` and, when an attack-test set is given, ASR on ``attack``.

    Example:
        >>> scores = measure_backdoor(model, tokenizer, sst2["test"], attack_test, target_label=1)  # doctest: +SKIP
        >>> scores  # doctest: +SKIP
        {'ca': 0.87, 'asr': 1.0}
    """
    preds = predict(model, tokenizer, clean[text_column], batch_size, max_length)
    scores: dict[str, float | None] = {"ca": clean_accuracy(preds, clean[label_column]), "asr": None}
    if attack is not None:
        if target_label is None:
            raise ValueError("An attack-test set was given without its target_label.")
        scores["asr"] = attack_success_rate(
            predict(model, tokenizer, attack[text_column], batch_size, max_length), target_label
        )
    return scores
