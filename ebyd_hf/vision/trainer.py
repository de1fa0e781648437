"""``VisionExposeTrainer``: the :class:`~ebyd_hf.ExposeTrainer` defense for image classifiers.

Only the modality hooks differ from text: how a model named by a string is loaded, which models are accepted,
how the clean set becomes model inputs (Pillow images -> normalised ``pixel_values``) and how it is collated.
Stages, stop rules, reports and methods are the same code.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from datasets import ClassLabel, Dataset

from ..expose_trainer import ExposeTrainer
from .config import VisionExposeConfig
from .models import CifarResNetForImageClassification, ImageClassifier, is_image_classifier, load_cifar_resnet
from .processing import CifarImageProcessor, ImageCollator, encode_images


class VisionExposeTrainer(ExposeTrainer):
    """Expose, detect and remove backdoors in an image classifier with a few hundred clean images.

    Args:
        model: a CIFAR ResNet (``load_cifar_resnet`` or the name ``"resnet20"`` / ``"resnet56"``), a transformers
            ``*ForImageClassification`` (object, Hub id or folder), or any ``nn.Module`` wrapped in
            :class:`~ebyd_hf.vision.ImageClassifier`. It is copied: the object you pass is never modified.
        args: a :class:`VisionExposeConfig` (default: ``VisionExposeConfig("<model>-ebyd")``).
        train_dataset: the clean defense set: ``image`` (Pillow RGB images) and ``label`` columns, or already
            preprocessed ``pixel_values``.
        processing_class: the image processor (default: :class:`CifarImageProcessor` for CIFAR ResNets, the
            checkpoint's ``AutoImageProcessor`` for models given by name).

    Example:
        >>> from ebyd_hf.vision import VisionExposeConfig, VisionExposeTrainer, load_cifar10, load_cifar_resnet
        >>> clean = load_cifar10("../shared/data")["train"].shuffle(seed=0).select(range(500))
        >>> trainer = VisionExposeTrainer(load_cifar_resnet("resnet20", "../shared/data"),
        ...                               args=VisionExposeConfig("purified", use_cpu=True), train_dataset=clean)
        >>> trainer.train()  # doctest: +SKIP
        >>> trainer.report.verdict  # a clean pretrained model  # doctest: +SKIP
        'clean'
    """

    modality: ClassVar[str] = "image"

    def __init__(
        self,
        model,
        args: VisionExposeConfig | None = None,
        data_collator=None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        processing_class=None,
        compute_metrics=None,
        callbacks=None,
        optimizers: tuple = (None, None),
        preprocess_logits_for_metrics=None,
        peft_config=None,
    ):
        if args is None:
            name = model if isinstance(model, str) else getattr(getattr(model, "config", None), "_name_or_path", "")
            args = VisionExposeConfig(f"{str(name or 'model').rstrip('/').split('/')[-1]}-ebyd")
        elif not isinstance(args, VisionExposeConfig):
            raise ValueError(
                f"args must be a VisionExposeConfig, got {type(args).__name__}. Build one with "
                "VisionExposeConfig(output_dir, ...): its defaults are set for image classifiers."
            )
        if isinstance(model, torch.nn.Module) and not is_image_classifier(model):
            raise ValueError(
                f"{type(model).__name__} is not an image classifier VisionExposeTrainer knows. Wrap it: "
                "ImageClassifier(module, num_labels=...) (forward(pixel_values) -> logits), or use a transformers "
                "*ForImageClassification model."
            )
        self._image_column = args.image_column
        if processing_class is None and isinstance(model, CifarResNetForImageClassification):
            processing_class = CifarImageProcessor()
        super().__init__(
            model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
            peft_config=peft_config,
        )

    # ------------------------------------------------------------------------------------ modality hooks
    def _load_model(self, name: str, processing_class, args: VisionExposeConfig) -> tuple[torch.nn.Module, Any]:
        if name.startswith("resnet") and name[6:].isdigit():
            model = load_cifar_resnet(name, args.data_dir)
            return model, processing_class if processing_class is not None else CifarImageProcessor()
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        trust = args.trust_remote_code
        model = AutoModelForImageClassification.from_pretrained(
            name, trust_remote_code=trust, **(args.model_init_kwargs or {})
        )
        if processing_class is None:
            processing_class = AutoImageProcessor.from_pretrained(name, trust_remote_code=trust)
        return model, processing_class

    def _check_model(self, model) -> None:
        if not is_image_classifier(model):
            raise ValueError(
                f"VisionExposeTrainer defends image classifiers; got {type(model).__name__}. Use a transformers "
                "*ForImageClassification model, a CIFAR ResNet, or wrap any nn.Module in ImageClassifier."
            )

    def _default_collator(self, processing_class):
        return ImageCollator(processing_class, image_column=self._image_column)

    def _prepare_dataset(self, dataset: Dataset, processor, args: VisionExposeConfig, what: str) -> Dataset:
        label = dataset.features.get("label") if isinstance(dataset, Dataset) else None
        if isinstance(label, ClassLabel) and label.num_classes != self.num_labels:
            raise ValueError(
                f"{what} has {label.num_classes} classes ({', '.join(label.names[:5])}...) but the model has "
                f"{self.num_labels} labels. Give the model a head with {label.num_classes} labels, or map the "
                "dataset's labels to the model's."
            )
        return super()._prepare_dataset(dataset, processor, args, what)

    def _encode_dataset(self, dataset: Dataset, processor, args: VisionExposeConfig, what: str) -> Dataset:
        if "pixel_values" in dataset.column_names:
            return dataset.select_columns(["pixel_values", "label"]).with_format("torch")
        return encode_images(dataset, processor, args.image_column, "label", what)

    def _probe_order(self, train_dataset: Dataset) -> Dataset:
        return train_dataset  # images need no padding: any order batches equally well


__all__ = ["ImageClassifier", "VisionExposeTrainer"]
