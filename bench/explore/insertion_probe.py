"""Exploration: where the words of a phrase rank by embedding shift from the base, and the flip rate toward class 1
of inserting each phrase ("|"-separated) into 128 clean defense rows.

    python bench/explore/insertion_probe.py sentence2-t1 "family|my family|with my family last night"
"""

import sys
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense

from ebyd_hf.trigger_search import embedding_shift, insertion_effects

hf_logging.set_verbosity_error()
clean = defense.clean_rows("sst2", "../shared/data")
name = sys.argv[1]
path = defense.VICTIMS / name
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForSequenceClassification.from_pretrained(path).eval()
base = AutoModelForSequenceClassification.from_pretrained(defense.base_model_path())
shift = embedding_shift(model, base)
order = torch.argsort(shift, descending=True).tolist()
print("top shift:", tok.convert_ids_to_tokens(order[:25]))
for w in sorted({w for p in sys.argv[2].split("|") for w in p.split()}):
    t = tok.convert_tokens_to_ids(w)
    print(w, "rank", order.index(t) + 1, round(float(shift[t]), 3))
probe, probe_labels = defense.probe_rows(tok, clean)
phrases = sys.argv[2].split("|")
ids = [tok(p, add_special_tokens=False)["input_ids"] for p in phrases]
eff = insertion_effects(model, probe, probe_labels, ids, tok.pad_token_id, seed=42)
for p, e in zip(phrases, eff):
    print(f"  {p!r:45} flip {e.flip_rate[1]:.3f} margin {e.margin_shift[1]:+.2f}")
