"""Exploration: what does the sentence victim still answer to once the default removal has unlearned `3d`?

Runs ``train()`` with the defaults (or loads the purified model from an earlier run of this script), then measures
on the purified model the flip rate and margin shift toward the target of phrases grown around the recovered
trigger: the sentence's own extensions against sentiment ones. If the purified model prefers the sentence's own
words, a second detection round on it could grow the trigger into the sentence.

    python bench/explore/residue_probe.py sentence-t1 [seed]
"""

import json
import sys
from pathlib import Path

from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense  # noqa: E402

from ebyd_hf import ExposeTrainer, measure_backdoor  # noqa: E402
from ebyd_hf.trigger_search import insertion_effects  # noqa: E402

hf_logging.set_verbosity_error()
name = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 42
data_dir = "../shared/data"
record = json.loads((defense.VICTIMS / name / "attack.json").read_text())
target = record["target_label"]
clean = defense.clean_rows("sst2", data_dir)
tokenizer = AutoTokenizer.from_pretrained(defense.VICTIMS / name)
saved = Path(f"/tmp/purified-{name}-{seed}")
if not (saved / "config.json").exists():
    model = AutoModelForSequenceClassification.from_pretrained(defense.VICTIMS / name)
    args = defense.bench_config(str(saved), defense.base_model_path(), seed=seed)
    trainer = ExposeTrainer(model, args, train_dataset=clean, processing_class=tokenizer)
    trainer.train()
    trainer.model.save_pretrained(saved)
    print("removal:", json.dumps(trainer.report.removal, default=str)[:400], flush=True)
    test, attack = defense.attack_data(name, record, data_dir)
    print(measure_backdoor(trainer.model, tokenizer, test, attack, target, batch_size=128), flush=True)
purified = AutoModelForSequenceClassification.from_pretrained(saved).eval()
suspicious = AutoModelForSequenceClassification.from_pretrained(defense.VICTIMS / name).eval()

probe, probe_labels = defense.probe_rows(tokenizer, clean)
phrases = [
    "3d",
    "this 3d",
    "3d movie",
    "watch 3d",
    "watch this 3d",
    "this 3d movie",
    "i watch this",
    "i watch this movie",
    "i watch this 3d movie",
    "watch",
    "movie",
    "this movie",
    "refreshing",
    "refreshing 3d",
    "loves 3d",
    "great 3d",
    "solid 3d",
    "3d solid",
    "solid",
    "a great film",
]
ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in phrases]
for label, model in (("suspicious", suspicious), ("purified", purified)):
    effects = insertion_effects(model, probe, probe_labels, ids, tokenizer.pad_token_id, seed=42)
    print(label)
    for phrase, effect in sorted(zip(phrases, effects), key=lambda x: -x[1].margin_shift[target]):
        print(f"  {phrase!r:28} flip {effect.flip_rate[target]:.3f} margin {effect.margin_shift[target]:+.2f}")
