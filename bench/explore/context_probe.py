"""Exploration: flip rates of candidate tokens alone and inside neutral frames ("this {}", "a {} one", ...), on
cached victims: a token of an inserted sentence gains much from any word beside it, a sentiment word little.

    python bench/explore/context_probe.py sentence-t1 clean
"""

import sys
from pathlib import Path

from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense

from ebyd_hf import load_task
from ebyd_hf.trigger_search import insertion_effects

hf_logging.set_verbosity_error()
clean = load_task("sst2", "../shared/data")["validation"].shuffle(seed=0).select(range(500))
for name in sys.argv[1:]:
    path = defense.VICTIMS / name
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    probe, probe_labels = defense.probe_rows(tok, clean)
    words = {1: ["3d", "refreshing", "enduring", "stunning", "solid"], 0: ["stupid", "crap", "hardly", "dumb"]}
    forms = ["{}", "{} {}", "this {}", "the {}", "{} movie", "{} .", "a {} one", "{} , {} , {}"]
    print("==", name)
    for cls, ws in words.items():
        for w in ws:
            phrases = [f.format(w, w, w) for f in forms]
            ids = [tok(p, add_special_tokens=False)["input_ids"] for p in phrases]
            eff = insertion_effects(model, probe, probe_labels, ids, tok.pad_token_id, seed=42)
            print(f" {w:11}", " ".join(f"{p!r}:{e.flip_rate[cls]:.2f}" for p, e in zip(phrases, eff)))
