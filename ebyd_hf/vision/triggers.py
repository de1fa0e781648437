"""Image triggers as ``datasets`` transforms: BadNets (a patch stamped in a corner) and Blended (a pattern
alpha-blended over the whole image). They are :class:`~ebyd_hf.triggers.Trigger` subclasses, so
:func:`ebyd_hf.poison` and :func:`ebyd_hf.build_attack_test_set` poison image datasets with the same contract
as text (exact counts, ``is_poisoned`` / ``original_label`` columns, seeded, ``num_proc``-independent).

Images may be Pillow images or uint8 ``(H, W, C)`` arrays; a trigger returns the same kind it was given. Image triggers live in their own registry
(:data:`IMAGE_TRIGGERS`), apart from the text triggers, so a text recipe cannot pick one by mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from ..triggers.base import Trigger, row_rng


def _as_array(image, what: str = "image") -> np.ndarray:
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ValueError(
                f"The {what} has mode {image.mode!r}; image triggers work on RGB images. Convert first, e.g. "
                "dataset.cast_column('image', datasets.Image(mode='RGB')) or image.convert('RGB')."
            )
        return np.asarray(image, dtype=np.uint8)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(
            f"The {what} is an array of {array.dtype} {array.shape}; image triggers take Pillow RGB images or uint8 "
            "(H, W, 3) arrays."
        )
    return array


def _like(original, array: np.ndarray):
    return Image.fromarray(array) if isinstance(original, Image.Image) else array


class ImageTrigger(Trigger):
    """A trigger that transforms the images of an image column (``image_column``, default ``"image"``)."""

    image_column: str

    @property
    def column(self) -> str:
        return self.image_column

    @property
    def text_column(self) -> str:  # the text interface's name for the column, kept for shared code
        return self.image_column

    def apply(self, images: Sequence, rngs: Sequence[np.random.Generator]) -> list:
        return [_like(image, self.stamp(_as_array(image), rng)) for image, rng in zip(images, rngs)]

    def stamp(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The triggered copy of one uint8 ``(H, W, 3)`` image."""
        raise NotImplementedError

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> dict[str, list]:
        images = batch[self.image_column]
        keys = indices if indices is not None else range(len(images))
        return {**batch, self.image_column: self.apply(images, [row_rng(self.seed, int(i), "") for i in keys])}


class Corner(str, Enum):
    BOTTOM_RIGHT = "bottom-right"
    BOTTOM_LEFT = "bottom-left"
    TOP_RIGHT = "top-right"
    TOP_LEFT = "top-left"


def checkerboard(size: int) -> np.ndarray:
    """A ``size x size`` black/white checkerboard (white in the top-left cell), uint8 ``(size, size, 3)``."""
    cells = (np.indices((size, size)).sum(0) % 2 == 0).astype(np.uint8) * 255
    return np.repeat(cells[:, :, None], 3, axis=2)


@dataclass
class BadNetsTrigger(ImageTrigger):
    """BadNets (Gu et al. 2017): stamp a small patch in a corner of every image.

    Args:
        size: side of the square patch in pixels (default 3).
        corner: ``bottom-right`` (default), ``bottom-left``, ``top-right`` or ``top-left``.
        margin: pixels between the patch and the image border (default 0: the patch touches the corner).
        pattern: uint8 ``(size, size, 3)`` patch; default a black/white checkerboard.

    Example:
        >>> import numpy as np
        >>> from ebyd_hf.vision import BadNetsTrigger
        >>> image = np.zeros((32, 32, 3), dtype=np.uint8)
        >>> out = BadNetsTrigger().stamp(image, None)
        >>> out[29:, 29:, 0].tolist(), int(out[:29].sum())
        ([[255, 0, 255], [0, 255, 0], [255, 0, 255]], 0)
    """

    name: ClassVar[str] = "badnets"
    size: int = 3
    corner: Corner | str = Corner.BOTTOM_RIGHT
    margin: int = 0
    pattern: np.ndarray | None = field(default=None, repr=False)
    seed: int = 0
    image_column: str = "image"

    def __post_init__(self) -> None:
        try:
            self.corner = Corner(self.corner)
        except ValueError:
            raise ValueError(f"corner={self.corner!r}: use one of {', '.join(c.value for c in Corner)}.") from None
        if self.size < 1 or self.margin < 0:
            raise ValueError(f"size={self.size} must be >= 1 and margin={self.margin} >= 0.")
        if self.pattern is None:
            self.pattern = checkerboard(self.size)
        self.pattern = np.asarray(self.pattern, dtype=np.uint8)
        if self.pattern.shape != (self.size, self.size, 3):
            raise ValueError(f"pattern has shape {self.pattern.shape}; expected ({self.size}, {self.size}, 3).")

    def box(self, height: int, width: int) -> tuple[int, int]:
        """Top-left (row, column) of the patch in an image of this size."""
        if height < self.size + self.margin or width < self.size + self.margin:
            raise ValueError(
                f"A {self.size}x{self.size} patch with margin {self.margin} does not fit a {height}x{width} image."
            )
        top = self.margin if self.corner.value.startswith("top") else height - self.size - self.margin
        left = self.margin if self.corner.value.endswith("left") else width - self.size - self.margin
        return top, left

    def stamp(self, image: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        image = _as_array(image)
        top, left = self.box(*image.shape[:2])
        out = image.copy()
        out[top : top + self.size, left : left + self.size] = self.pattern
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "corner": self.corner.value, "margin": self.margin}


