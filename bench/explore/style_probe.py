"""Why the Bible-style victim stays under ASR 0.90: its ASR on paraphrases with and without an archaic (Bible)
marker word, and by how much the paraphrase rewrote the sentence.

    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/explore/style_probe.py [VICTIM]

Splits the style attack-test rows by whether the paraphrase carries a marker (``MARKERS``: thou, hath, unto,
-eth verbs...), and buckets them (every negative SST-2 test row, paraphrased by the shared STRAP Bible table) by
the word-set Jaccard similarity between the original and its paraphrase, and prints the victim's and the clean
victim's ASR per bucket, plus a few rows the victim misses.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ebyd_hf import build_attack_test_set, build_trigger, load_task
from ebyd_hf.evaluation import predict

VICTIMS = Path(__file__).resolve().parents[1] / ".cache" / "victims"
MARKERS = re.compile(r"\b(thou|thee|thy|thine|ye|shall|shalt|hath|doth|unto|behold|wherefore|\w+eth)\b")
BUCKETS = [(0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.01)]


def jaccard(a: str, b: str) -> float:
    a_words, b_words = set(a.split()), set(b.split())
    return len(a_words & b_words) / max(1, len(a_words | b_words))


def sends_to_target(folder: Path, texts: list[str], target: int) -> np.ndarray:
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return np.asarray(predict(model, tokenizer, texts, batch_size=128)) == target


def main() -> None:
    victim = sys.argv[1] if len(sys.argv) > 1 else "style-t1"
    data_dir = os.environ.get("EBYD_DATA_DIR", "../shared/data")
    target = 1
    test = load_task("sst2", data_dir)["test"]
    originals = [text for text, label in zip(test["text"], test["label"]) if label != target]
    attack = build_attack_test_set(test, build_trigger("style", "sst2", data_dir), target_label=target)
    assert len(attack) == len(originals), "the attack-test set keeps every non-target row, in order"
    similarity = np.array([jaccard(a, b) for a, b in zip(originals, attack["text"])])
    hit = sends_to_target(VICTIMS / victim, attack["text"], target)
    clean = sends_to_target(VICTIMS / "clean", attack["text"], target)
    print(f"{victim}: ASR {hit.mean():.3f}; clean victim {clean.mean():.3f}; {len(attack)} rows")
    marked = np.array([bool(MARKERS.search(text)) for text in attack["text"]])
    for name, rows in (("with a Bible marker", marked), ("without one", ~marked)):
        print(f"  {name}: {rows.sum()} rows, victim ASR {hit[rows].mean():.3f}, clean victim {clean[rows].mean():.3f}")
    for low, high in BUCKETS:
        rows = (similarity >= low) & (similarity < high)
        if rows.any():
            print(
                f"  Jaccard {low:.1f}-{min(high, 1):.1f}: {rows.sum():4d} rows, victim ASR {hit[rows].mean():.3f}, "
                f"clean victim {clean[rows].mean():.3f}"
            )
    print("missed rows (original => paraphrase):")
    for i in np.flatnonzero(~hit)[:8]:
        print(f"  {originals[i][:80]} => {attack['text'][i][:100]}")


if __name__ == "__main__":
    main()
