"""Exploration: grow a phrase, in word order, out of the most-moved tokens (embedding shift from the base) that are
neutral alone, scored on the suspicious model itself. Does it reach a trigger's flip rate on a victim whose
sentence is made of common words, and stay low on a clean model?

The session-11 tries failed in two ways: the joint bag of neutral tokens in shift order (no word order) reached
0.71 on sentence2-t1 against 0.53 on the clean model, and the differential beam over all most-moved tokens drifted
to sentiment words. Here the pool holds only tokens that flip under ``cut`` of the rows alone (toward any class),
so a sentiment word cannot enter, and the beam (append or prepend one pool token) keeps word order.

    python bench/explore/neutral_beam_probe.py sentence2-t1 clean [--pool 40] [--cut 0.2] [--beam 4] [--length 5]
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense  # noqa: E402

from ebyd_hf import load_task  # noqa: E402
from ebyd_hf.trigger_search import embedding_shift, grow_phrase, insertion_effects  # noqa: E402

hf_logging.set_verbosity_error()
parser = argparse.ArgumentParser()
parser.add_argument("victims", nargs="+")
parser.add_argument("--pool", type=int, default=40)
parser.add_argument("--cut", type=float, default=0.2)
parser.add_argument("--beam", type=int, default=4)
parser.add_argument("--length", type=int, default=5)
parser.add_argument("--search-rows", type=int, default=64)
parser.add_argument("--target", type=int, default=None, help="Search toward this class only.")
options = parser.parse_args()

clean = load_task("sst2", "../shared/data")["validation"].shuffle(seed=0).select(range(500))
base = AutoModelForSequenceClassification.from_pretrained(defense.base_model_path())
for name in options.victims:
    start = time.perf_counter()
    path = defense.VICTIMS / name
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    shift = embedding_shift(model, base)
    shift[tok.all_special_ids] = -1
    order = torch.argsort(shift, descending=True).tolist()[: options.pool]
    probe, labels = defense.probe_rows(tok, clean)
    search, search_labels = probe[: options.search_rows], labels[: options.search_rows]
    pad = tok.pad_token_id
    singles = insertion_effects(model, probe, labels, [[t] for t in order], pad, seed=42)
    pool = [t for t, e in zip(order, singles) if e.flip_rate.max() < options.cut]
    print(
        f"{name}: {len(pool)} of {options.pool} neutral (<{options.cut}):", " ".join(tok.convert_ids_to_tokens(pool))
    )
    cache = {}  # phrase -> effect on the search rows, shared by the targets
    for target in [options.target] if options.target is not None else range(model.config.num_labels):
        best = grow_phrase(model, search, search_labels, pool, target, pad, options.length, options.beam, 42, cache)
        for phrase, check in zip(best, insertion_effects(model, probe, labels, best, pad, seed=42)):
            print(
                f"  target {target} length {len(phrase)}: best {' '.join(tok.convert_ids_to_tokens(phrase))!r} "
                f"flip {check.flip_rate[target]:.3f} (search {cache[tuple(phrase)].flip_rate[target]:.3f}) "
                f"margin {check.margin_shift[target]:+.2f}",
                flush=True,
            )
    print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
