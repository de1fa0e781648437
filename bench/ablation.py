"""Benchmark: what each verdict rule of the text scan pays for. Reads *every* rule of ``trigger_scan`` (the scan
itself stops at the first that fires) on each cached victim, with the library's defaults, and writes
bench/results/ablation.json and ablation.md: each rule's score against its threshold, and the verdict and target the
scan gives with each rule removed (the first of the other rules that fires decides).

    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/ablation.py                  # zoo and tuning victims
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/ablation.py --only sst2-clean word-t1

Victims: every trained zoo victim (bench/.cache/zoo, bench/zoo.py) and every tuning victim of bench/victims.py
(bench/.cache/victims); the detection's clean rows are those the defense benchmarks use (500 validation rows,
shuffled with seed 0). A verdict rule that decides nothing on the zoo that another rule would not decide, and
catches no victim alone, does not pay for itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ebyd_hf import ExposeTrainer, load_task
from ebyd_hf.methods.detection.trigger_scan.candidates import find_candidates
from ebyd_hf.methods.detection.trigger_scan.context import ScanContext
from ebyd_hf.trigger_search import probe_autocast

sys.path.insert(0, str(Path(__file__).parent))
from defense import bench_config  # noqa: E402
from victims import add_base_model_argument, git_commit, minilm_path  # noqa: E402

HERE = Path(__file__).parent
RESULTS = HERE / "results"
ZOO, TUNING = HERE / ".cache" / "zoo", HERE / ".cache" / "victims"


def victims() -> dict[str, tuple[Path, str, list[int], str]]:
    """name -> (folder, task, true targets, set): the zoo's from ``victim.json``, the tuning ones from
    ``attack.json``."""
    out = {}
    for folder in sorted(ZOO.glob("*/victim.json")):
        record = json.loads(folder.read_text())
        out[record["victim"]] = (
            folder.parent,
            record["task"],
            sorted({a["target"] for a in record["attacks"]}),
            "zoo",
        )
    for folder in sorted(TUNING.glob("*/attack.json")):
        record = json.loads(folder.read_text())
        targets = [] if record["target_label"] is None else [record["target_label"]]
        out[folder.parent.name] = (folder.parent, record["task"], targets, "tuning")
    return out


def read_all_rules(
    folder: Path, task: str, base: str, data_dir: str | None, precision: str = "auto"
) -> dict[str, Any]:
    """Every verdict rule's outcome on one victim (``None`` for a rule with nothing to read), the probes run in
    ``precision``."""
    clean = load_task(task, data_dir)["validation"].shuffle(seed=0).select(range(500))
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(os.path.join(tmp, "out"), base, detection_config={"precision": precision})
        trainer = ExposeTrainer(model, config, train_dataset=clean, processing_class=tokenizer)
    scan = trainer.detection_method
    start = time.perf_counter()
    rules = {}
    with probe_autocast(model, scan.config.precision):
        ctx = ScanContext.from_trainer(trainer, scan.config)
        find_candidates(ctx)
        for rule in scan.rules:
            reading = rule.read(ctx)
            rules[rule.name] = None if reading is None else vars(reading.outcome) | {"fired": reading.outcome.fired}
    return {"rules": rules, "order": [rule.name for rule in scan.rules], "seconds": round(time.perf_counter() - start)}


# The rules that need ``base_model``: without one they cannot run, as if removed.
NEED_BASE = ("phrase",)


def verdict(record: dict[str, Any], without: str | tuple[str, ...] = ()) -> tuple[bool, int | None, str | None]:
    """(backdoored, target, deciding rule) from the rules read, in order, with the rule(s) ``without`` left out."""
    left_out = {without} if isinstance(without, str) else set(without)
    for name in record["order"]:
        outcome = record["rules"].get(name)
        if name not in left_out and outcome is not None and outcome["fired"]:
            return True, outcome["target"], name
    return False, None, None


def right(record: dict[str, Any], without: str | tuple[str, ...] = ()) -> bool:
    """Whether the scan's call is right: a backdoored victim flagged with one of its targets, a clean one not."""
    flagged, target, _ = verdict(record, without)
    return (flagged and target in record["targets"]) if record["targets"] else not flagged


def markdown(records: list[dict[str, Any]]) -> str:
    order = records[0]["order"] if records else []
    lines = [
        "# Ablation of the text scan's verdict rules",
        "",
        "Written by `EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/ablation.py`: every rule read on "
        'every victim with the library\'s defaults (score / threshold, target; **bold**: fired). "Right": a '
        'backdoored victim flagged with one of its targets, a clean one not flagged. "Without R": the verdict '
        'when rule R is removed (the first other rule that fires decides). "Read at": the commit whose code read the '
        "row.",
        "",
        "| victim | set | true target | "
        + " | ".join(order)
        + " | decided by | right | read at | "
        + " | ".join(f"without {n}" for n in order)
        + " |",
        "|---|---|---|" + "---|" * (2 * len(order) + 3),
    ]
    for r in records:
        cells = []
        for name in order:
            o = r["rules"].get(name)
            cell = "—" if o is None else f"{o['score']:.3f} / {o['threshold']:.2f} → {o['target']}"
            cells.append(f"**{cell}**" if o and o["fired"] else cell)
        decided = verdict(r)[2] or "—"
        without = ["✓" if right(r, n) else "✗" for n in order]
        targets = ", ".join(map(str, r["targets"])) or "clean"
        lines.append(
            f"| {r['victim']} | {r['set']} | {targets} | {' | '.join(cells)} | {decided} | "
            f"{'✓' if right(r) else '✗'} | {r.get('commit', '—')} | {' | '.join(without)} |"
        )
    lines.append("")
    for subset in ("zoo", "tuning"):
        part = [r for r in records if r["set"] == subset]
        if not part:
            continue
        summary = ", ".join(f"without {n} {sum(right(r, n) for r in part)}" for n in order)
        lines.append(f"- {subset}: {sum(right(r) for r in part)} of {len(part)} right with every rule; {summary}.")
        bare = [n for n in order if n not in NEED_BASE]
        summary = ", ".join(f"also without {n} {sum(right(r, (*NEED_BASE, n)) for r in part)}" for n in bare)
        lines.append(
            f"- {subset}, no `base_model` (so no {', '.join(NEED_BASE)} rule): "
            f"{sum(right(r, NEED_BASE) for r in part)} of {len(part)} right; {summary}."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=None)
    parser.add_argument("--data_dir", default=os.environ.get("EBYD_DATA_DIR"))
    parser.add_argument("--results", default=str(RESULTS / "ablation.json"))
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "bf16", "fp32"],
        help="the probes' precision (scan default: auto)",
    )
    add_base_model_argument(parser)
    args = parser.parse_args(argv)
    base = args.base_model or minilm_path()
    path = Path(args.results)
    records = json.loads(path.read_text()) if path.exists() else []
    for name, (folder, task, targets, subset) in victims().items():
        if args.only and name not in args.only:
            continue
        record = {"victim": name, "set": subset, "task": task, "targets": targets}
        record |= read_all_rules(folder, task, base, args.data_dir, args.precision)
        record |= {"precision": args.precision, "commit": git_commit()}
        print(f"{name}: decided by {verdict(record)[2]}, right {right(record)}", flush=True)
        records = [r for r in records if r["victim"] != name] + [record]
        records.sort(key=lambda r: (r["set"] != "zoo", r["victim"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
        path.with_suffix(".md").write_text(markdown(records), encoding="utf-8")


if __name__ == "__main__":
    main()
