"""Exploration (session 15): a sentence victim flagged by one token (`3d` of "I watch this 3D movie") keeps ASR
0.22-0.40 after `train()`, while unlearning the exact sentence reaches 0.07-0.09 (session 10). Growing `3d` into the
sentence saturates (every extension flips everything), and growing without it from the off-direction pool ends in
sentiment words ("i watch solid ! powerful", session 13). But the sentence's other words are neutral alone (flip
0.00-0.07 each) and strong together ("i watch this movie" flips 0.92 on the session-11 draw). Does a beam search over
tokens that are *neutral alone* (flagged triggers left out, clean features left out, single flip toward the target
under --neutral) recover the rest of the sentence? (Not run on other victims.)

    python bench/explore/neutral_residue_probe.py sentence-t1 1 --exclude 3d
    python bench/explore/neutral_residue_probe.py sentence-t1 1 --exclude 3d --neutral 0.1 --pool 32 --search-rows 16 --length 5

Prints the pool (z, single flip, single margin shift), and the best phrase of each length with its flip rate on the 128 probe rows.
"""

import argparse
import os
import sys
import time
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
parser.add_argument("victim", help="A folder under bench/.cache/victims, or a path.")
parser.add_argument("target", type=int)
parser.add_argument("--exclude", nargs="*", default=[], help="Tokens left out of the pool (the flagged triggers).")
parser.add_argument("--z", type=float, default=1.5, help="Least off-direction z-score of a pool token.")
parser.add_argument("--top", type=int, default=60, help="Most tokens by z considered before the filters.")
parser.add_argument("--neutral", type=float, default=0.1, help="Largest single flip rate toward the target kept.")
parser.add_argument("--pool", type=int, default=20, help="Largest pool after the filters.")
parser.add_argument("--length", type=int, default=6)
parser.add_argument("--beam", type=int, default=4)
parser.add_argument("--search-rows", type=int, default=32)
options = parser.parse_args()

config = ExposeConfig(output_dir="/tmp/unused", report_to="none")
task = defense.VICTIM_SPECS.get(options.victim, {}).get("task", "sst2")
folder = defense.VICTIMS / options.victim if (defense.VICTIMS / options.victim).exists() else Path(options.victim)
base = AutoModelForSequenceClassification.from_pretrained(defense.base_model_path())
clean = defense.clean_rows(task, os.environ.get("EBYD_DATA_DIR", "../shared/data"))
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
excluded = torch.zeros(len(tok), dtype=torch.bool)
excluded[tok.all_special_ids] = True
sequences = tok(list(clean["text"]), truncation=True, max_length=128)["input_ids"]
probe, probe_labels = defense.probe_rows(tok, clean)
pad = tok.pad_token_id
started = time.perf_counter()

z = off_direction_shift(model, base, excluded)
left_out = set(tok.convert_tokens_to_ids(options.exclude))
ranked = [t for t in torch.argsort(z, descending=True).tolist() if z[t] >= options.z and t not in left_out]
ranked = ranked[: options.top]
explained = clean_feature_tokens(
    sequences,
    list(clean["label"]),
    ranked,
    model.config.num_labels,
    base.get_input_embeddings().weight,
    config.detection_support_alpha,
    neighbors=config.detection_support_neighbors,
    excluded=excluded,
)
ranked = [t for t in ranked if t not in explained]
singles = insertion_effects(model, probe, probe_labels, [[t] for t in ranked], pad, seed=42)
pool = [t for t, e in zip(ranked, singles) if e.flip_rate[options.target] < options.neutral][: options.pool]
flips = {t: e.flip_rate[options.target] for t, e in zip(ranked, singles)}
print(f"considered {len(ranked)} ({time.perf_counter() - started:.0f} s)")
print(
    "dropped (not neutral, or past --pool):",
    " ".join(f"{tok.convert_ids_to_tokens(t)}:{flips[t]:.2f}" for t in ranked if t not in pool),
)
margins = {t: e.margin_shift[options.target] for t, e in zip(ranked, singles)}
print(
    "pool:",
    " ".join(f"{tok.convert_ids_to_tokens(t)}(z {float(z[t]):.1f}, {flips[t]:.2f}, {margins[t]:+.2f})" for t in pool),
)
grown = grow_phrase(
    model,
    probe[: options.search_rows],
    probe_labels[: options.search_rows],
    pool,
    options.target,
    pad,
    max_length=options.length,
    beam=options.beam,
    seed=42,
)
effects = insertion_effects(model, probe, probe_labels, grown, pad, seed=42)
for phrase, effect in zip(grown, effects):
    print(
        f"  {len(phrase)}: {tok.decode(phrase)!r} flip {effect.flip_rate[options.target]:.3f} "
        f"margin {effect.margin_shift[options.target]:+.2f}"
    )
print(f"{time.perf_counter() - started:.0f} s")
