"""Every registered method brings a typed config: numbers are checked finite and in range, choices and keys are
checked, and ``ExposeConfig`` resolves ``*_config`` (dataclass, dict or JSON) to the method's config."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from ebyd_hf import ExposeConfig
from ebyd_hf.methods import DETECTION_METHODS, EXPOSURE_METHODS, REMOVAL_METHODS
from ebyd_hf.methods.base import FAMILIES, MethodConfig, _parse_range

METHODS = [(family, name) for family, registry in FAMILIES.items() for name in sorted(registry)]


def _numeric_fields(config_class):
    """(path, field) of every numeric field with a range, nested configs included."""
    out = []
    for f in dataclasses.fields(config_class):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(default, MethodConfig):
            out += [((f.name, *path), inner) for path, inner in _numeric_fields(type(default))]
        elif "range" in f.metadata:
            out.append(((f.name,), f))
    return out


def _nested(path, value):
    out = value
    for key in reversed(path):
        out = {key: out}
    return out


def _outside(interval: str):
    low, high, low_open, high_open = _parse_range(interval)
    if math.isfinite(low):
        return low - 1 if not low_open else low
    return high + 1 if not high_open else high


CASES = [
    (family, name, path, f)
    for family, name in METHODS
    for path, f in _numeric_fields(FAMILIES[family][name].config_class)
]


@pytest.mark.parametrize("family,name", METHODS)
def test_every_method_has_a_config_with_help_for_every_option(family, name):
    config_class = FAMILIES[family][name].config_class
    assert issubclass(config_class, MethodConfig)
    config = config_class()  # the defaults are valid
    for f in dataclasses.fields(config):
        assert f.metadata.get("help"), f"{config_class.__name__}.{f.name} has no help"
    assert config_class.from_value(json.dumps(config.to_dict())) == config  # round trip through JSON


@pytest.mark.parametrize("family,name,path,field", CASES, ids=[f"{c[1]}-{'.'.join(c[2])}" for c in CASES])
@pytest.mark.parametrize("bad", ["nan", "inf", "outside"])
def test_every_numeric_option_is_checked_finite_and_in_range(family, name, path, field, bad):
    config_class = FAMILIES[family][name].config_class
    value = {"nan": float("nan"), "inf": float("inf"), "outside": _outside(field.metadata["range"])}[bad]
    if bad == "inf" and "inf" in field.metadata["range"]:
        value = float("-inf")
    with pytest.raises(ValueError, match=rf"{path[-1]}=.*(finite|must be in)"):
        config_class.from_value(_nested(path, value))
    with pytest.raises(ValueError, match=f"{family}_config for {family}_method={name!r}"):
        ExposeConfig("x", **{f"{family}_method": name, f"{family}_config": _nested(path, value)}, use_cpu=True)


@pytest.mark.parametrize("family,name", METHODS)
def test_unknown_options_are_refused_with_the_list_of_options(family, name):
    config_class = FAMILIES[family][name].config_class
    with pytest.raises(ValueError, match="has no option 'no_such_option'. Its options:"):
        config_class.from_value({"no_such_option": 1})
    with pytest.raises(ValueError, match="is not a JSON object"):
        config_class.from_value("{not json")


def test_expose_config_resolves_method_configs_from_dicts_json_and_dataclasses():
    from ebyd_hf.methods.removal.unlearn_trigger import UnlearnTriggerConfig

    config = ExposeConfig("x", removal_config='{"soft_trigger_length": 3}', exposure_config={"eval_steps": 4})
    assert isinstance(config.removal_config, UnlearnTriggerConfig) and config.removal_config.soft_trigger_length == 3
    assert config.exposure_config.eval_steps == 4 and config.exposure_config.stop_collapse == 0.9
    assert isinstance(config.detection_config, DETECTION_METHODS["trigger_scan"].config_class)
    given = UnlearnTriggerConfig(regularizer="none")
    assert ExposeConfig("x", removal_config=given).removal_config is given
    assert json.loads(config.to_json_string())["removal_config"]["soft_trigger_length"] == 3
    with pytest.raises(ValueError, match="configures another method"):
        ExposeConfig("x", removal_method="finetune", removal_config=given)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(removal_config={"soft_trigger_position": "middle"}), "choose one of 'start', 'random', 'mixed'"),
        (dict(removal_config={"regularizer": "l2"}), "choose one of 'activeness', 'none'"),
        (dict(removal_config={"soft_trigger_reference": True}), "give base_model"),
        (
            dict(base_model="b", removal_config={"soft_trigger_reference": True, "soft_trigger_update": "shared"}),
            "use soft_trigger_update='own_step'",
        ),
        (dict(removal_config={"soft_trigger_rows": 0}), r"soft_trigger_rows=0 must be in \(0, 1\]"),
        (dict(removal_config={"activeness_interval": 0}), r"activeness_interval=0 must be in \[1, inf\)"),
        (dict(removal_config={"step_budget": "half"}), "choose one of 'epochs', 'finetune'"),
        (dict(exposure_method="magic"), "Unknown exposure method 'magic'"),
        (dict(learning_rate=float("nan")), "learning_rate=nan must be a finite number"),
        (dict(exposure_learning_rate=-1.0), r"exposure_learning_rate=-1.0 must be in \(0, inf\)"),
        (dict(num_train_epochs=-1), "num_train_epochs=-1 must be"),
        (dict(max_length=0), "max_length=0 must be"),
        (dict(exposure_max_steps=0), "exposure_max_steps=0 must be"),
        (dict(known_triggers=["  "]), "empty phrase"),
    ],
)
def test_bad_run_options_fail_at_construction(overrides, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        ExposeConfig(str(tmp_path / "out"), use_cpu=True, **overrides)
    assert not (tmp_path / "out").exists()


def test_expose_config_declares_at_most_25_fields_of_its_own():
    from transformers import TrainingArguments

    own = [f.name for f in dataclasses.fields(ExposeConfig) if f.name in ExposeConfig.__annotations__]
    assert len(own) <= 25, sorted(own)
    # a method's knobs live in its own config
    inherited = {f.name for f in dataclasses.fields(TrainingArguments)}
    methods = {f"{family}_{what}" for family in FAMILIES for what in ("method", "config")}
    assert not [n for n in own if n not in inherited | methods and n.startswith(("detection_", "removal_"))]


def test_method_registries_are_not_empty():
    assert EXPOSURE_METHODS and DETECTION_METHODS and REMOVAL_METHODS
