"""Exploration (session 14): the phrase scan's regrowth pool lacks a trigger sentence's common words (`my`, `about`,
`it` of "My friend told me about it yesterday"; `here`, `is`, `what`, `you`, `to` of "Here is what you need to
know"): their embedding shift follows the task's directions, so their off-direction z-score stays low. Does
growing the regrown phrase further, one token at any position, from the pool plus the clean data's most frequent
tokens that are not clean features, recover the rest of the sentence?

    python bench/explore/frequent_growth_probe.py sentence3-t0 0
    python bench/explore/frequent_growth_probe.py sentence-t1 1 --exclude 3d
    python bench/explore/frequent_growth_probe.py agnews-sentence4-t2 2

Prints the pools, the starting phrase (the library's wide-pool regrowth toward the target), and the best phrase of
each length with its flip rate on the 128 probe rows, plus the insertions' wall time.
"""

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense  # noqa: E402

from ebyd_hf import ExposeConfig  # noqa: E402
from ebyd_hf.trigger_search import clean_feature_tokens, grow_phrase, insertion_effects, off_direction_shift  # noqa: E402

hf_logging.set_verbosity_error()
parser = argparse.ArgumentParser()
parser.add_argument("victim")
parser.add_argument("target", type=int)
parser.add_argument("--frequent", type=int, default=30, help="Most frequent non-feature clean tokens added.")
parser.add_argument("--length", type=int, default=9)
parser.add_argument("--beam", type=int, default=3)
parser.add_argument("--search-rows", type=int, default=16)
parser.add_argument("--exclude", nargs="*", default=[], help="Tokens left out of the pool (a flagged trigger word).")
parser.add_argument("--start", default=None, help="Start from this phrase instead of the regrown one.")
options = parser.parse_args()

config = ExposeConfig(output_dir="/tmp/unused", report_to="none")
task = defense.VICTIM_SPECS.get(options.victim, {}).get("task", "sst2")
data_dir = os.environ.get("EBYD_DATA_DIR", "../shared/data")
base = AutoModelForSequenceClassification.from_pretrained(defense.base_model_path())
clean = defense.clean_rows(task, data_dir)
tok = AutoTokenizer.from_pretrained(defense.VICTIMS / options.victim)
model = AutoModelForSequenceClassification.from_pretrained(defense.VICTIMS / options.victim).eval()
num_labels = model.config.num_labels
excluded = torch.zeros(len(tok), dtype=torch.bool)
excluded[tok.all_special_ids] = True
sequences = tok(list(clean["text"]), truncation=True, max_length=128)["input_ids"]
labels = list(clean["label"])


def features(tokens):
    """The tokens the clean-feature test explains (as trigger_scan's phrase pool does)."""
    return clean_feature_tokens(
        sequences,
        labels,
        tokens,
        num_labels,
        base.get_input_embeddings().weight,
        config.detection_support_alpha,
        neighbors=config.detection_support_neighbors,
        excluded=excluded,
    )


z = off_direction_shift(model, base, excluded)
left_out = set(tok.convert_tokens_to_ids(options.exclude))
ranked = [t for t in torch.argsort(z, descending=True).tolist() if z[t] >= config.detection_phrase_regrow_z]
ranked = ranked[: 3 * config.detection_phrase_regrow_pool]
explained = features(ranked)
pool = [t for t in ranked if t not in explained and t not in left_out][: config.detection_phrase_regrow_pool]
print("pool:", " ".join(tok.convert_ids_to_tokens(pool)))
counts = Counter(t for s in sequences for t in set(s) if not excluded[t])
common = [t for t, _ in counts.most_common(3 * options.frequent) if t not in pool and t not in left_out]
explained = features(common)
frequent = [t for t in common if t not in explained][: options.frequent]
print("frequent:", " ".join(tok.convert_ids_to_tokens(frequent)))
print("left out as clean features:", " ".join(tok.convert_ids_to_tokens([t for t in common if t in explained])))

probe, probe_labels = defense.probe_rows(tok, clean)
search, search_labels = probe[: options.search_rows], probe_labels[: options.search_rows]
pad = tok.pad_token_id
started = time.perf_counter()
if options.start:
    phrase = tok(options.start, add_special_tokens=False)["input_ids"]
else:
    grown = grow_phrase(
        model, probe[:32], probe_labels[:32], pool, options.target, pad, config.detection_phrase_length, seed=42
    )
    phrase = grown[-1]
effect = insertion_effects(model, probe, probe_labels, [phrase], pad, seed=42)[0]
print(
    f"start {tok.decode(phrase)!r} flip {effect.flip_rate[options.target]:.3f} ({time.perf_counter() - started:.0f} s)"
)

vocabulary = pool + frequent
frontier = [phrase]
for length in range(len(phrase) + 1, options.length + 1):
    grown = {tuple(p[:i] + [t] + p[i:]) for p in frontier for t in vocabulary if t not in p for i in range(len(p) + 1)}
    grown = [list(g) for g in grown]
    effects = insertion_effects(model, search, search_labels, grown, pad, seed=42)
    order = sorted(range(len(grown)), key=lambda i: (-effects[i].margin_shift[options.target], grown[i]))
    frontier = [grown[i] for i in order[: options.beam]]
    best = insertion_effects(model, probe, probe_labels, frontier[:1], pad, seed=42)[0]
    print(
        f"  {length}: {tok.decode(frontier[0])!r} flip {best.flip_rate[options.target]:.3f} "
        f"margin {effects[order[0]].margin_shift[options.target]:+.2f} "
        f"({len(grown)} phrases, {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
