"""``--set KEY=VALUE`` for the benchmark scripts: config overrides typed by the config class's own parser."""

from __future__ import annotations

from dataclasses import fields

from transformers import HfArgumentParser


def parse_overrides(config_class: type, items: list[str]) -> dict:
    """``KEY=VALUE`` strings as typed values of ``config_class`` (a ``TrainingArguments`` dataclass such as
    ``ExposeConfig``), read by its ``HfArgumentParser``; an unknown key is an error. A key given more than once
    passes all its values, in order, to a list field (``known_triggers=a known_triggers=b``)."""
    pairs = [item.split("=", 1) for item in items]
    unknown = sorted({key for key, _ in pairs} - {f.name for f in fields(config_class)})
    if unknown:
        raise SystemExit(f"--set: {config_class.__name__} has no field {', '.join(unknown)}.")
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    flags = [part for key, given in values.items() for part in (f"--{key}", *given)]
    parsed = HfArgumentParser(config_class).parse_args(["--output_dir", "unused", *flags])
    return {key: getattr(parsed, key) for key in values}
