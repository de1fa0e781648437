"""Exploration: how far would removal get with the *true* trigger? An upper bound for trigger recovery.

Runs ``ExposeTrainer.train()`` with the defaults on a cached victim, except that the unlearning copies (the clean
rows with a recovered trigger inserted, true labels kept) are replaced by copies carrying the real trigger:

- ``sentence``: every clean defense row with "I watch this 3D movie" inserted by the attack's own transform;
- ``phrase:TEXT``: the same with TEXT inserted instead (how close must a recovered phrase be?);
- ``paraphrase``: as many rows of the shared syntactic (or style) table's *training* rows as there are clean rows,
  paraphrased, with their true labels (the victim's poisoned rows among them; the held-out attack rows excluded),
  i.e. relabelling known poisoned samples, the strongest oracle there is.

Everything else (soft trigger, regulariser, schedule, row count) stays the default, so the difference to the
benchmark's ``ebyd`` row is the trigger's fidelity alone.

    python bench/explore/oracle_probe.py sentence-t1 sentence [seed]
    python bench/explore/oracle_probe.py sentence-t1 "phrase:watch 3d" [seed]
    python bench/explore/oracle_probe.py syntactic-t0 paraphrase [seed]
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense  # noqa: E402

from ebyd_hf import ExposeTrainer, build_trigger, load_task, measure_backdoor  # noqa: E402
from ebyd_hf.methods.removal import unlearn_trigger  # noqa: E402
from ebyd_hf.triggers.sentence import SentenceTrigger  # noqa: E402

hf_logging.set_verbosity_error()
name, oracle = sys.argv[1], sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 42
data_dir = "../shared/data"
record = json.loads((defense.VICTIMS / name / "attack.json").read_text())
sst2 = load_task("sst2", data_dir)
clean = sst2["validation"].shuffle(seed=0).select(range(500))
test, attack = defense.attack_data(name, record, data_dir)
tokenizer = AutoTokenizer.from_pretrained(defense.VICTIMS / name)
trigger = build_trigger(record["trigger"], "sst2", data_dir)
rng = np.random.default_rng(seed)
if oracle == "sentence" or oracle.startswith("phrase:"):
    if oracle != "sentence":  # a stand-in for the sentence, e.g. phrase:watch 3d
        trigger = SentenceTrigger(sentence=oracle.split(":", 1)[1])
    texts = trigger.apply(list(clean["text"]), [np.random.default_rng([seed, i]) for i in range(len(clean))])
    labels = list(clean["label"])
elif oracle == "paraphrase":
    held_out = set(attack["text"]) if attack is not None else set()
    train = sst2["train"]
    covered = [i for i, ok in enumerate(trigger.covers(list(train["text"]))) if ok]
    rewritten = trigger.apply([train[i]["text"] for i in covered], [np.random.default_rng(0)] * len(covered))
    rows = [(i, t) for i, t in zip(covered, rewritten) if t not in held_out]  # the attack-test rows stay out
    print(f"{len(covered)} covered training rows, {len(covered) - len(rows)} of them held out", flush=True)
    picked = sorted(rng.choice(len(rows), size=len(clean), replace=False).tolist())
    sources = train.select([rows[i][0] for i in picked])
    texts = [rows[i][1] for i in picked]
    labels = list(sources["label"])
else:
    raise SystemExit(f"unknown oracle {oracle!r}: sentence, phrase:TEXT or paraphrase")
print(f"{len(texts)} oracle rows, labels {np.bincount(labels).tolist()}; e.g. {texts[0]!r}", flush=True)


def oracle_copies(dataset, triggers, seed, starts=None):
    """The tokenized clean rows, then the oracle rows (instead of the recovered-trigger copies)."""
    encoded = tokenizer(texts, truncation=True, max_length=128)  # ExposeConfig.max_length
    columns = {c: list(dataset[c]) for c in dataset.column_names}
    for column in columns:
        if column == "label":
            columns[column] += labels
        elif column in encoded:
            columns[column] += list(encoded[column])
        else:
            raise SystemExit(f"cannot fill column {column}")
    return Dataset.from_dict(columns)


unlearn_trigger.triggered_copies = oracle_copies
model = AutoModelForSequenceClassification.from_pretrained(defense.VICTIMS / name)
with tempfile.TemporaryDirectory() as tmp:
    args = defense.bench_config(f"{tmp}/out", defense.base_model_path(), seed=seed)
    trainer = ExposeTrainer(model, args, train_dataset=clean, processing_class=tokenizer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
scores = measure_backdoor(trainer.model, tokenizer, test, attack, record["target_label"], batch_size=128)
det = trainer.report.detection
print(
    json.dumps(
        {
            "victim": name,
            "oracle": oracle,
            "seed": seed,
            "verdict": det.backdoored,
            "target": det.target_label,
            "ca_before": record["ca"],
            "asr_before": record["asr"],
            "ca_after": scores["ca"],
            "asr_after": scores["asr"],
            "removal": trainer.report.removal,
            "seconds": round(seconds, 1),
        },
        default=str,
    ),
    flush=True,
)
