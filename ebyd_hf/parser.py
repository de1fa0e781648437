"""``HfArgumentParser`` with ``--config file.yaml`` (as TRL's ``TrlParser``) and a short ``--help``.

The YAML file's values become the parser's defaults, so the command line still wins and every value goes through
the dataclasses; an unknown key, or a value outside an option's choices, is refused with the list of valid ones.
``--help`` shows the script's own options and the defense's (the fields a config declares beyond
``TrainingArguments``, plus the few training options a user sets); ``--help-all`` adds every ``TrainingArguments``
option.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import get_type_hints

from transformers import HfArgumentParser, TrainingArguments

# The TrainingArguments a defense user sets; the other ~110 are listed by --help-all.
SHOWN_TRAINING_FIELDS = ("output_dir", "learning_rate", "num_train_epochs", "per_device_train_batch_size", "seed")


def defense_fields(config_cls: type) -> list[str]:
    """The options of ``config_cls`` (a ``TrainingArguments`` subclass) that ``--help`` shows: the fields it declares
    beyond ``TrainingArguments``, then :data:`SHOWN_TRAINING_FIELDS`."""
    training = {f.name for f in dataclasses.fields(TrainingArguments)}
    names = [f.name for f in dataclasses.fields(config_cls) if f.init]
    return [n for n in names if n not in training] + [n for n in SHOWN_TRAINING_FIELDS if n in names]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--name TYPE`` once (HfArgumentParser also registers ``--name-with-hyphens``; both work), defaults shown."""

    def _format_action_invocation(self, action):
        if not action.option_strings:
            return super()._format_action_invocation(action)
        names = [s for s in action.option_strings if "-" not in s[2:]] or action.option_strings[:1]
        if action.nargs == 0:
            return ", ".join(names)
        return f"{', '.join(names)} {self._format_args(action, self._metavar(action))}"

    def _metavar(self, action) -> str:
        if action.metavar is not None:
            return action.metavar
        if action.choices is not None:
            return "{" + ",".join(map(str, action.choices)) + "}"
        kind = getattr(action.type, "__name__", "")
        return {"string_to_bool": "BOOL", "int": "INT", "float": "FLOAT", "str": "STR"}.get(kind, "VALUE")

    def _get_help_string(self, action):
        if action.default is None or action.default == [] or action.default is False and action.nargs == "?":
            return action.help or ""
        return super()._get_help_string(action)


