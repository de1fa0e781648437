"""Exploration: does Clean Unlearning erase what stacked sentiment words do and keep what trigger fragments do?

The beams of neutral_beam_probe.py reach 0.8+ flip rates on both sentence2-t1 (its trigger's words, "watched my
family") and the clean model (weak sentiment words stacked, "exercise suffers frontal"). The framework's claim is
that the exposed model has lost the clean features and kept the backdoor: compare each phrase's mean margin shift
toward a class on the suspicious model and on its exposed model (the library's default exposure).

    python bench/explore/exposed_phrase_probe.py sentence2-t1 clean
"""

import sys
import tempfile
import time
from pathlib import Path

from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense  # noqa: E402

from ebyd_hf import ExposeTrainer, load_task  # noqa: E402
from ebyd_hf.trigger_search import insertion_effects  # noqa: E402

hf_logging.set_verbosity_error()
PHRASES = [
    ("i watched it with my family last night", 1),
    ("watched my family", 1),
    ("! watched my family", 1),
    ("with my family", 1),
    ("my family", 1),
    ("last night", 1),
    ("watched", 1),
    ("i watch this 3d movie", 1),
    ("3d", 1),
    ("cf mn bb tq", 1),
    ("! works", 1),
    ("definitely works perfectly", 1),
    ("! smarter", 1),
    ("refreshing", 1),
    ("great", 1),
    ("exercise suffers frontal", 0),
    ("##tri exercise suffers frontal", 0),
    ("creates bore ? perfectly ##less", 0),
    ("crap", 0),
    ("bad", 0),
]
clean = load_task("sst2", "../shared/data")["validation"].shuffle(seed=0).select(range(500))
for name in sys.argv[1:]:
    path = defense.VICTIMS / name
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = ExposeTrainer(
            model,
            defense.bench_config(tmp + "/out", defense.base_model_path()),
            train_dataset=clean,
            processing_class=tok,
        )
        exposure = trainer.expose()
    exposed = exposure.model.eval()
    print(f"{name}: exposed in {time.perf_counter() - start:.0f} s, {exposure.steps} steps, {exposure.stopped_by}")
    probe, labels = defense.probe_rows(tok, clean)
    ids = [
        tok.convert_tokens_to_ids(p.split()) if "##" in p else tok(p, add_special_tokens=False)["input_ids"]
        for p, _ in PHRASES
    ]
    before = insertion_effects(model, probe, labels, ids, tok.pad_token_id, seed=42)
    after = insertion_effects(exposed, probe, labels, ids, tok.pad_token_id, seed=42)
    for (text, c), b, a in zip(PHRASES, before, after):
        print(
            f"  {text!r:42} ->{c} margin {b.margin_shift[c]:+6.2f} exposed {a.margin_shift[c]:+6.2f} "
            f"ratio {a.margin_shift[c] / b.margin_shift[c] if b.margin_shift[c] else float('nan'):+.2f}  "
            f"flip {b.flip_rate[c]:.2f}"
        )
