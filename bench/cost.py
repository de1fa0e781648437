"""Benchmark: what the defense costs against its floor, one plain fine-tuning of the model on the same clean rows.

For each victim, in one run on one machine, each measurement in its own process (so its peak memory is its own):

- ``finetune``: ``trainer.purify()`` with ``removal_method="finetune"`` and no regulariser: the same clean rows,
  epochs, batch size and learning rate as the defense's fine-tuning; no detection;
- ``defense``: ``trainer.train()`` with the library's defaults (detect, then remove), its stage times from the report.

Writes bench/results/cost.json and cost.md: both wall times, their ratio, and each run's peak resident memory;
with ``--flops``, also the floating-point operations of each stage (counted in runs apart, which the counting slows
down), a measure of the work that does not depend on the machine or on what else runs on it.

    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/cost.py                 # every victim found
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/cost.py --only word-t1
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/cost.py --only word-t1 --results /tmp/c.json \
        --set removal_config.step_budget=finetune         # other settings for the defense; the baseline stays

Victims: the SST-2 word, sentence and syntactic victims of bench/victims.py (bench/.cache/victims), and the IMDB and
AG News victims of the recipes (bench/.cache/recipes/<run>/_victim, bench/recipes.py), or else the zoo's
(bench/.cache/zoo, bench/zoo.py). A victim not trained yet is skipped and said so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from victims import minilm_path  # noqa: E402

HERE = Path(__file__).parent
RESULTS = HERE / "results"
CACHE = HERE / ".cache"
CLEAN_ROWS = 500

# name -> (task, candidate folders, first found wins)
VICTIMS: dict[str, tuple[str, list[Path]]] = {
    "word-t1": ("sst2", [CACHE / "victims" / "word-t1"]),
    "sentence-t1": ("sst2", [CACHE / "victims" / "sentence-t1"]),
    "syntactic-t1": ("sst2", [CACHE / "victims" / "syntactic-t1"]),
    "imdb": ("imdb", [CACHE / "recipes" / "imdb-sentence-t1" / "_victim", CACHE / "zoo" / "imdb-sentence-t1"]),
    "agnews": ("agnews", [CACHE / "recipes" / "agnews-word-t0" / "_victim", CACHE / "zoo" / "agnews-multi-t1t3"]),
}
MAX_LENGTH = {"imdb": 256}  # the recipes' truncation for long rows; 128 elsewhere
MODES = {
    "finetune": dict(removal_method="finetune", removal_config={"regularizer": "none"}),
    "defense": {},
}


def victim_folder(name: str) -> Path | None:
    return next((p for p in VICTIMS[name][1] if (p / "config.json").exists()), None)


def base_model(folder: Path) -> str:
    """The checkpoint the victim was fine-tuned from: the one its ``attack.json`` names when that exists here, else
    the offline MiniLM every benchmark victim starts from."""
    record = folder / "attack.json"
    if record.exists():
        recorded = json.loads(record.read_text()).get("model")
        if recorded and os.path.isdir(recorded):
            return recorded
    return minilm_path()


def count_flops(trainer, mode: str) -> dict[str, int]:
    """The floating-point operations of each stage (``torch.utils.flop_counter``): what the defense computes,
    whatever the machine. Counting slows the run down, so the timed runs do not count."""
    from torch.utils.flop_counter import FlopCounterMode

    stages, detection = {}, None
    for stage in ("detect", "purify") if mode == "defense" else ("purify",):
        with FlopCounterMode(display=False) as counter:
            if stage == "detect":
                detection = trainer.detect()
            else:
                trainer.purify(detection=detection)
        stages[stage] = int(counter.get_total_flops())
    return stages


def run_one(name: str, mode: str, data_dir: str | None, count: bool = False, overrides: dict | None = None) -> dict:
    """One run in this process: load the victim and the clean rows, build the trainer, run, and report the seconds
    of the run itself (loading excluded), its stage times, the purification's optimiser steps and this process's
    peak memory; with ``count``, the floating-point operations of each stage instead. ``overrides`` (``--set``)
    change the defense's settings; the plain fine-tune keeps its own."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ebyd_hf import ExposeConfig, ExposeTrainer, load_task

    task, folder = VICTIMS[name][0], victim_folder(name)
    clean = load_task(task, data_dir)["validation"].shuffle(seed=0).select(range(CLEAN_ROWS))
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    base = base_model(folder) if mode == "defense" else None
    with tempfile.TemporaryDirectory() as tmp:
        args = ExposeConfig(
            os.path.join(tmp, "out"),
            base_model=base,
            max_length=MAX_LENGTH.get(task, 128),
            per_device_eval_batch_size=128,
            disable_tqdm=True,
            logging_strategy="no",
            report_to="none",
            dataloader_pin_memory=False,
            **(MODES[mode] | (overrides or {} if mode == "defense" else {})),
        )
        trainer = ExposeTrainer(model, args, train_dataset=clean, processing_class=tokenizer)
        start = time.perf_counter()
        if count:
            flops = count_flops(trainer, mode)
        elif mode == "defense":
            trainer.train()
        else:
            trainer.purify()
        seconds = time.perf_counter() - start
    if count:
        return {"victim": name, "task": task, "mode": mode, "flops": flops}
    return {
        "victim": name,
        "task": task,
        "mode": mode,
        "folder": str(folder),
        "seconds": round(seconds, 1),
        "stage_seconds": trainer.report.timings,
        "verdict": trainer.report.verdict,
        "steps": trainer.state.max_steps,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "threads": torch.get_num_threads(),
    }


