"""Pillow/numpy preprocessing: images to normalised ``pixel_values`` tensors, checked for mode and size, and an
image collator for the ``Trainer`` (optionally with the usual CIFAR augmentation: random crop and flip)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Array3D, Dataset, Features, Value
from PIL import Image
from transformers.image_processing_backends import PilBackend

CIFAR_MEAN = (0.485, 0.456, 0.406)
CIFAR_STD = (0.229, 0.224, 0.225)


class CifarImageProcessor(PilBackend):
    """The preprocessing of the pretrained CIFAR ResNets: RGB in [0, 1], normalised with ImageNet's mean
    (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), no resizing (32x32 in). A transformers image processor
    (Pillow backend): ``save_pretrained`` / ``from_pretrained`` work and it returns a ``BatchFeature``.

    Example:
        >>> import numpy as np
        >>> from PIL import Image
        >>> from ebyd_hf.vision import CifarImageProcessor
        >>> image = Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8))
        >>> CifarImageProcessor()([image], return_tensors="pt")["pixel_values"].shape
        torch.Size([1, 3, 32, 32])
    """

    model_input_names = ["pixel_values"]
    image_mean = list(CIFAR_MEAN)
    image_std = list(CIFAR_STD)
    size = {"height": 32, "width": 32}
    do_resize = False
    do_rescale = True
    do_normalize = True


def _expected_size(processor) -> tuple[int, int] | None:
    """(height, width) a processor that does not resize requires; ``None`` when it resizes."""
    if getattr(processor, "do_resize", True):
        return None
    size = getattr(processor, "size", None) or {}
    if "height" in size and "width" in size:
        return int(size["height"]), int(size["width"])
    return None


def check_images(images: Sequence, processor=None, what: str = "dataset") -> None:
    """Raise a ``ValueError`` naming the fix when an image is not RGB or not the size the processor needs."""
    expected = _expected_size(processor) if processor is not None else None
    for index, image in enumerate(images):
        if isinstance(image, Image.Image):
            mode, (width, height) = image.mode, image.size
        else:
            array = np.asarray(image)
            mode = "RGB" if array.ndim == 3 and array.shape[-1] == 3 else f"array {array.shape}"
            height, width = array.shape[:2] if array.ndim >= 2 else (0, 0)
        if mode != "RGB":
            raise ValueError(
                f"Image {index} of the {what} has mode {mode!r}; the model takes RGB images. Convert them, e.g. "
                "dataset.cast_column('image', datasets.Image(mode='RGB'))."
            )
        if expected is not None and (height, width) != expected:
            raise ValueError(
                f"Image {index} of the {what} is {height}x{width} but the processor expects {expected[0]}x{expected[1]}"
                " and does not resize. Resize the images, or pass a processor with do_resize=True."
            )


def encode_images(
    dataset: Dataset, processor, image_column: str = "image", label_column: str = "label", what: str = "dataset"
) -> Dataset:
    """``pixel_values`` (float32, preprocessed by ``processor``) and ``label`` columns, torch-formatted: ready for
    the ``Trainer``. Images are checked first (RGB, and the size a non-resizing processor needs)."""
    if image_column not in dataset.column_names:
        raise ValueError(
            f"The {what} has no {image_column!r} column (columns: {', '.join(dataset.column_names)}). "
            "Rename the image column or pass image_column=."
        )
    if processor is None:
        raise ValueError(f"Pass processing_class=<an image processor> to preprocess the {what}.")
    check_images(dataset[:1][image_column], processor, what)
    probe = processor(dataset[:1][image_column], return_tensors="np")["pixel_values"]
    features = Features({"pixel_values": Array3D(probe.shape[1:], "float32"), label_column: Value("int64")})

    def transform(batch):
        check_images(batch[image_column], processor, what)
        pixels = processor(batch[image_column], return_tensors="np")["pixel_values"].astype(np.float32)
        return {"pixel_values": pixels, label_column: batch[label_column]}

    encoded = dataset.map(
        transform,
        batched=True,
        remove_columns=dataset.column_names,
        features=features,
        desc=f"Preprocessing {what}",
    )
    return encoded.with_format("torch")


def random_crop_flip(pixels: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with ``padding`` zero-padding and random horizontal flip, per image (CIFAR augmentation)."""
    batch, _, height, width = pixels.shape
    padded = F.pad(pixels, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (batch, 2), generator=generator)
    flips = torch.rand(batch, generator=generator) < 0.5
    out = torch.empty_like(pixels)
    for i in range(batch):
        top, left = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[i, :, top : top + height, left : left + width]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


@dataclass
class ImageCollator:
    """Collate rows into ``{"pixel_values", "labels"}`` batches. Rows may hold preprocessed ``pixel_values``
    (:func:`encode_images`) or raw images in ``image_column``, which ``processor`` then preprocesses.

    Args:
        processor: the image processor for raw images (not needed for preprocessed rows).
        augment: random crop (padding 4) and horizontal flip, for training.
        image_column, label_column: column names.

    Example:
        >>> import numpy as np
        >>> from PIL import Image
        >>> from ebyd_hf.vision import CifarImageProcessor, ImageCollator
        >>> rows = [{"image": Image.fromarray(np.zeros((32, 32, 3), np.uint8)), "label": 3}] * 2
        >>> batch = ImageCollator(CifarImageProcessor())(rows)
        >>> tuple(batch["pixel_values"].shape), batch["labels"].tolist()
        ((2, 3, 32, 32), [3, 3])
    """

    processor: Any = None
    augment: bool = False
    image_column: str = "image"
    label_column: str = "label"

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if "pixel_values" in rows[0]:
            pixels = torch.stack([torch.as_tensor(row["pixel_values"], dtype=torch.float32) for row in rows])
        elif self.image_column in rows[0]:
            if self.processor is None:
                raise ValueError("These rows hold raw images: build ImageCollator(processor=<image processor>).")
            images = [row[self.image_column] for row in rows]
            check_images(images, self.processor, "batch")
            pixels = torch.as_tensor(self.processor(images, return_tensors="np")["pixel_values"], dtype=torch.float32)
        else:
            raise ValueError(f"Rows need 'pixel_values' or {self.image_column!r}; got {', '.join(rows[0])}.")
        if self.augment:
            pixels = random_crop_flip(pixels)
        batch = {"pixel_values": pixels}
        key = self.label_column if self.label_column in rows[0] else "labels" if "labels" in rows[0] else None
        if key is not None:
            batch["labels"] = torch.as_tensor([int(row[key]) for row in rows], dtype=torch.long)
        return batch
