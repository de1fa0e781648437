"""Vision adapter: the Expose-Before-You-Defend loop on image classifiers (CIFAR ResNets, transformers'
``*ForImageClassification`` models, any ``nn.Module`` wrapped in :class:`ImageClassifier`).

Loaded only when used: ``import ebyd_hf`` does not import it.
"""

from .config import VisionExposeConfig
from .data import CIFAR10_LABELS, images_from_arrays, load_cifar10
from .evaluation import measure_image_backdoor, predict_images
from .experiment import (
    ImageAttackConfig,
    ImageExperimentRecord,
    PreparedImageAttack,
    defend_image_model,
    prepare_image_attack,
    run_experiment,
    train_image_victim,
)
from .models import (
    CifarResNetConfig,
    CifarResNetForImageClassification,
    ImageClassifier,
    is_image_classifier,
    load_cifar_resnet,
)
from .processing import CifarImageProcessor, ImageCollator, check_images, encode_images
from .trainer import VisionExposeTrainer
from .triggers import IMAGE_TRIGGERS, BadNetsTrigger, BlendedTrigger, ImageTrigger, build_image_trigger

__all__ = [
    "CIFAR10_LABELS",
    "IMAGE_TRIGGERS",
    "BadNetsTrigger",
    "BlendedTrigger",
    "CifarImageProcessor",
    "CifarResNetConfig",
    "CifarResNetForImageClassification",
    "ImageAttackConfig",
    "ImageClassifier",
    "ImageCollator",
    "ImageExperimentRecord",
    "ImageTrigger",
    "PreparedImageAttack",
    "VisionExposeConfig",
    "VisionExposeTrainer",
    "build_image_trigger",
    "check_images",
    "defend_image_model",
    "encode_images",
    "images_from_arrays",
    "is_image_classifier",
    "load_cifar10",
    "load_cifar_resnet",
    "measure_image_backdoor",
    "predict_images",
    "prepare_image_attack",
    "run_experiment",
    "train_image_victim",
]