def measure(name: str, mode: str, data_dir: str | None, count: bool = False, overrides: dict | None = None) -> dict:
    """``run_one`` in a fresh process (its own peak memory, no warm caches from the other run)."""
    command = [sys.executable, __file__, "--one", name, mode, *(["--flops"] if count else [])]
    if overrides:
        command += ["--overrides", json.dumps(overrides)]
    if data_dir:
        command += ["--data_dir", data_dir]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{name} {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def settings(record: dict) -> str:
    """The defense's settings in a table cell: ``defaults``, or each ``--set`` override."""
    flat = []
    for key, value in (record.get("overrides") or {}).items():
        if isinstance(value, dict):
            flat += [f"{key.removesuffix('_config')}.{k}={v}" for k, v in value.items()]
        else:
            flat.append(f"{key}={value}")
    return ", ".join(f"`{item}`" for item in flat) or "defaults"


def write(records: list[dict], path: Path = RESULTS / "cost.json") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Defense cost against a plain fine-tune (same clean rows, epochs and batch size)",
        "",
        "Written by `EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/cost.py`: each run in its own "
        f"process, one after the other on one machine ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores); {CLEAN_ROWS} clean validation rows; seconds exclude loading.",
        "",
        "| victim | task | plain fine-tune s | defense s (detect + purify) | ratio | FLOP ratio (detect + purify) "
        "| verdict | peak memory GB (fine-tune / defense) | defense settings |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if any(r.get("overrides") for r in records):
        lines[2] += " A row whose defense settings are not `defaults` ran with `--set` and those settings."
    for r in records:
        stages = r["defense"]["stage_seconds"]
        split = f"{stages.get('detect', 0):.0f} + {stages.get('purify', 0):.0f}"
        flops = "—"
        if "flops" in r:
            plain = sum(r["flops"]["finetune"].values())
            parts = " + ".join(f"{v / plain:.2f}" for v in r["flops"]["defense"].values())
            flops = f"{r['flop_ratio']:.2f} ({parts})"
        lines.append(
            f"| {r['victim']} | {r['task']} | {r['finetune']['seconds']:.0f} | {r['defense']['seconds']:.0f} "
            f"({split}) | {r['ratio']:.2f} | {flops} | {r['defense']['verdict']} | "
            f"{r['finetune']['peak_rss_gb']:.2f} / {r['defense']['peak_rss_gb']:.2f} | {settings(r)} |"
        )
    path.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(VICTIMS), default=None)
    parser.add_argument("--data_dir", default=os.environ.get("EBYD_DATA_DIR"))
    parser.add_argument("--results", default=str(RESULTS / "cost.json"))
    parser.add_argument(
        "--flops", action="store_true", help="also count each stage's floating-point operations (a run apart)"
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="ExposeConfig overrides for the defense runs (as bench/defense.py --set); the plain fine-tune keeps its "
        "own. Use with --results elsewhere.",
    )
    parser.add_argument("--one", nargs=2, metavar=("VICTIM", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--overrides", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        overrides = json.loads(args.overrides) if args.overrides else None
        print(json.dumps(run_one(*args.one, args.data_dir, count=args.flops, overrides=overrides)), flush=True)
        return
    from overrides import parse_overrides

    from ebyd_hf import ExposeConfig

    overrides = parse_overrides(ExposeConfig, args.set) if args.set else {}
    path = Path(args.results)
    records = json.loads(path.read_text()) if path.exists() else []
    for name in args.only or list(VICTIMS):
        if victim_folder(name) is None:
            print(f"skip {name}: no trained victim in {', '.join(map(str, VICTIMS[name][1]))}")
            continue
        runs = {mode: measure(name, mode, args.data_dir, overrides=overrides) for mode in MODES}
        record = {
            "victim": name,
            "task": VICTIMS[name][0],
            "overrides": overrides,
            **runs,
            "ratio": round(runs["defense"]["seconds"] / runs["finetune"]["seconds"], 2),
        }
        records = [r for r in records if r["victim"] != name] + [record]
        write(records, path)  # the times are kept even if the slower counting runs are cut short
        if args.flops:
            record["flops"] = {
                mode: measure(name, mode, args.data_dir, count=True, overrides=overrides)["flops"] for mode in MODES
            }
            total = {mode: sum(stages.values()) for mode, stages in record["flops"].items()}
            record["flop_ratio"] = round(total["defense"] / total["finetune"], 2)
        print(
            f"{name}: fine-tune {runs['finetune']['seconds']} s, defense {runs['defense']['seconds']} s, "
            f"ratio {record['ratio']}",
            flush=True,
        )
        records = [r for r in records if r["victim"] != name] + [record]
        write(records, path)


if __name__ == "__main__":
    main()