class _HelpAllAction(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help(full=True)
        parser.exit()


class EbydParser(HfArgumentParser):
    """Parse typed dataclass arguments from the command line and an optional ``--config`` YAML file.

    Args:
        dataclass_types: the dataclasses to fill, script arguments first and the ``TrainingArguments`` subclass
            (``ExposeConfig``) last, as ``HfArgumentParser`` takes them. Each becomes one group of ``--help``,
            titled by its ``_argument_group_name`` or its docstring's first line.
        positional: ``(dest, METAVAR, help)`` of an optional positional argument standing for the option ``dest``
            (``ebyd-hf scan MODEL`` for ``--model_name_or_path``).

    Example:
        >>> from ebyd_hf import ExposeConfig
        >>> from ebyd_hf.pipeline import DefenseArguments
        >>> parser = EbydParser((DefenseArguments, ExposeConfig))
        >>> script_args, config = parser.parse_args_and_config(["--data", "sst2", "--model_name_or_path", "m"])
        >>> script_args.task, config.output_dir
        ('sst2', 'ebyd-defense')
    """

    def __init__(self, dataclass_types, *, positional: tuple[str, str, str] | None = None, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault("usage", "%(prog)s [--config FILE.yaml] [options]")
        self._all_training_options: argparse._ArgumentGroup | None = None
        super().__init__(dataclass_types, **kwargs)
        if positional is not None:
            dest, metavar, help_text = positional
            option = next(a for a in self._actions if a.dest == dest)  # the positional parses as its option does
            self.add_argument(
                dest,
                nargs="?",
                metavar=metavar,
                default=argparse.SUPPRESS,
                help=help_text,
                type=option.type,
                choices=option.choices,
            )
        self.add_argument(
            "--config",
            default=None,
            metavar="FILE.yaml",
            help="YAML file of defaults for any option (the command line wins).",
        )
        if self._all_training_options is not None:
            self.add_argument("--help-all", action=_HelpAllAction, help="Show every option, all TrainingArguments.")

    # ----------------------------------------------------------------------------------------------- building
    def _add_dataclass_arguments(self, dtype):
        """One group per dataclass; a ``TrainingArguments`` subclass shows :func:`defense_fields` in its group and
        puts the rest in a last group that only ``--help-all`` prints."""
        shown = set(defense_fields(dtype)) if issubclass(dtype, TrainingArguments) else None
        title = getattr(dtype, "_argument_group_name", None)
        if title is None and shown is not None:
            title = f"Defense options ({dtype.__name__})"
        group = self.add_argument_group(title or (dtype.__doc__ or dtype.__name__).strip().split("\n")[0].rstrip("."))
        if shown is not None and self._all_training_options is None:
            self._all_training_options = self.add_argument_group(
                "All TrainingArguments (the final fine-tuning; every stage starts from them)"
            )
        hints = get_type_hints(dtype)
        fields = [f for f in dataclasses.fields(dtype) if f.init]
        if shown is not None:  # the defense's options in the order --help lists them
            order = {name: i for i, name in enumerate(defense_fields(dtype))}
            fields.sort(key=lambda f: order.get(f.name, len(order)))
        for field in fields:
            field.type = hints[field.name]
            target = group if shown is None or field.name in shown else self._all_training_options
            self._parse_dataclass_field(target, field)

    def format_help(self, full: bool = False) -> str:
        hidden = self._all_training_options
        if full or hidden is None:
            return super().format_help()
        self._action_groups.remove(hidden)
        try:
            text = super().format_help()
        finally:
            self._action_groups.append(hidden)
        count = len(hidden._group_actions)
        return f"{text.rstrip()}\n\n{count} more TrainingArguments options: --help-all.\n"

    def print_help(self, file=None, full: bool = False):
        (file or sys.stdout).write(self.format_help(full=full))

    # ----------------------------------------------------------------------------------------------- parsing
    def parse_args_and_config(self, args: list[str] | None = None) -> tuple:
        """The dataclasses, filled from ``--config`` (if given: its values become the defaults) and the command
        line, which wins. Refuses unknown command-line options (argparse's exit 2) and unknown YAML keys."""
        args = list(sys.argv[1:] if args is None else args)
        config_path, _ = self._config_option().parse_known_args(args)
        if config_path.config is not None:
            self.set_defaults(**self._read_config(config_path.config))
            for action in self._actions:  # a positional given nowhere must not replace its option's value
                if not action.option_strings:
                    action.default = argparse.SUPPRESS
        *outputs, remaining = self.parse_args_into_dataclasses(args=args, return_remaining_strings=True)
        if remaining:
            self.error(f"unrecognized arguments: {' '.join(remaining)}")
        known = len(self.dataclass_types)
        extra = vars(outputs[known]) if len(outputs) > known else {}
        extra.pop("config", None)
        return tuple(outputs[:known]) + ((argparse.Namespace(**extra),) if extra else ())

    @staticmethod
    def _config_option() -> argparse.ArgumentParser:
        only_config = argparse.ArgumentParser(add_help=False)
        only_config.add_argument("--config", default=None)
        return only_config

    def _read_config(self, path: str) -> dict:
        """The YAML file as ``{dest: value}``, checked against the options before anything else runs."""
        import yaml

        try:
            values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise ValueError(f"--config {path}: cannot read it ({error.strerror or error}).") from error
        except yaml.YAMLError as error:
            raise ValueError(f"--config {path}: not valid YAML ({str(error).splitlines()[0]}).") from error
        if values is None:
            return {}
        if not isinstance(values, dict):
            raise ValueError(f"--config {path}: expected a mapping of option: value, got {type(values).__name__}.")
        actions = {a.dest: a for a in self._actions if a.option_strings and a.dest not in ("help", "config")}
        unknown = sorted(set(values) - set(actions))
        if unknown:
            raise ValueError(
                f"--config {path}: unknown option(s) {', '.join(map(str, unknown))}; every key must be an option of "
                "--help-all (or of --help)."
            )
        for key, value in values.items():
            choices = actions[key].choices
            if choices is not None and value not in choices:
                raise ValueError(f"--config {path}: {key}={value!r} is not one of {', '.join(map(str, choices))}.")
        return values
