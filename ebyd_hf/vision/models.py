"""Image classifiers the defense accepts, all with one interface: ``model(pixel_values=..., labels=...)`` returns
an object with ``.loss`` and ``.logits``, and ``model.config.num_labels`` says how many classes there are.

- :class:`CifarResNetForImageClassification`: He et al.'s CIFAR ResNet (ResNet-20/32/44/56/110, option-A
  shortcuts) as a ``PreTrainedModel``; :func:`load_cifar_resnet` reads the plain state dicts in
  ``<data_dir>/models/cifar-resnet/<name>.safetensors``.
- transformers' own ``*ForImageClassification`` models (``ResNetForImageClassification``,
  ``ViTForImageClassification``...) are used as they are.
- :class:`ImageClassifier` wraps any ``nn.Module`` that maps ``(batch, 3, H, W)`` tensors to logits.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from .data import CIFAR10_LABELS, resolve_data_dir

CIFAR_RESNET_DEPTHS = (20, 32, 44, 56, 110)


class CifarResNetConfig(PretrainedConfig):
    """Configuration of :class:`CifarResNetForImageClassification`.

    Args:
        depth: 6n+2 layers; n BasicBlocks per stage (20 -> 3, 56 -> 9; 8 -> 1 for tiny test models).
        widths: channels of the three stages.
        num_labels, id2label, label2id: as any ``PretrainedConfig`` (default: the 10 CIFAR-10 classes).

    Example:
        >>> from ebyd_hf.vision import CifarResNetConfig
        >>> CifarResNetConfig(depth=20).blocks_per_stage
        3
    """

    model_type = "cifar-resnet"

    def __init__(self, depth: int = 20, widths: tuple[int, int, int] = (16, 32, 64), **kwargs):
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth={depth} is not a CIFAR ResNet depth (6n+2, e.g. {CIFAR_RESNET_DEPTHS}).")
        self.depth = depth
        self.widths = list(widths)
        if "id2label" not in kwargs and kwargs.get("num_labels", 10) == 10:
            kwargs["id2label"] = dict(enumerate(CIFAR10_LABELS))
            kwargs["label2id"] = {name: i for i, name in enumerate(CIFAR10_LABELS)}
        super().__init__(**kwargs)

    @property
    def blocks_per_stage(self) -> int:
        return (self.depth - 2) // 6


class _OptionAShortcut(nn.Module):
    """Parameter-free shortcut when the shape changes: subsample by 2 and zero-pad the new channels."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _OptionAShortcut(planes) if stride != 1 or in_planes != planes else nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """The backbone; parameter names match the published state dicts (``conv1``, ``bn1``, ``layer1..3``,
    ``linear``)."""

    def __init__(self, depth: int, widths, num_labels: int):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        for stage, (planes, stride) in enumerate(zip(widths, (1, 2, 2)), start=1):
            blocks = []
            for i in range(n):
                blocks.append(_BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
        self.linear = nn.Linear(widths[-1], num_labels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class CifarResNetForImageClassification(PreTrainedModel):
    """A CIFAR ResNet as a transformers model: ``save_pretrained`` / ``from_pretrained`` work, and the ``Trainer``
    treats it like any ``*ForImageClassification``.

    Example:
        >>> import torch
        >>> from ebyd_hf.vision import CifarResNetConfig, CifarResNetForImageClassification
        >>> model = CifarResNetForImageClassification(CifarResNetConfig(depth=20))
        >>> out = model(pixel_values=torch.zeros(2, 3, 32, 32), labels=torch.tensor([0, 1]))
        >>> tuple(out.logits.shape), out.loss.dim()
        ((2, 10), 0)
    """

    config_class = CifarResNetConfig
    base_model_prefix = "resnet"
    main_input_name = "pixel_values"

    def __init__(self, config: CifarResNetConfig):
        super().__init__(config)
        self.resnet = CifarResNet(config.depth, config.widths, config.num_labels)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs):
        logits = self.resnet(pixel_values)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


def load_cifar_resnet(
    name: str = "resnet20", data_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None
) -> CifarResNetForImageClassification:
    """A pretrained CIFAR-10 ResNet from a plain state dict in safetensors (``path``, or
    ``<data_dir>/models/cifar-resnet/<name>.safetensors`` with ``data_dir`` defaulting to ``$EBYD_DATA_DIR``).

    Example:
        >>> from ebyd_hf.vision import load_cifar_resnet
        >>> model = load_cifar_resnet("resnet20", "../shared/data")  # doctest: +SKIP
        >>> model.config.depth, model.num_parameters()  # doctest: +SKIP
        (20, 272474)
    """
    from safetensors.torch import load_file

    if not name.startswith("resnet") or not name[6:].isdigit() or int(name[6:]) not in CIFAR_RESNET_DEPTHS:
        raise ValueError(
            f"name={name!r} is not a CIFAR ResNet; use one of {[f'resnet{d}' for d in CIFAR_RESNET_DEPTHS]}."
        )
    if path is None:
        path = resolve_data_dir(data_dir) / "models" / "cifar-resnet" / f"{name}.safetensors"
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path} is not a .safetensors file; only safetensors state dicts are loaded (no pickle).")
    if not path.is_file():
        raise FileNotFoundError(
            f"No weights at {path}. Put {name}.safetensors in <data_dir>/models/cifar-resnet/ (data_dir= or "
            "$EBYD_DATA_DIR), or pass path=."
        )
    state = {k.removeprefix("module."): v for k, v in load_file(str(path)).items()}
    num_labels = state["linear.weight"].shape[0]
    model = CifarResNetForImageClassification(
        CifarResNetConfig(depth=int(name[6:]), num_labels=num_labels, name_or_path=name)
    )
    missing, unexpected = model.resnet.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path} does not match a CIFAR {name}: missing {missing[:5]}, unexpected {unexpected[:5]}.")
    return model.eval()


class ImageClassifier(nn.Module):
    """Wrap any ``nn.Module`` that maps ``(batch, 3, H, W)`` pixel tensors to logits so that the ``Trainer`` and
    :class:`~ebyd_hf.vision.VisionExposeTrainer` can use it: ``forward(pixel_values, labels)`` returns ``.loss``
    and ``.logits``, and ``config`` carries ``num_labels`` / ``id2label``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from ebyd_hf.vision import ImageClassifier
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
        >>> model = ImageClassifier(net, num_labels=10)
        >>> model(pixel_values=torch.zeros(4, 3, 32, 32)).logits.shape
        torch.Size([4, 10])
    """

    main_input_name = "pixel_values"

    def __init__(self, module: nn.Module, num_labels: int, id2label: dict[int, str] | None = None, name: str = ""):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise ValueError(f"ImageClassifier wraps an nn.Module, got {type(module).__name__}.")
        if num_labels < 2:
            raise ValueError(f"num_labels={num_labels}: a classifier needs at least two classes.")
        self.module = module
        self.config = PretrainedConfig(
            num_labels=num_labels,
            id2label=id2label or {i: str(i) for i in range(num_labels)},
            name_or_path=name or type(module).__name__,
        )

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None):
        logits = self.module(pixel_values)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[-1] != self.config.num_labels:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(
                f"The wrapped module returned {shape}; expected logits of shape (batch, {self.config.num_labels}). "
                "Wrap a module that returns class logits, or set num_labels to its output size."
            )
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


def is_image_classifier(model) -> bool:
    """A transformers ``*ForImageClassification``, a CIFAR ResNet, or an :class:`ImageClassifier`."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    if isinstance(model, (ImageClassifier, CifarResNetForImageClassification)):
        return True
    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        return False
    name = type(model).__name__
    return name in set(MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES.values()) or name.endswith(
        "ForImageClassification"
    )


def _register_auto_classes() -> None:
    """Let ``AutoConfig`` / ``AutoModelForImageClassification`` load saved CIFAR ResNets."""
    from transformers import AutoConfig, AutoModelForImageClassification

    try:
        AutoConfig.register(CifarResNetConfig.model_type, CifarResNetConfig)
        AutoModelForImageClassification.register(CifarResNetConfig, CifarResNetForImageClassification)
    except ValueError:  # registered already (module reloaded)
        pass


_register_auto_classes()
