"""Exploration: does a phrase need its word order and its words side by side?

A sentence trigger is learned as one contiguous run of tokens in a fixed order, so a fragment of it should lose
most of its effect when reversed or when its tokens are scattered over the row; a stack of weak sentiment words,
which the beams of neutral_beam_probe.py also find, should not care. Print, for each phrase and model, the flip
rate toward its class inserted as is, reversed, and scattered (each token at its own random position).

    python bench/explore/order_probe.py sentence2-t1 clean sentence-t1
"""

import sys
from pathlib import Path

import numpy as np
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense  # noqa: E402

from ebyd_hf import load_task  # noqa: E402
from ebyd_hf.trigger_search import batched_logits, insertion_effects  # noqa: E402

hf_logging.set_verbosity_error()
PHRASES = [
    ("watched my family", 1),
    ("! watched my family", 1),
    ("with my family", 1),
    ("my family", 1),
    ("i watched it", 1),
    ("last night", 1),
    ("i watch this movie", 1),
    ("i watch this", 1),
    ("this 3d", 1),
    ("! works", 1),
    ("definitely works perfectly", 1),
    ("! works relentless ##cating", 1),
    ("! smarter", 1),
    ("also solid", 1),
    ("exercise suffers frontal", 0),
    ("##tri exercise suffers frontal", 0),
    ("creates bore ? perfectly ##less", 0),
    ("winds perfectly ##less ?", 0),
    ("##less then exercise suffers frontal", 0),
]


def scattered_flip(model, probe, labels, tokens, target, pad, seed=42):
    rng = np.random.default_rng(seed)
    seqs = []
    for s in probe:
        s = list(s)
        for t in tokens:
            p = int(rng.integers(1, max(len(s) - 1, 1) + 1))
            s = s[:p] + [t] + s[p:]
        seqs.append(s)
    base = batched_logits(model, probe, pad).argmax(1)
    pred = batched_logits(model, seqs, pad).argmax(1)
    eligible = (base == labels) & (labels != target)
    return float((pred[eligible] == target).mean())


clean = load_task("sst2", "../shared/data")["validation"].shuffle(seed=0).select(range(500))
for name in sys.argv[1:]:
    path = defense.VICTIMS / name
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    probe, labels = defense.probe_rows(tok, clean)
    pad = tok.pad_token_id
    print(name)
    for text, c in PHRASES:
        ids = (
            tok.convert_tokens_to_ids(text.split())
            if "##" in text
            else tok(text, add_special_tokens=False)["input_ids"]
        )
        as_is, rev = insertion_effects(model, probe, labels, [ids, ids[::-1]], pad, seed=42)
        sc = scattered_flip(model, probe, labels, ids, c, pad)
        print(
            f"  {text!r:40} ->{c} as is {as_is.flip_rate[c]:.2f}  reversed {rev.flip_rate[c]:.2f}  scattered {sc:.2f}"
        )
