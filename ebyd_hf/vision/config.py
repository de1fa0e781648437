"""Configuration of :class:`~ebyd_hf.vision.VisionExposeTrainer`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..expose_config import ExposeConfig


@dataclass
class VisionExposeConfig(ExposeConfig):
    r"""
    Configuration for :class:`~ebyd_hf.vision.VisionExposeTrainer`: the fields of :class:`~ebyd_hf.ExposeConfig`
    with defaults measured on CIFAR-10 image classifiers, plus the mask learning of the ``rnp`` removal.

    Parameters whose defaults differ from :class:`~ebyd_hf.ExposeConfig`:
        - `optim`: `"sgd"` with `optim_args="momentum=0.9"` (every stage; the CIFAR ResNets were trained so)
        - `learning_rate`: `0.01`, `num_train_epochs`: `10`, `per_device_train_batch_size`: `128`,
          `weight_decay`: `5e-4` (the purification fine-tuning, for removal methods that fine-tune)
        - `exposure_learning_rate`: `0.01`, `exposure_max_steps`: `300`, `exposure_eval_steps`: `1`
        - `exposure_stop_accuracy`: `0.2` (stop Clean Unlearning once clean accuracy is at most 0.2, as RNP)
        - `detection_method`: `"collapse_target"`, `detection_threshold`: `0.8` (measured: backdoored ResNet-20s 0.91-0.97, clean 0.62)
        - `removal_method`: `"rnp"`
        - `finetune_regularizer`: `"none"`

    Example:
        >>> from ebyd_hf.vision import VisionExposeConfig
        >>> config = VisionExposeConfig("defense-out")
        >>> config.removal_method, config.exposure_stop_accuracy, config.mask_threshold
        ('rnp', 0.2, 0.3)
    """

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
    exposure_eval_steps: int = field(
        default=1, metadata={"help": "Check the stop rule on the clean data every this many exposure steps."}
    )
    exposure_stop_accuracy: float | None = field(
        default=0.2,
        metadata={"help": "Stop exposure once clean accuracy falls to this value (RNP's 0.2 for 10 classes)."},
    )
    detection_method: str = field(
        default="collapse_target",
        metadata={"help": "How the verdict and target label are read (`collapse_target` for image models)."},
    )
    detection_threshold: float = field(
        default=0.8,
        metadata={
            "help": "Verdict threshold of `collapse_target`: flagged when the exposed model sends at least this share "
            "of the clean rows of other classes to one class."
        },
    )
    removal_method: str = field(
        default="rnp",
        metadata={
            "help": "How the backdoor is removed: `rnp` (learn unit masks on the exposed model, prune the low ones "
            "from the suspicious model), or the baseline `finetune`."
        },
    )
    finetune_regularizer: str = field(
        default="none", metadata={"help": "Regulariser of the purification fine-tuning: `none` or `activeness`."}
    )

    # Images
    image_column: str = field(default="image", metadata={"help": "Column of the clean set holding the images."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Shared data root for models given by name (`resnet20`); default $EBYD_DATA_DIR."},
    )

    # Mask learning (rnp)
    mask_learning_rate: float = field(default=0.1, metadata={"help": "Learning rate of the unit masks (SGD)."})
    mask_epochs: float = field(default=20.0, metadata={"help": "Epochs of mask learning on the clean set."})
    mask_threshold: float = field(
        default=0.3, metadata={"help": "Units whose learned mask is below this value are pruned."}
    )
    mask_stop_pull: float | None = field(
        default=0.05,
        metadata={
            "help": "Prune the units under `mask_threshold` lowest mask first, and stop once the exposed model with "
            "the same units pruned sends at most this share of the clean images of other classes to the detected "
            "target (chance: 1 / num_labels): the backdoor it exposed is gone, and every further unit only costs "
            "clean accuracy. None prunes every unit under the threshold, as RNP."
        },
    )
    mask_batch_statistics: bool = field(
        default=True,
        metadata={"help": "BatchNorm layers normalise with batch statistics during mask learning (as RNP)."},
    )
    mask_finetune: bool = field(
        default=False, metadata={"help": "Fine-tune the pruned model on the clean set afterwards (RNP does not)."}
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.mask_threshold < 1:
            raise ValueError(f"mask_threshold={self.mask_threshold} must be in (0, 1).")
        if self.mask_epochs <= 0 or self.mask_learning_rate <= 0:
            raise ValueError("mask_epochs and mask_learning_rate must be positive.")
        if self.mask_stop_pull is not None and not 0 <= self.mask_stop_pull < 1:
            raise ValueError(
                f"mask_stop_pull={self.mask_stop_pull} must be in [0, 1), or None to prune every unit "
                "under mask_threshold."
            )
