"""Defense methods, one file per method, grouped by family (exposure, detection, removal)."""

from .base import (
    DETECTION_METHODS,
    EXPOSURE_METHODS,
    REMOVAL_METHODS,
    DetectionMethod,
    ExposureMethod,
    RemovalMethod,
    get_method,
    register_detection,
    register_exposure,
    register_removal,
)
from .detection import collapse_target, trigger_scan  # noqa: F401
from .exposure import clean_unlearning, confusion, permuted_labels  # noqa: F401  (registration)
from .removal import fine_pruning, finetune, rnp, unlearn_trigger  # noqa: F401

__all__ = [
    "DETECTION_METHODS",
    "EXPOSURE_METHODS",
    "REMOVAL_METHODS",
    "DetectionMethod",
    "ExposureMethod",
    "RemovalMethod",
    "get_method",
    "register_detection",
    "register_exposure",
    "register_removal",
]
