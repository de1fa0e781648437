"""The user's files: the one guard every write path goes through, and the one loader of suspicious text models.

A defended model is untrusted and the folders around it belong to the user. :func:`check_output_dir` refuses to
write into an input folder or over existing files; :func:`load_sequence_classifier` never runs a checkpoint's own
code unless asked to, and turns every way a checkpoint can be unusable into one ``ValueError`` that names the fix.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["check_checkpoint", "check_output_dir", "check_output_file", "load_sequence_classifier"]

TRUST_HINT = "pass trust_remote_code=True (--trust_remote_code on the command line) if you trust this code"


def check_output_dir(
    output_dir: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (), overwrite: bool = False
) -> None:
    """Refuse an output folder that would touch the user's files; never creates anything.

    Paths are compared resolved (``os.path.realpath``: symlinks followed), so a link to the model folder is the
    model folder. Refused: the output being one of ``inputs`` (the model folder, the data folder; entries that are
    ``None`` or not on disk, such as Hub ids, are skipped) or a folder inside one, an existing file, and an existing
    non-empty folder unless ``overwrite=True``.

    Example:
        >>> import tempfile
        >>> model = tempfile.mkdtemp()
        >>> check_output_dir(os.path.join(model, "..", "purified"), inputs=[model])  # a new folder beside it: fine
        >>> check_output_dir(model, inputs=[model])
        Traceback (most recent call last):
        ...
        ValueError: output_dir=... is the input ...; choose a new one so the input stays untouched.
    """
    out = os.path.realpath(output_dir)
    _refuse_inputs(out, f"output_dir={str(output_dir)!r}", inputs)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"output_dir={str(output_dir)!r} is a file; choose a folder.")
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise ValueError(
            f"output_dir={str(output_dir)!r} exists and is not empty; choose a new folder or pass "
            "overwrite_output_dir=True (--overwrite_output_dir)."
        )


def check_output_file(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    overwrite_hint: str = "overwrite=True",
):
    """:func:`check_output_dir` for one file (a report): refused inside an input folder, as an input itself, as a
    folder, and over an existing file unless ``overwrite=True`` (``overwrite_hint`` says how the caller's user
    asks for that). Creates nothing."""
    out = os.path.realpath(path)
    _refuse_inputs(out, str(path), inputs)
    if os.path.isdir(out):
        raise ValueError(f"{str(path)!r} is a folder; give a file name.")
    if os.path.exists(out) and not overwrite:
        raise ValueError(f"{str(path)!r} exists; choose another file name or pass {overwrite_hint}.")


def _refuse_inputs(out: str, what: str, inputs: Iterable[str | os.PathLike | None]) -> None:
    for given in inputs:
        if given is None or not os.path.exists(given):
            continue
        source = os.path.realpath(given)
        if out == source:
            raise ValueError(f"{what} is the input {str(given)!r}; choose a new one so the input stays untouched.")
        if os.path.isdir(source) and os.path.commonpath([out, source]) == source:
            raise ValueError(
                f"{what} is inside the input folder {str(given)!r}; choose a place outside it so the input files "
                "stay untouched."
            )


def check_checkpoint(name_or_path: str | os.PathLike, *, trust_remote_code: bool = False) -> dict[str, Any]:
    """Read a checkpoint's ``config.json`` as a plain dict, running none of its code, and refuse what cannot be
    loaded safely: a path that is neither a folder nor a Hub id (an error naming the path), a folder without
    ``config.json``, and custom code (``auto_map``) without ``trust_remote_code=True`` (the error names the opt-in).

    Example:
        >>> check_checkpoint("path/to/suspicious-model")["architectures"]  # doctest: +SKIP
        ['BertForSequenceClassification']
    """
    name = str(name_or_path)
    config_dict = _config_dict(name)
    if config_dict.get("auto_map") and not trust_remote_code:
        raise ValueError(
            f"{name!r} ships its own code (auto_map: {', '.join(sorted(config_dict['auto_map']))}), which is not run "
            f"by default; {TRUST_HINT}."
        )
    return config_dict


def load_tokenizer(name: str, trust_remote_code: bool = False, fix: str = "save it beside the model"):
    """``AutoTokenizer.from_pretrained(name)``, or one ``ValueError`` that names ``fix`` (and how to save one)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(
            f"Cannot load a tokenizer from {name!r} ({_first_line(error)}); {fix} with "
            "tokenizer.save_pretrained(folder)."
        ) from error


