"""Exploration: flip rates of candidate tokens alone and inside neutral frames ("this {}", "a {} one", ...), on
cached victims: a token of an inserted sentence gains much from any word beside it, a sentiment word little.

    python bench/explore/context_probe.py sentence-t1 clean
"""

import sys
from pathlib import Path

import numpy as np
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense

from ebyd_hf import load_task
from ebyd_hf.trigger_search import crop_sequences, insertion_effects

hf_logging.set_verbosity_error()
clean = load_task("sst2", "../shared/data")["validation"].shuffle(seed=0).select(range(500))
for name in sys.argv[1:]:
    path = defense.VICTIMS / name
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    enc = tok(list(clean["text"]), truncation=True, max_length=128)["input_ids"]
    labels = np.asarray(clean["label"])
    rng = np.random.default_rng(42)
    rows = rng.choice(len(enc), size=128, replace=False)
    probe = crop_sequences([enc[i] for i in rows], 64, rng)
    words = {1: ["3d", "refreshing", "enduring", "stunning", "solid"], 0: ["stupid", "crap", "hardly", "dumb"]}
    forms = ["{}", "{} {}", "this {}", "the {}", "{} movie", "{} .", "a {} one", "{} , {} , {}"]
    print("==", name)
    for cls, ws in words.items():
        for w in ws:
            phrases = [f.format(w, w, w) for f in forms]
            ids = [tok(p, add_special_tokens=False)["input_ids"] for p in phrases]
            eff = insertion_effects(model, probe, labels[rows], ids, tok.pad_token_id, seed=42)
            print(f" {w:11}", " ".join(f"{p!r}:{e.flip_rate[cls]:.2f}" for p, e in zip(phrases, eff)))
