"""Exploration: is the best trigger candidate an *outlier* among the verified candidates, when its flip rate is not
over the threshold?

Runs ``trigger_scan`` with the defaults on a cached victim, capturing every single-token candidate it verifies
(flip rate and margin shift toward the class it flips to), and prints, per class, the best candidates and robust
statistics of the margin shifts: median, MAD, and the best candidate's anomaly index (best - median) / (1.4826 MAD),
as Neural Cleanse scores its reversed triggers.

    python bench/explore/outlier_probe.py VICTIM [VICTIM ...]
"""

import sys
from pathlib import Path

import numpy as np
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense  # noqa: E402

import ebyd_hf.methods.detection.trigger_scan as scan  # noqa: E402
from ebyd_hf import ExposeTrainer  # noqa: E402

hf_logging.set_verbosity_error()
clean = defense.clean_rows("sst2", "../shared/data")
captured = []
original = scan.insertion_effects


def capture(model, sequences, labels, candidates, pad_id, **kwargs):
    effects = original(model, sequences, labels, candidates, pad_id, **kwargs)
    captured.append((candidates, effects, kwargs.get("position")))
    return effects


scan.insertion_effects = capture
for name in sys.argv[1:]:
    captured.clear()
    path = defense.VICTIMS / name
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path)
    trainer = ExposeTrainer(
        model,
        defense.bench_config("/tmp/outlier-probe", defense.base_model_path()),
        train_dataset=clean,
        processing_class=tokenizer,
    )
    detection = trainer.detect()
    features = {c["trigger"] for c in detection.details["clean_features"]}
    print(f"== {name}: backdoored {detection.backdoored} score {detection.score:.3f} target {detection.target_label}")
    candidates, effects, _ = captured[0]  # the single tokens
    for cls in range(model.config.num_labels):
        flips = np.array([e.flip_rate[cls] for e in effects])
        margins = np.array([e.margin_shift[cls] for e in effects])
        median, mad = np.median(margins), np.median(np.abs(margins - np.median(margins)))
        order = np.argsort(-margins)
        print(
            f" class {cls}: {len(margins)} tokens, margin median {median:+.2f} MAD {mad:.2f}; flip median "
            f"{np.median(flips):.3f}"
        )
        for i in order[:8]:
            token = tokenizer.convert_ids_to_tokens(candidates[i][0])
            index = (margins[i] - median) / (1.4826 * mad)
            mark = " (clean feature)" if token in features else ""
            print(f"   {token:14} flip {flips[i]:.3f} margin {margins[i]:+.2f} anomaly {index:5.1f}{mark}")
