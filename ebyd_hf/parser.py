"""``HfArgumentParser`` with ``--config file.yaml``: the YAML gives defaults, the command line wins."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from transformers import HfArgumentParser


class EbydParser(HfArgumentParser):
    """Parse typed dataclass arguments from the command line and an optional YAML config.

    Example:
        >>> from ebyd_hf import ExposeConfig
        >>> from ebyd_hf.pipeline import DefenseArguments
        >>> parser = EbydParser((DefenseArguments, ExposeConfig))
        >>> script_args, config = parser.parse_args_and_config(["--task", "sst2", "--output_dir", "out"])
        >>> script_args.task, config.output_dir
        ('sst2', 'out')
    """

    def __init__(self, dataclass_types, **kwargs):
        super().__init__(dataclass_types, **kwargs)
        self.add_argument(
            "--config",
            default=None,
            metavar="FILE.yaml",
            help="YAML file of default values for any option below; options given on the command line win.",
        )

    def parse_args_and_config(self, args: list[str] | None = None) -> tuple:
        """The dataclasses, filled from ``--config`` (if given) and then the command line."""
        args = list(sys.argv[1:] if args is None else args)
        config_path = None
        for i, arg in enumerate(args):
            if arg == "--config" and i + 1 < len(args):
                config_path = args[i + 1]
            elif arg.startswith("--config="):
                config_path = arg.split("=", 1)[1]
        if config_path is not None:
            self.set_defaults(**self._read_config(config_path))
        outputs = self.parse_args_into_dataclasses(args=args, return_remaining_strings=True)
        *dataclass_outputs, remaining = outputs
        if remaining:
            self.error(f"unrecognized arguments: {' '.join(remaining)}")
        # parse_args_into_dataclasses returns what no dataclass took (--config, positionals a caller added) as one
        # namespace after the dataclasses; keep it only when it holds more than --config.
        known = len(self.dataclass_types)
        extra = dataclass_outputs[known:]
        if extra:
            vars(extra[0]).pop("config", None)
            if not vars(extra[0]):
                extra = []
        return tuple(dataclass_outputs[:known]) + tuple(extra)

    def _read_config(self, path: str) -> dict:
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
        fields = {f.name for dtype in self.dataclass_types for f in dataclasses.fields(dtype) if f.init}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"--config {path}: unknown option(s) {', '.join(unknown)}; see --help for the options.")
        return values
