"""Image data: the CIFAR-10 subset shipped with the shared data, as a ``DatasetDict`` with an ``image`` column
(Pillow images) and a ``label`` ``ClassLabel`` carrying the real class names."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

from ..data import DATA_DIR_ENV

CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_SUBSET = Path("images") / "cifar10-subset" / "cifar10_subset.npz"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir``, else ``$EBYD_DATA_DIR``; a clear error when neither is set."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        raise ValueError(
            f"No data folder: pass data_dir=<shared data root> or set ${DATA_DIR_ENV} (the folder that holds "
            f"{CIFAR10_SUBSET} and models/cifar-resnet/)."
        )
    return Path(data_dir)


def images_from_arrays(images: np.ndarray, labels: np.ndarray, label_names=CIFAR10_LABELS) -> Dataset:
    """A ``Dataset`` (``image``, ``label``) from uint8 HWC RGB arrays and integer labels."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"Expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}.")
    features = Features({"image": Image(), "label": ClassLabel(names=list(label_names))})
    return Dataset.from_dict({"image": list(images), "label": np.asarray(labels, dtype=np.int64).tolist()}, features)


def load_cifar10(data_dir: str | os.PathLike | None = None) -> DatasetDict:
    """The CIFAR-10 subset (4,660 train / 846 test real CIFAR-10 images, 32x32 RGB) as a ``DatasetDict``.

    The file is ``<data_dir>/images/cifar10-subset/cifar10_subset.npz``, with ``data_dir`` defaulting to
    ``$EBYD_DATA_DIR``; a path to the ``.npz`` itself works too.

    Example:
        >>> from ebyd_hf.vision import load_cifar10
        >>> cifar = load_cifar10("../shared/data")
        >>> cifar["train"].num_rows, cifar["test"].num_rows, cifar["train"].features["label"].names[0]
        (4660, 846, 'airplane')
    """
    root = resolve_data_dir(data_dir)
    path = root if root.suffix == ".npz" else root / CIFAR10_SUBSET
    if not path.is_file():
        raise FileNotFoundError(
            f"The CIFAR-10 subset is not at {path}. Put cifar10_subset.npz in <data_dir>/{CIFAR10_SUBSET.parent}/ "
            f"and pass data_dir=<data_dir> (or set ${DATA_DIR_ENV})."
        )
    with np.load(path) as arrays:
        names = tuple(str(n) for n in arrays["label_names"]) if "label_names" in arrays else CIFAR10_LABELS
        return DatasetDict(
            {
                "train": images_from_arrays(arrays["x_train"], arrays["y_train"], names),
                "test": images_from_arrays(arrays["x_test"], arrays["y_test"], names),
            }
        )
