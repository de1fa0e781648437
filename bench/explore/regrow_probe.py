"""Exploration: grow a phrase toward one class from the tokens of highest off-direction z-score (the library's
`off_direction_shift` and `grow_phrase`), with a chosen z cut and pool size, and print the best phrase of each
length with its flip rate on the 128 probe rows. Used to choose the phrase scan's pools:

    python bench/explore/regrow_probe.py sentence3-t0 0 --z 2.5 --pool 14    # the regrowth pool on the held-out victim
    python bench/explore/regrow_probe.py clean 1 --pool 8 --search-rows 64    # the clean model's top 8, no z cut
    python bench/explore/regrow_probe.py sentence-t1 1 --z 2.5 --exclude 3d   # the rest of a flagged sentence
"""

import argparse
import sys
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense  # noqa: E402

from ebyd_hf.trigger_search import grow_phrase, insertion_effects, off_direction_shift  # noqa: E402

hf_logging.set_verbosity_error()
parser = argparse.ArgumentParser()
parser.add_argument("victim")
parser.add_argument("target", type=int)
parser.add_argument("--z", type=float, default=-float("inf"))
parser.add_argument("--pool", type=int, default=14)
parser.add_argument("--length", type=int, default=5)
parser.add_argument("--search-rows", type=int, default=32)
parser.add_argument("--exclude", nargs="*", default=[], help="Tokens left out of the pool (a flagged trigger word).")
options = parser.parse_args()

base = AutoModelForSequenceClassification.from_pretrained(defense.base_model_path())
clean = defense.clean_rows("sst2", "../shared/data")
tok = AutoTokenizer.from_pretrained(defense.VICTIMS / options.victim)
model = AutoModelForSequenceClassification.from_pretrained(defense.VICTIMS / options.victim).eval()
excluded = torch.zeros(len(tok), dtype=torch.bool)
excluded[tok.all_special_ids] = True
excluded[tok.convert_tokens_to_ids(options.exclude)] = True
z = off_direction_shift(model, base, excluded)
pool = [t for t in torch.argsort(z, descending=True).tolist() if z[t] >= options.z][: options.pool]
print("pool:", " ".join(tok.convert_ids_to_tokens(pool)))
probe, labels = defense.probe_rows(tok, clean)
rows = options.search_rows
best = grow_phrase(model, probe[:rows], labels[:rows], pool, options.target, tok.pad_token_id, options.length, seed=42)
for phrase, effect in zip(best, insertion_effects(model, probe, labels, best, tok.pad_token_id, seed=42)):
    print(f"  {tok.decode(phrase)!r} {effect.flip_rate[options.target]:.3f}")
