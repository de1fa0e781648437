import json

import pytest
from conftest import TINY_TRAINING
from safetensors.torch import load_file
from transformers import TrainingArguments

from ebyd_hf import AttackConfig, AttackRecord, train_victim


def _args(output_dir, **overrides):
    return TrainingArguments(str(output_dir), **(TINY_TRAINING | overrides))


@pytest.mark.parametrize("key", ["t1", "t0"])
def test_tiny_victim_learns_the_word_backdoor(tiny_victims, key):
    out, record = tiny_victims[key]
    target = int(key[1])
    assert record.asr >= 0.9 and record.ca >= 0.65, record  # the backdoor, and the clean task too
    assert record.poisoned_rows == 300 and record.train_rows == 3000 and record.ca_rows == 600
    saved = json.loads((out / "attack.json").read_text())
    assert saved["trigger"] == "word" and saved["target_label"] == target and saved["asr"] == record.asr
    assert AttackRecord.from_json(out / "attack.json") == record
    assert "classifier.weight" in load_file(out / "model.safetensors")
    assert (out / "tokenizer.json").exists()


def test_clean_victim_has_no_attack(tiny_victims):
    _, record = tiny_victims["clean"]
    assert record.trigger is None and record.asr is None and record.poisoned_rows == 0 and record.ca >= 0.65


def test_victim_refuses_to_overwrite(tiny_model_dir, tmp_path, data_dir):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    attack = AttackConfig(trigger="word", data_dir=str(data_dir), train_size=100)
    with pytest.raises(ValueError, match="not empty"):
        train_victim(str(tiny_model_dir), attack, _args(busy))
    with pytest.raises(ValueError, match="input model's folder"):
        train_victim(str(tiny_model_dir), attack, _args(tiny_model_dir))
    assert (busy / "keep.txt").read_text() == "mine"


def test_attack_config_validates():
    with pytest.raises(ValueError, match="Unknown trigger 'emoji'"):
        AttackConfig(trigger="emoji")
    with pytest.raises(ValueError, match="Unknown task"):
        AttackConfig(task="yelp")
    with pytest.raises(ValueError, match="needs target_label"):
        AttackConfig(trigger="word", target_label=None)
    with pytest.raises(ValueError, match="not a valid PoisonMode|poisoning mode"):
        AttackConfig(mode="half")
