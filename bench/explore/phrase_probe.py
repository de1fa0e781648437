"""Exploration: can a clean *reference* model single out a multi-word trigger that the suspicious model's own
flip rates cannot?

On the sentence victim the scan finds `3d`, and every phrase grown around it saturates; without it, "i watch this"
is no stronger on the suspicious model than the sentiment word "refreshing" (bench/notes-issue3.md, session 10).
A model of the same task without the backdoor (``base_model`` with a new head, fine-tuned on the 500 clean rows)
answers to sentiment words as well, but not to the trigger sentence. So score phrases by the *difference* of their
effect on the two models, and grow them from the tokens whose embeddings moved most from the base, leaving out the
triggers detection already confirmed.

    python bench/explore/phrase_probe.py sentence-t1 [top_k] [beam] [max_len]
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense  # noqa: E402

from ebyd_hf import ExposeTrainer, load_task  # noqa: E402
from ebyd_hf.methods.removal.unlearn_trigger import reference_model  # noqa: E402
from ebyd_hf.trigger_search import crop_sequences, embedding_shift, insertion_effects  # noqa: E402

hf_logging.set_verbosity_error()
name = sys.argv[1]
top_k = int(sys.argv[2]) if len(sys.argv) > 2 else 30
beam = int(sys.argv[3]) if len(sys.argv) > 3 else 4
max_len = int(sys.argv[4]) if len(sys.argv) > 4 else 5
data_dir = "../shared/data"
record = json.loads((defense.VICTIMS / name / "attack.json").read_text())
target = record["target_label"]
clean = load_task("sst2", data_dir)["validation"].shuffle(seed=0).select(range(500))
tokenizer = AutoTokenizer.from_pretrained(defense.VICTIMS / name)
model = AutoModelForSequenceClassification.from_pretrained(defense.VICTIMS / name).eval()
base_path = defense.base_model_path()

start = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    args = defense.bench_config(tmp + "/out", base_path)
    trainer = ExposeTrainer(model, args, train_dataset=clean, processing_class=tokenizer)
    reference = reference_model(trainer, trainer.fresh_copy())
    base = trainer.load_base_model()
print(f"reference trained in {time.perf_counter() - start:.0f} s", flush=True)

sequences = [list(ids) for ids in trainer.train_dataset["input_ids"]]
labels = np.asarray(trainer.train_dataset["label"])
rng = np.random.default_rng(42)
rows = rng.choice(len(sequences), size=128, replace=False)
probe = crop_sequences([sequences[i] for i in rows], 64, rng)
probe_labels = labels[rows]
pad = tokenizer.pad_token_id
special = set(tokenizer.all_special_ids)
shift = embedding_shift(model, base)
shift[list(special)] = -1
order = torch.argsort(shift, descending=True).tolist()
skip = set(sys.argv[5].split(",")) if len(sys.argv) > 5 else {"3d"}
pool = [t for t in order[: top_k + len(skip)] if tokenizer.convert_ids_to_tokens(t) not in skip][:top_k]
print("pool:", " ".join(tokenizer.convert_ids_to_tokens(pool)), flush=True)


def score(cands):
    sus = insertion_effects(model, probe, probe_labels, cands, pad, seed=42)
    ref = insertion_effects(reference, probe, probe_labels, cands, pad, seed=42)
    return [
        (
            s.flip_rate[target] - r.flip_rate[target],
            s.flip_rate[target],
            r.flip_rate[target],
            s.margin_shift[target] - r.margin_shift[target],
        )
        for s, r in zip(sus, ref)
    ]


def show(phrase, sc):
    text = " ".join(tokenizer.convert_ids_to_tokens(phrase))
    print(f"  {text!r:40} diff flip {sc[0]:+.3f} (sus {sc[1]:.3f}, ref {sc[2]:.3f}) diff margin {sc[3]:+.2f}")


singles = [[t] for t in pool]
scores = score(singles)
ranked = sorted(zip(singles, scores), key=lambda x: -x[1][3])
print("singles by differential margin:")
for phrase, sc in ranked[:15]:
    show(phrase, sc)
for check in ["i watch this", "i watch this 3d movie", "i watch this movie", "watch this movie", "refreshing"]:
    ids = tokenizer(check, add_special_tokens=False)["input_ids"]
    show(ids, score([ids])[0])

frontier = [p for p, _ in ranked[:beam]]
for length in range(2, max_len + 1):
    cands = {tuple(p[:i] + [t] + p[i:]) for p in frontier for t in pool for i in (0, len(p)) if t not in p}
    cands = [list(c) for c in cands]
    t0 = time.perf_counter()
    scores = score(cands)
    ranked = sorted(zip(cands, scores), key=lambda x: -x[1][3])
    print(f"length {length}: {len(cands)} candidates, {time.perf_counter() - t0:.0f} s", flush=True)
    for phrase, sc in ranked[:8]:
        show(phrase, sc)
    frontier = [p for p, _ in ranked[:beam]]
