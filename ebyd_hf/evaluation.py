"""Fast inference for text classifiers, and CA / ASR measured in one call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from datasets import Dataset

from .metrics import attack_success_rate, clean_accuracy


@torch.no_grad()
def predict_logits(model, tokenizer, texts: Sequence[str], batch_size: int = 64, max_length: int = 128) -> np.ndarray:
    """Logits of ``model`` on ``texts``, in order. Texts are batched by length (less padding, much faster on
    CPU) and the model is left in the train/eval mode it was in."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    try:
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ).to(device)
            out[rows] = model(**batch).logits.float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


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
