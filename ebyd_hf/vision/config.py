"""Configuration of :class:`~ebyd_hf.vision.VisionExposeTrainer`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..expose_config import ExposeConfig
from ..methods import DETECTION_METHODS, REMOVAL_METHODS


@dataclass
class VisionExposeConfig(ExposeConfig):
    r"""
    Configuration for :class:`~ebyd_hf.vision.VisionExposeTrainer`: the fields of :class:`~ebyd_hf.ExposeConfig`
    with defaults measured on CIFAR-10 image classifiers.

    Parameters whose defaults differ from :class:`~ebyd_hf.ExposeConfig`:
        - `optim`: `"sgd"` with `optim_args="momentum=0.9"` (every stage; the CIFAR ResNets were trained so)
        - `learning_rate`: `0.01`, `num_train_epochs`: `10`, `per_device_train_batch_size`: `128`,
          `weight_decay`: `5e-4` (the purification fine-tuning, for removal methods that fine-tune)
        - `exposure_learning_rate`: `0.01`, `exposure_max_steps`: `300`; `exposure_config`: `eval_steps=1`,
          `stop_accuracy=0.2` (stop Clean Unlearning once clean accuracy is at most 0.2, as RNP)
        - `detection_method`: `"collapse_target"` (its `threshold` 0.8: see docs/results.md)
        - `removal_method`: `"rnp"` (``RNPConfig``: mask learning on the exposed model)

    Example:
        >>> from ebyd_hf.vision import VisionExposeConfig
        >>> config = VisionExposeConfig("defense-out")
        >>> config.removal_method, config.exposure_config.stop_accuracy, config.removal_config.threshold
        ('rnp', 0.2, 0.3)
    """

    method_config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "clean_unlearning": {"eval_steps": 1, "stop_accuracy": 0.2},
        "confusion": {"eval_steps": 1, "stop_accuracy": 0.2},
    }

    # Parameters whose defaults differ from ExposeConfig
    optim: str = field(default="sgd", metadata={"help": "Optimizer of every stage (SGD with momentum for CNNs)."})
    optim_args: str | None = field(default="momentum=0.9", metadata={"help": "Arguments of the optimizer."})
    learning_rate: float = field(default=0.01, metadata={"help": "Learning rate of the purification fine-tuning."})
    num_train_epochs: float = field(default=10.0, metadata={"help": "Epochs of the purification fine-tuning."})
    per_device_train_batch_size: int = field(default=128, metadata={"help": "Batch size per device."})
    per_device_eval_batch_size: int = field(default=256, metadata={"help": "Evaluation batch size per device."})
    weight_decay: float = field(default=5e-4, metadata={"help": "Weight decay of the purification fine-tuning."})
    exposure_learning_rate: float = field(default=0.01, metadata={"help": "Learning rate of the exposure stage."})
    exposure_max_steps: int = field(default=300, metadata={"help": "Upper bound on exposure steps."})
    detection_method: str = field(
        default="collapse_target",
        metadata={"help": "How the verdict and target label are read.", "choices": sorted(DETECTION_METHODS)},
    )
    removal_method: str = field(
        default="rnp", metadata={"help": "How the backdoor is removed.", "choices": sorted(REMOVAL_METHODS)}
    )

    # Images
    image_column: str = field(default="image", metadata={"help": "Column of the clean set holding the images."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Shared data root for models given by name (`resnet20`); default $EBYD_DATA_DIR."},
    )
