"""Exploration: is a trigger phrase of common words *conjunctive* where clean words are additive?

neutral_beam_probe.py found that a beam over the neutral most-moved tokens reaches the held-out trigger's words on
sentence2-t1 ("watched my family" 0.82), but also climbs to 0.79 on the clean model by stacking weak sentiment words
("##tri exercise suffers frontal"). A backdoor phrase should be synergistic: its words do little alone and a lot
together, while weak sentiment words add up. Score every ordered pair of the neutral pool by its synergy, the
margin shift of the pair toward a class minus the sum of its two tokens' shifts, and grow the best pairs by the
same rule (a phrase's synergy: its shift minus the sum of its tokens' single shifts toward the class, each at
least 0).

    python bench/explore/synergy_probe.py sentence2-t1 clean [--pool 20] [--cut 0.2] [--rows 32] [--crop 32]
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
parser.add_argument("--pool", type=int, default=30)
parser.add_argument("--cut", type=float, default=0.2)
parser.add_argument("--rows", type=int, default=32)
parser.add_argument("--crop", type=int, default=32)
parser.add_argument("--beam", type=int, default=3)
parser.add_argument("--length", type=int, default=4)
parser.add_argument("--data", default="sst2")
options = parser.parse_args()

clean = load_task(options.data, "../shared/data")["validation"].shuffle(seed=0).select(range(500))
base = AutoModelForSequenceClassification.from_pretrained(defense.base_model_path())
for name in options.victims:
    start = time.perf_counter()
    path = defense.VICTIMS / name if (defense.VICTIMS / name).exists() else Path(name)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    shift = embedding_shift(model, base)
    shift[tok.all_special_ids] = -1
    order = torch.argsort(shift, descending=True).tolist()[: 2 * options.pool]
    probe, labels = defense.probe_rows(tok, clean)
    search, search_labels = defense.probe_rows(tok, clean, rows=options.rows, max_length=options.crop, seed=7)
    pad = tok.pad_token_id
    full = insertion_effects(model, probe, labels, [[t] for t in order], pad, seed=42)
    pool = [t for t, e in zip(order, full) if e.flip_rate.max() < options.cut][: options.pool]
    singles = dict(zip(pool, insertion_effects(model, search, search_labels, [[t] for t in pool], pad, seed=42)))
    pairs = [[a, b] for a in pool for b in pool if a != b]
    pair_effects = insertion_effects(model, search, search_labels, pairs, pad, seed=42)
    print(f"{name}: pool {' '.join(tok.convert_ids_to_tokens(pool))}; {len(pairs)} pairs", flush=True)

    def synergy(phrase, effect, target, singles=singles):
        # what the phrase adds over its tokens' own pushes toward the class (a token pushing away counts as 0)
        return effect.margin_shift[target] - sum(max(singles[t].margin_shift[target], 0.0) for t in phrase)

    for target in range(model.config.num_labels):
        ranked = sorted(zip(pairs, pair_effects), key=lambda x: -synergy(x[0], x[1], target))
        print(f"  target {target} top pairs by synergy:")
        for phrase, effect in ranked[:5]:
            print(
                f"    {' '.join(tok.convert_ids_to_tokens(phrase))!r:30} synergy {synergy(phrase, effect, target):+.2f}"
                f" margin {effect.margin_shift[target]:+.2f} flip {effect.flip_rate[target]:.2f}"
            )
        frontier = [p for p, _ in ranked[: options.beam]]
        for length in range(3, options.length + 1):
            cands = [p[:i] + [t] + p[i:] for p in frontier for t in pool for i in (0, len(p)) if t not in p]
            effects = insertion_effects(model, search, search_labels, cands, pad, seed=42)
            ranked = sorted(zip(cands, effects), key=lambda x: -synergy(x[0], x[1], target))
            frontier = [p for p, _ in ranked[: options.beam]]
            phrase, effect = ranked[0]
            (check,) = insertion_effects(model, probe, labels, [phrase], pad, seed=42)
            print(
                f"    length {length}: {' '.join(tok.convert_ids_to_tokens(phrase))!r:36} synergy "
                f"{synergy(phrase, effect, target):+.2f} margin {effect.margin_shift[target]:+.2f} "
                f"flip {check.flip_rate[target]:.3f} (128 rows x 64)",
                flush=True,
            )
    print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
