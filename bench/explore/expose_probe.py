"""Exploration: run exposure on a cached victim and print the curve, CA and ASR of the exposed model."""

import json
import sys
import time

from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hl

from ebyd_hf import ExposeConfig, ExposeTrainer, build_attack_test_set, build_trigger, load_task, measure_backdoor

hl.set_verbosity_error()
name = sys.argv[1]
method = sys.argv[2] if len(sys.argv) > 2 else "clean_unlearning"
lr = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
path = f"bench/.cache/victims/{name}"
rec = json.load(open(f"{path}/attack.json"))
sst2 = load_task("sst2", "../shared/data")
clean = sst2["validation"].shuffle(seed=0).select(range(500))
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForSequenceClassification.from_pretrained(path)
args = ExposeConfig(
    "/tmp/probe",
    exposure_method=method,
    exposure_learning_rate=lr,
    per_device_eval_batch_size=128,
    disable_tqdm=True,
    logging_strategy="no",
)
t = ExposeTrainer(model, args, train_dataset=clean, processing_class=tok)
s = time.time()
res = t.expose()
print("expose s", round(time.time() - s, 1), res.steps, res.stopped_by)
for r in res.trace:
    print({k: round(v, 3) for k, v in r.items()})
test = sst2["test"].shuffle(seed=1).select(range(600))
if rec["trigger"]:
    trig = build_trigger(rec["trigger"], "sst2", "../shared/data")
    att = build_attack_test_set(test, trig, rec["target_label"])
else:
    att = None
res.model.save_pretrained(f"bench/.cache/exposed/{name}-{method}")
print("orig", measure_backdoor(model, tok, test, att, rec["target_label"]))
print("exposed", measure_backdoor(res.model, tok, test, att, rec["target_label"]))
