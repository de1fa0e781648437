"""Batched inference for image classifiers, and CA / ASR in one call."""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset

from ..metrics import attack_success_rate, clean_accuracy
from .processing import encode_images


@torch.no_grad()
def predict_images(
    model, dataset: Dataset, processor=None, batch_size: int = 256, image_column: str = "image"
) -> np.ndarray:
    """Predicted labels of ``model`` on ``dataset`` (raw ``image`` column, preprocessed with ``processor``, or
    ``pixel_values``), in order. The model is left in the train/eval mode it was in."""
    if "pixel_values" not in dataset.column_names:
        if "label" not in dataset.column_names:
            dataset = dataset.add_column("label", [0] * len(dataset))
        dataset = encode_images(dataset, processor, image_column)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    preds = []
    try:
        for start in range(0, len(dataset), batch_size):
            pixels = torch.as_tensor(dataset[start : start + batch_size]["pixel_values"], dtype=torch.float32)
            preds.append(model(pixel_values=pixels.to(device)).logits.argmax(-1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)


def measure_image_backdoor(
    model,
    processor,
    clean: Dataset,
    attack: Dataset | None,
    target_label: int | None,
    batch_size: int = 256,
    image_column: str = "image",
) -> dict[str, float | None]:
    """CA on ``clean`` and, when an attack-test set is given, ASR on ``attack``.

    Example:
        >>> from ebyd_hf.vision import load_cifar10, load_cifar_resnet, CifarImageProcessor, measure_image_backdoor
        >>> test = load_cifar10("../shared/data")["test"]
        >>> scores = measure_image_backdoor(load_cifar_resnet("resnet20", "../shared/data"), CifarImageProcessor(),
        ...                                 test, None, None)  # doctest: +SKIP
        >>> round(scores["ca"], 3)  # doctest: +SKIP
        0.917
    """
    preds = predict_images(model, clean, processor, batch_size, image_column)
    scores: dict[str, float | None] = {"ca": clean_accuracy(preds, clean["label"]), "asr": None}
    if attack is not None:
        if target_label is None:
            raise ValueError("An attack-test set was given without its target_label.")
        scores["asr"] = attack_success_rate(
            predict_images(model, attack, processor, batch_size, image_column), target_label
        )
    return scores
