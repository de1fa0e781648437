"""The one output-folder guard and the one model loader (``ebyd_hf.files``): resolved paths, nothing created, a
checkpoint's own code never run without the opt-in, and one ``ValueError`` naming the fix for each bad checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import tiny_bert

from ebyd_hf.files import check_output_dir, check_output_file, load_sequence_classifier


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ check_output_dir
def _layout(tmp_path: Path) -> dict[str, Path]:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = tmp_path / "data"
    data.mkdir()
    (data / "clean.csv").write_text("text,label\nfine,1\n")
    link = tmp_path / "link"
    link.symlink_to(model, target_is_directory=True)
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("user's file")
    return {"model": model, "data": data, "link": link, "full": full}


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("model", "is the input"),
        ("link", "is the input"),  # a symlink to the model folder is the model folder
        ("model/purified", "inside the input folder"),
        ("link/purified", "inside the input folder"),
        ("data/out", "inside the input folder"),
        ("data/clean.csv", "the input"),
        ("full", "--overwrite_output_dir"),
        ("full/x.txt", "is a file"),
    ],
)
def test_check_output_dir_refuses_the_users_files(tmp_path, output, message):
    paths = _layout(tmp_path)
    inputs = [str(paths["model"]), str(paths["data"]), str(paths["data"] / "clean.csv"), None, "user/hub-model"]
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=message):
        check_output_dir(tmp_path / output, inputs=inputs)
    assert snapshot(tmp_path) == before


def test_check_output_dir_accepts_a_new_or_allowed_folder_and_creates_nothing(tmp_path):
    paths = _layout(tmp_path)
    inputs = [paths["model"], paths["data"]]
    check_output_dir(tmp_path / "new" / "purified", inputs=inputs)
    assert not (tmp_path / "new").exists()
    check_output_dir(paths["full"], inputs=inputs, overwrite=True)  # the user asked to write into it
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", inputs=inputs)
    with pytest.raises(ValueError, match="is the input"):  # overwrite never opens the input folder
        check_output_dir(paths["link"], inputs=inputs, overwrite=True)


def test_check_output_file_guards_a_report(tmp_path):
    paths = _layout(tmp_path)
    with pytest.raises(ValueError, match="inside the input folder"):
        check_output_file(paths["link"] / "scan.json", inputs=[paths["model"]])
    with pytest.raises(ValueError, match="--overwrite_report"):
        check_output_file(paths["full"] / "x.txt", overwrite_hint="--overwrite_report")
    with pytest.raises(ValueError, match="is a folder"):
        check_output_file(paths["full"])
    check_output_file(paths["full"] / "x.txt", overwrite=True)
    check_output_file(tmp_path / "scan.json", inputs=[paths["model"]])
    assert not (tmp_path / "scan.json").exists()


# ----------------------------------------------------------------------------------------- load_sequence_classifier
def test_loader_returns_the_classifier_and_tokenizer_and_passes_trust_remote_code(tiny_model_dir, monkeypatch):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    seen = {}
    for auto in (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer):
        real = auto.from_pretrained.__func__

        def spy(cls, *args, _real=real, _name=auto.__name__, **kwargs):
            seen[_name] = kwargs.get("trust_remote_code", "missing")
            return _real(cls, *args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", classmethod(spy))
    model, tokenizer = load_sequence_classifier(str(tiny_model_dir), torch_dtype=None)
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.num_labels == 2
    assert tokenizer("a fine film")["input_ids"][0] == tokenizer.cls_token_id
    assert seen == dict.fromkeys(("AutoConfig", "AutoModelForSequenceClassification", "AutoTokenizer"), False)


def _custom_code_folder(tmp_path: Path, marker: Path) -> Path:
    """A checkpoint whose config class, when its code is run, leaves ``marker`` behind."""
    folder = tmp_path / "custom"
    folder.mkdir()
    config = {
        "model_type": "marker-bert",
        "architectures": ["MarkerForSequenceClassification"],
        "auto_map": {
            "AutoConfig": "configuration_marker.MarkerConfig",
            "AutoModelForSequenceClassification": "modeling_marker.MarkerForSequenceClassification",
        },
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_marker.py").write_text(
        f"open({str(marker)!r}, 'w').write('the checkpoint ran its code')\n"
        "from transformers import PretrainedConfig\n\n"
        "class MarkerConfig(PretrainedConfig):\n    model_type = 'marker-bert'\n"
    )
    (folder / "modeling_marker.py").write_text("raise RuntimeError('not a model')\n")
    return folder


def test_custom_code_is_refused_without_opt_in_and_runs_only_with_it(tmp_path):
    marker = tmp_path / "marker.txt"
    folder = _custom_code_folder(tmp_path, marker)
    with pytest.raises(ValueError, match="trust_remote_code=True") as refused:
        load_sequence_classifier(str(folder))
    assert "--trust_remote_code" in str(refused.value) and "\n" not in str(refused.value)
    assert not marker.exists()
    with pytest.raises(ValueError):  # opted in: the code runs (and this one is not a model)
        load_sequence_classifier(str(folder), trust_remote_code=True)
    assert marker.exists()


class _Payload:
    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _bad_checkpoint(kind: str, tmp_path: Path, tokenizer) -> str:
    folder = tmp_path / kind
    if kind in ("garbage", "truncated", "no tokenizer"):
        tiny_bert(tokenizer).save_pretrained(folder)
        weights = folder / "model.safetensors"
        if kind == "garbage":
            weights.write_bytes(b"not a checkpoint at all" * 8)
        elif kind == "truncated":
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif kind in ("bare encoder", "headless classifier"):
        from transformers import BertModel

        BertModel(tiny_bert(tokenizer).config).save_pretrained(folder)
        if kind == "headless classifier":  # a config that claims a head the weights do not hold
            config = json.loads((folder / "config.json").read_text())
            (folder / "config.json").write_text(
                json.dumps({**config, "architectures": ["BertForSequenceClassification"]})
            )
    elif kind in ("pickle payload", "garbage bin"):
        import torch

        tiny_bert(tokenizer).save_pretrained(folder)
        (folder / "model.safetensors").unlink()
        if kind == "pickle payload":  # unpickled, it would create a file beside the folder
            torch.save({"weights": _Payload(tmp_path / "payload-ran")}, folder / "pytorch_model.bin")
        else:
            (folder / "pytorch_model.bin").write_bytes(bytes(range(256)) * 4)
    elif kind == "no weights":
        config = tiny_bert(tokenizer).config
        config.architectures = ["BertForSequenceClassification"]
        config.save_pretrained(folder)
    elif kind == "bad config":
        tiny_bert(tokenizer).save_pretrained(folder)
        (folder / "config.json").write_text('{"model_type": "bert",')
    elif kind == "no config":
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"")
    elif kind == "file":
        folder.write_text("a file, not a folder")
    elif kind == "hub id":
        return "nobody-has-this/ebyd-model"  # HF_HUB_OFFLINE=1 in the tests: not in the cache
    if kind not in ("no tokenizer", "file", "missing"):
        tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "neither a model folder nor a Hub model id \\(no such folder"),
        ("hub id", "neither a model folder nor a Hub model id"),
        ("bad config", "Cannot read .*config.json"),
        ("no weights", "has no weights file"),
        ("pickle payload", "which could run code, so they were not loaded"),
        ("garbage bin", "not a tensor checkpoint torch can read safely"),
        ("headless classifier", "lacks weights for classifier.bias, classifier.weight"),
        ("file", "is a file"),
        ("no config", "has no config.json"),
        ("garbage", "Cannot read the model weights"),
        ("truncated", "Cannot read the model weights"),
        ("bare encoder", "not a sequence classifier"),
        ("no tokenizer", "tokenizer.save_pretrained"),
    ],
)
def test_a_bad_checkpoint_is_one_error_naming_the_fix(kind, message, tmp_path, tokenizer):
    path = _bad_checkpoint(kind, tmp_path, tokenizer)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=message) as error:
        load_sequence_classifier(path)
    assert "\n" not in str(error.value)
    assert snapshot(tmp_path) == before
    assert os.listdir(tmp_path) == ([] if kind in ("missing", "hub id") else [Path(path).name])