def load_sequence_classifier(name_or_path: str, *, trust_remote_code: bool = False, **kwargs: Any):
    """Load a suspicious sequence classifier and its tokenizer, as ``(model, tokenizer)``.

    ``trust_remote_code`` is passed explicitly to every ``from_pretrained``, so a checkpoint's own code never runs
    (and transformers never asks) unless the caller opts in; ``kwargs`` go to
    ``AutoModelForSequenceClassification.from_pretrained`` (``ExposeConfig.model_init_kwargs``). Each unusable
    checkpoint is one ``ValueError`` naming the fix: a path that is neither a folder nor a Hub id reachable now,
    a folder without ``config.json``, custom code (``auto_map``) without the opt-in, a checkpoint without a
    sequence-classification head (a bare encoder would get a random one, as would a classifier whose head
    weights are missing), a missing or unreadable weights file, a missing tokenizer.

    Example:
        >>> model, tokenizer = load_sequence_classifier("path/to/suspicious-model")  # doctest: +SKIP
    """
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoModelForSequenceClassification

    name = str(name_or_path)
    config_dict = check_checkpoint(name, trust_remote_code=trust_remote_code)
    architectures = config_dict.get("architectures") or []
    if not any(str(arch).endswith("ForSequenceClassification") for arch in architectures):
        raise ValueError(
            f"{name!r} is not a sequence classifier (architectures: {', '.join(architectures) or 'none'}), so its "
            "classification head would be random; give a checkpoint saved from an AutoModelForSequenceClassification."
        )
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"Cannot read the config of {name!r} ({_first_line(error)}); save the model again."
        ) from error
    try:
        model, loading = AutoModelForSequenceClassification.from_pretrained(
            name, config=config, trust_remote_code=trust_remote_code, output_loading_info=True, **kwargs
        )
    except TypeError as error:
        raise ValueError(f"model_init_kwargs {sorted(kwargs)} were refused: {_first_line(error)}") from error
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError) as error:
        raise ValueError(_weights_error(name, error, kwargs)) from error
    missing = sorted(loading.get("missing_keys") or ()) + sorted(loading.get("mismatched_keys") or (), key=str)
    if missing:
        raise ValueError(
            f"{name!r} lacks weights for {', '.join(map(str, missing[:3]))}{' ...' if len(missing) > 3 else ''}, "
            "which would start random; give the complete classifier, saved with save_pretrained."
        )
    tokenizer = load_tokenizer(name, trust_remote_code, "save the model's tokenizer beside it")
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):  # transformers builds an empty one silently
        raise ValueError(
            f"{name!r} has no tokenizer files (the tokenizer built from it knows only special tokens); save the "
            "model's tokenizer beside it with tokenizer.save_pretrained(folder)."
        )
    return model, tokenizer


def _weights_error(name: str, error: BaseException, kwargs: dict[str, Any]) -> str:
    """The one line for a checkpoint whose weights do not load: no weights file, weights that do not fit the
    config (``model_init_kwargs`` such as ``num_labels``), or a file that is not a readable checkpoint."""
    text = _first_line(error)
    global_name = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    if global_name:  # torch's weights_only loading refused what a pickle would have run
        return (
            f"The weights in {name!r} are a pickle that calls {global_name.group(1)} when loaded, which could run "
            "code, so they were not loaded; ask for the model as model.safetensors (convert it yourself only if you "
            "trust its source)."
        )
    if isinstance(error, OSError) and "no file named" in text:
        return (
            f"{name!r} has no weights file (model.safetensors); save the model with save_pretrained, or download "
            "it again."
        )
    if "mismatch" in str(error).lower():
        given = f" (model_init_kwargs {sorted(kwargs)})" if kwargs else ""
        return (
            f"The weights in {name!r} do not fit its config{given}: {text}; drop the options that change the "
            "model's shape, such as num_labels."
        )
    if "weights only load failed" in text.lower():  # torch's advice there is to load it unsafely: not repeated
        text = "not a tensor checkpoint torch can read safely"
    return (
        f"Cannot read the model weights in {name!r} ({text}); the file is truncated or not a checkpoint: save the "
        "model again with save_pretrained, or download it again."
    )


def _config_dict(name: str) -> dict[str, Any]:
    """``config.json`` as a plain dict (no model code runs), or a ``ValueError`` naming what to give instead."""
    from transformers import PretrainedConfig

    if os.path.isdir(name) and not os.path.isfile(os.path.join(name, "config.json")):
        raise ValueError(
            f"{name!r} has no config.json; give the folder a model was saved to with save_pretrained, or a Hub id."
        )
    if os.path.isfile(name):
        raise ValueError(f"{name!r} is a file; give the folder the model was saved to (save_pretrained) or a Hub id.")
    if not os.path.exists(name) and not _is_repo_id(name):
        raise ValueError(
            f"{name!r} is neither a model folder nor a Hub model id (no such folder, and a Hub id looks like "
            "'user/model'); give the folder the model was saved to (save_pretrained) or a Hub id."
        )
    try:
        values, _ = PretrainedConfig.get_config_dict(name)
    except (OSError, ValueError) as error:
        if os.path.isdir(name):
            raise ValueError(
                f"Cannot read {os.path.join(name, 'config.json')} ({_first_line(error)}); save the model again with "
                "save_pretrained."
            ) from error
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
        where = " (offline: only Hub models already in the local cache)" if offline else ""
        raise ValueError(
            f"{name!r} is neither a model folder nor a Hub model id that can be loaded{where}; give the folder the "
            f"model was saved to (save_pretrained) or a Hub id such as 'user/model'. ({_first_line(error)})"
        ) from error
    return values


def _is_repo_id(name: str) -> bool:
    """Whether ``name`` has the form of a Hub repository id (``model`` or ``user/model``), not of a path."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _first_line(error: BaseException) -> str:
    """The first line of an error's message, without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__
