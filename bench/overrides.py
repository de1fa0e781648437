"""``--set KEY=VALUE`` for the benchmark scripts: config overrides typed by the config class's own parser."""

from __future__ import annotations

from dataclasses import fields

from transformers import HfArgumentParser


def parse_overrides(config_class: type, items: list[str]) -> dict:
    """``KEY=VALUE`` strings as typed values of ``config_class`` (a ``TrainingArguments`` dataclass such as
    ``ExposeConfig``), read by its ``HfArgumentParser``; an unknown key is an error."""
    pairs = [item.split("=", 1) for item in items]
    unknown = sorted({key for key, _ in pairs} - {f.name for f in fields(config_class)})
    if unknown:
        raise SystemExit(f"--set: {config_class.__name__} has no field {', '.join(unknown)}.")
    flags = [part for key, value in pairs for part in (f"--{key}", value)]
    parsed = HfArgumentParser(config_class).parse_args(["--output_dir", "unused", *flags])
    return {key: getattr(parsed, key) for key, _ in pairs}