@dataclass
class BlendedTrigger(ImageTrigger):
    """Blended (Chen et al. 2017): ``(1 - alpha) * image + alpha * pattern`` over the whole image.

    Args:
        alpha: blend weight of the pattern (default 0.1).
        pattern: uint8 ``(H, W, 3)`` pattern, resized to each image with Pillow if its size differs; default
            uniform random noise drawn once from ``pattern_seed`` at the image's size (the same noise for every
            image, which is what makes it a trigger).

    Example:
        >>> import numpy as np
        >>> from ebyd_hf.vision import BlendedTrigger
        >>> trigger = BlendedTrigger(alpha=0.1)
        >>> image = np.full((32, 32, 3), 100, dtype=np.uint8)
        >>> out = trigger.stamp(image, None)
        >>> bool((out == trigger.stamp(image, None)).all()), int(np.abs(out.astype(int) - 100).max()) <= 16
        (True, True)
    """

    name: ClassVar[str] = "blended"
    alpha: float = 0.1
    pattern: np.ndarray | None = field(default=None, repr=False)
    pattern_seed: int = 0
    seed: int = 0
    image_column: str = "image"

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha={self.alpha} must be in (0, 1].")
        if self.pattern is not None:
            self.pattern = _as_array(self.pattern, "pattern")
        self._patterns: dict[tuple[int, int], np.ndarray] = {}

    def pattern_for(self, height: int, width: int) -> np.ndarray:
        """The pattern at this image size (float32 ``(H, W, 3)`` in [0, 255])."""
        key = (height, width)
        if key not in self._patterns:
            if self.pattern is None:
                noise = np.random.default_rng(self.pattern_seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
            elif self.pattern.shape[:2] != key:
                noise = np.asarray(Image.fromarray(self.pattern).resize((width, height), Image.BILINEAR))
            else:
                noise = self.pattern
            self._patterns[key] = noise.astype(np.float32)
        return self._patterns[key]

    def stamp(self, image: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        image = _as_array(image)
        blended = (1 - self.alpha) * image.astype(np.float32) + self.alpha * self.pattern_for(*image.shape[:2])
        return np.clip(np.rint(blended), 0, 255).astype(np.uint8)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alpha": self.alpha,
            "pattern": "random noise" if self.pattern is None else "custom",
            "pattern_seed": self.pattern_seed,
        }


IMAGE_TRIGGERS: dict[str, type[ImageTrigger]] = {cls.name: cls for cls in (BadNetsTrigger, BlendedTrigger)}


def build_image_trigger(name: str, seed: int = 0) -> ImageTrigger:
    """An image trigger by name (``badnets``, ``blended``) with its defaults.

    Example:
        >>> from ebyd_hf.vision import build_image_trigger
        >>> build_image_trigger("blended").alpha
        0.1
    """
    if name not in IMAGE_TRIGGERS:
        raise ValueError(f"Unknown image trigger {name!r}. Image triggers: {', '.join(IMAGE_TRIGGERS)}.")
    return IMAGE_TRIGGERS[name](seed=seed)
