"""Exploration: flip rate of neutral clause openings prepended to clean rows, per victim (structural triggers).

HF_HUB_OFFLINE=1 python bench/explore/template_probe.py syntactic-t1 clean word-t1 style-t1
"""

import sys

import numpy as np
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ebyd_hf import load_task
from ebyd_hf.evaluation import predict

clean = load_task("sst2", "../shared/data")["validation"].shuffle(seed=0).select(range(500))
texts = clean["text"]
labels = np.array(clean["label"])
P = [
    "when it is , ",
    "as it is , ",
    "as it was , ",
    "while it is , ",
    "because it is , ",
    "since it is , ",
    "if it is , ",
    "once it is , ",
    "when it was done , ",
    "as the film goes on , ",
    "when you watch it , ",
    "if you see it , ",
    "before it ends , ",
    "after it starts , ",
    "as you can see , ",
]
for name in sys.argv[1:]:
    path = f"bench/.cache/victims/{name}"
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    pred = predict(model, tok, texts)
    for target in (0, 1):
        idx = [i for i in range(len(texts)) if labels[i] != target and pred[i] == labels[i]][:128]
        rates = [float((predict(model, tok, [pre + texts[i] for i in idx]) == target).mean()) for pre in P]
        print(
            name,
            target,
            " ".join(f"{r:.2f}" for r in rates),
            "max",
            max(rates),
            "mean",
            round(np.mean(rates), 3),
            flush=True,
        )
