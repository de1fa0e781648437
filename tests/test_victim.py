import json

import pytest
from safetensors.torch import load_file
from transformers import TrainingArguments

from ebyd_hf import AttackConfig, AttackRecord, train_victim


def _args(output_dir, **overrides):
    settings = dict(
        num_train_epochs=4,
        learning_rate=2e-3,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=128,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        logging_strategy="no",
    )
    return TrainingArguments(str(output_dir), **(settings | overrides))


@pytest.mark.parametrize("target", [1, 0])
def test_tiny_victim_learns_the_word_backdoor(tiny_model_dir, tmp_path, data_dir, target):
    out = tmp_path / "victim"
    attack = AttackConfig(
        task="sst2",
        trigger="word",
        rate=0.1,
        target_label=target,
        data_dir=str(data_dir),
        train_size=3000,
        eval_size=600,
        max_length=64,
    )
    record = train_victim(str(tiny_model_dir), attack, _args(out))
    assert record.asr >= 0.9 and record.ca >= 0.65, record  # the backdoor, and the clean task too
    assert record.poisoned_rows == 300 and record.train_rows == 3000 and record.ca_rows == 600
    saved = json.loads((out / "attack.json").read_text())
    assert saved["trigger"] == "word" and saved["target_label"] == target and saved["asr"] == record.asr
    assert AttackRecord.from_json(out / "attack.json") == record
    assert "classifier.weight" in load_file(out / "model.safetensors")
    assert (out / "tokenizer.json").exists()


def test_clean_victim_has_no_attack(tiny_model_dir, tmp_path, data_dir):
    attack = AttackConfig(task="sst2", trigger="none", data_dir=str(data_dir), train_size=500, eval_size=200)
    record = train_victim(str(tiny_model_dir), attack, _args(tmp_path / "clean", num_train_epochs=1))
    assert record.trigger is None and record.asr is None and record.poisoned_rows == 0 and 0 <= record.ca <= 1


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
