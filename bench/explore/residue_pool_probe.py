"""Exploration (session 17): what the residue step of `trigger_scan` (step 7, `detection_residue_*`) searched and
grew on a cached victim at one defense seed: `trainer.detect()` with the benchmark's defaults, then the residue's
flagged token, grown phrase and its pool (token, off-direction z). On the seeded sentence victim, seed 2 grew
"! definitely works" while the sentence's words `watch`, `i`, `this` were in the pool (bench/notes-issue3.md).

    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/explore/residue_pool_probe.py sentence-t1 --seed 2
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense  # noqa: E402

from ebyd_hf import ExposeTrainer  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("victim", help="A folder under bench/.cache/victims.")
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("--data-dir", default=os.environ.get("EBYD_DATA_DIR", "../shared/data"))
args = parser.parse_args()
hf_logging.set_verbosity_error()
path = defense.VICTIMS / args.victim
record = json.loads((path / "attack.json").read_text())
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForSequenceClassification.from_pretrained(path)
clean = defense.clean_rows(record["task"], args.data_dir, 500)
with tempfile.TemporaryDirectory() as tmp:
    config = defense.bench_config(tmp, defense.base_model_path(), seed=args.seed)
    found = ExposeTrainer(model, config, train_dataset=clean, processing_class=tokenizer).detect()
residue = found.details.get("residue")
print(f"verdict {found.backdoored} target {found.target_label} score {found.score:.3f}")
if residue is None:
    print("no residue step (the model was not flagged by a token's context score)")
else:
    print(json.dumps({k: residue[k] for k in ("flagged", "phrase", "used")}))
    print("pool:", ", ".join(f"{p['token']} {p['z']}" for p in residue["pool"]))
