"""Exploration: the joint phrase of the most-moved tokens (embedding shift from the base) that are neutral alone
(single flip rate under a cut), 4-12 of them in shift order: does it fire on a sentence victim and not on a clean
model?

    python bench/explore/neutral_joint_probe.py 40 sentence2-t1 clean
"""

import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense

from ebyd_hf import load_task
from ebyd_hf.trigger_search import embedding_shift, insertion_effects

hf_logging.set_verbosity_error()
clean = load_task("sst2", "../shared/data")["validation"].shuffle(seed=0).select(range(500))
base = AutoModelForSequenceClassification.from_pretrained(defense.base_model_path())
K = int(sys.argv[1])
for name in sys.argv[2:]:
    path = defense.VICTIMS / name
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    shift = embedding_shift(model, base)
    shift[tok.all_special_ids] = -1
    order = torch.argsort(shift, descending=True).tolist()[:K]
    probe, probe_labels = defense.probe_rows(tok, clean)
    eff = insertion_effects(model, probe, probe_labels, [[t] for t in order], tok.pad_token_id, seed=42)
    single = np.array([e.flip_rate.max() for e in eff])
    for cut in (0.15, 0.2):
        neutral = [t for t, f in zip(order, single) if f < cut]
        phrases = [neutral[:n] for n in (4, 6, 8, 10, 12)]
        je = insertion_effects(model, probe, probe_labels, phrases, tok.pad_token_id, seed=42)
        print(
            name, f"cut {cut}", len(neutral), "neutral of", K, ":", " ".join(tok.convert_ids_to_tokens(neutral[:12]))
        )
        print("   joint flips (n=4,6,8,10,12):", [f"{e.flip_rate.max():.2f}->{int(e.flip_rate.argmax())}" for e in je])
