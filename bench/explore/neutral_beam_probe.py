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
from ebyd_hf.trigger_search import embedding_shift, insertion_effects  # noqa: E402

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
        frontier = [[t] for t in pool]
        best = None
        for length in range(2, options.length + 1):
            cands = {tuple(p[:i] + [t] + p[i:]) for p in frontier for t in pool for i in (0, len(p)) if t not in p}
            cands = [list(c) for c in cands]
            new = [c for c in cands if tuple(c) not in cache]
            for c, e in zip(new, insertion_effects(model, search, search_labels, new, pad, seed=42) if new else []):
                cache[tuple(c)] = e
            effects = [cache[tuple(c)] for c in cands]
            ranked = sorted(zip(cands, effects), key=lambda x: -x[1].margin_shift[target])
            frontier = [p for p, _ in ranked[: options.beam]]
            (check,) = insertion_effects(model, probe, labels, [frontier[0]], pad, seed=42)
            text = " ".join(tok.convert_ids_to_tokens(frontier[0]))
            print(
                f"  target {target} length {length}: {len(cands)} cands; best {text!r} "
                f"flip {check.flip_rate[target]:.3f} (search {ranked[0][1].flip_rate[target]:.3f}) "
                f"margin {check.margin_shift[target]:+.2f}",
                flush=True,
            )
            best = max(best or 0.0, check.flip_rate[target])
        print(f"  target {target}: best flip {best:.3f}")
    print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
