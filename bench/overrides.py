"""``--set KEY=VALUE`` for the benchmark scripts: overrides of the defense's config, typed by the config's own fields.

``KEY`` is a field of the config class (``seed=1``, ``known_triggers=a``, ``removal_method=finetune``) or an option of
a method's config: a whole ``*_config`` as a JSON object (``'detection_config={"threshold": 0.9}'``), or one option by
a dotted key (``detection_config.threshold=0.9``, ``detection_config.residue.length=0``). The options given for one
``*_config`` are merged, in order, into one dict; a dotted value is typed by the option's field in the config of the
method the run uses. Every run's config is then built once, so an unknown option fails with the method config's own
error (``TriggerScanConfig has no option 'treshold'. Its options: ...``) before anything runs.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterable
from dataclasses import MISSING, fields
from typing import Any, Literal

from transformers import HfArgumentParser

from ebyd_hf.methods import get_method
from ebyd_hf.methods.base import FAMILIES, MethodConfig

METHOD_CONFIGS = {f"{family}_config": family for family in FAMILIES}


def parse_overrides(config_class: type, items: list[str], runs: Iterable[dict] = ({},)) -> dict[str, Any]:
    """``KEY=VALUE`` strings as typed overrides of ``config_class`` (``ExposeConfig`` or a subclass): its own fields
    read by its ``HfArgumentParser`` (a key given more than once passes all its values, in order, to a list field:
    ``known_triggers=a known_triggers=b``), and each method's options as one dict under its ``*_config`` key.

    ``runs``: the settings each run of the script puts under the overrides (a defense's ``removal_method``, say).
    Options are typed against the first run's methods, and the config of every run is built to check them. Any
    mistake exits with a message naming the key."""
    runs = list(runs) or [{}]
    pairs = [_split(item) for item in items]
    own = _own_fields(config_class, [(k, v) for k, v in pairs if k.split(".")[0] not in METHOD_CONFIGS])
    overrides: dict[str, Any] = dict(own)
    settings = {**runs[0], **own}
    for key, text in pairs:
        name, *path = key.split(".")
        if name in METHOD_CONFIGS:
            option_class = _method_config_class(config_class, METHOD_CONFIGS[name], settings)
            _merge_option(overrides.setdefault(name, {}), key, path, text, option_class)
    for run in runs:
        try:
            config_class(output_dir="unused", **{**run, **overrides})
        except ValueError as error:
            raise SystemExit(f"--set: {error}") from None
    return overrides


def _split(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set {item!r}: expected KEY=VALUE.")
    return key, value


def _own_fields(config_class: type, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    unknown = sorted({key for key, _ in pairs} - {f.name for f in fields(config_class)})
    if unknown:
        methods = ", ".join(f"{name}.OPTION" for name in METHOD_CONFIGS)
        raise SystemExit(
            f"--set: {config_class.__name__} has no field {', '.join(unknown)} (a method's option is {methods})."
        )
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    flags = [part for key, given in values.items() for part in (f"--{key}", *given)]
    parsed = HfArgumentParser(config_class).parse_args(["--output_dir", "unused", *flags])
    return {key: getattr(parsed, key) for key in values}


def _method_config_class(config_class: type, family: str, settings: dict) -> type[MethodConfig]:
    name = settings.get(f"{family}_method")
    if name is None:
        default = {f.name: f.default for f in fields(config_class)}[f"{family}_method"]
        name = None if default is MISSING else default
    try:
        return get_method(FAMILIES[family], name, family).config_class
    except ValueError as error:
        raise SystemExit(f"--set: {error}") from None


def _merge_option(target: dict, key: str, path: list[str], text: str, option_class: type | None) -> None:
    """Set ``key``'s value into ``target`` (the dict of one ``*_config``): a JSON object merged at ``path``, or one
    option typed by its field (a list field given again gets the value appended)."""
    if not path:
        _deep_merge(target, _json_object(key, text))
        return
    for i, name in enumerate(path[:-1]):
        hint = _hint(option_class, name)
        if option_class is not None and hint is not None and not _is_config(hint):
            raise SystemExit(f"--set {key}: {option_class.__name__}.{name} is an option, not a nested config.")
        target = target.setdefault(name, {})
        if not isinstance(target, dict):
            raise SystemExit(f"--set {key}: {'.'.join(path[: i + 1])} was given a value, not options.")
        option_class = hint if hint is not None and _is_config(hint) else None
    name = path[-1]
    hint = _hint(option_class, name)
    value = _typed(key, text, hint)
    if isinstance(value, dict) and isinstance(target.get(name), dict):
        _deep_merge(target[name], value)
    elif _is_list(hint) and isinstance(target.get(name), list):
        target[name] = [*target[name], *value]
    else:
        target[name] = value


def _hint(option_class: type | None, name: str):
    """The type of option ``name`` of ``option_class`` (None: no such option, left to the config to refuse)."""
    if option_class is None:
        return None
    return typing.get_type_hints(option_class).get(name) if name in {f.name for f in fields(option_class)} else None


def _is_config(hint) -> bool:
    return isinstance(hint, type) and issubclass(hint, MethodConfig)


def _is_list(hint) -> bool:
    return typing.get_origin(_without_none(hint)) is list


def _without_none(hint):
    """``X`` of ``X | None``; another union as it is (its values get their JSON reading)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _typed(key: str, text: str, hint) -> Any:
    """``text`` as a value of an option of type ``hint``; an option the config does not have gets its JSON reading
    (or the text), for the config to refuse by name."""
    if hint is None:
        return _literal(text)
    optional = type(None) in typing.get_args(hint)
    if optional and text in ("None", "null"):
        return None
    hint = _without_none(hint)
    if _is_config(hint) or typing.get_origin(hint) is dict:
        return _json_object(key, text)
    if typing.get_origin(hint) is list:
        value = _literal(text) if text.lstrip().startswith("[") else [text]
        if not isinstance(value, list):
            raise SystemExit(f"--set {key}={text}: not a JSON list.")
        return value
    if hint is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise SystemExit(f"--set {key}={text}: not a boolean (true or false).")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise SystemExit(f"--set {key}={text}: not {'an integer' if hint is int else 'a number'}.") from None
    if hint is str or typing.get_origin(hint) is Literal:
        return text  # a Literal's choices are checked by the config
    return _literal(text)


def _literal(text: str) -> Any:
    python = {"True": True, "False": False, "None": None}
    if text in python:
        return python[text]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _json_object(key: str, text: str) -> dict:
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as error:
        raise SystemExit(f"--set {key}: {text!r} is not a JSON object ({error.msg}).") from None
    if not isinstance(value, dict):
        raise SystemExit(f"--set {key}: {text!r} is not a JSON object.")
    return value


def _deep_merge(target: dict, new: dict) -> None:
    for name, value in new.items():
        if isinstance(value, dict) and isinstance(target.get(name), dict):
            _deep_merge(target[name], value)
        else:
            target[name] = value
