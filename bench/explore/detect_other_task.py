"""Exploration: `detect()` with the defaults (and ``base_model``) on a model of another task, with 500 shuffled
validation rows of that task as the clean set; prints what each verdict rule saw.

    python bench/explore/detect_other_task.py twitter bench/.cache/recipes/twitter-clean-victim
"""

import json
import sys
import tempfile
import time
from pathlib import Path

from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense  # noqa: E402

from ebyd_hf import ExposeTrainer  # noqa: E402

hf_logging.set_verbosity_error()
task, path = sys.argv[1], sys.argv[2]
clean = defense.clean_rows(task, "../shared/data")
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForSequenceClassification.from_pretrained(path)
with tempfile.TemporaryDirectory() as tmp:
    trainer = ExposeTrainer(
        model,
        defense.bench_config(tmp + "/out", defense.base_model_path()),
        train_dataset=clean,
        processing_class=tokenizer,
    )
    start = time.perf_counter()
    found = trainer.detect()
print(
    json.dumps(
        {
            "task": task,
            "model": path,
            "backdoored": found.backdoored,
            "target": found.target_label,
            "score": found.score,
            "seconds": round(time.perf_counter() - start, 1),
            "rules": defense.detection_rules(found.details),
        },
        indent=1,
    )
)
