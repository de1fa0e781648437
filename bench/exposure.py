"""Benchmark: does exposure single out a text backdoor? For each cached victim (the zoo's and the tuning victims of
bench/victims.py) and each exposure method, expose a copy of the model on the defense's 500 clean rows and measure
what a detector could read from it:

- ``target_share``: the share of the clean rows the exposed model predicts as each class. The paper's signal: once
  the clean features are erased, a backdoored model should fall to its target.
- ``rank``: for a word trigger, the best rank of its word pieces, toward the trigger's target, in the first-order
  token scores the scan proposes candidates from (``trigger_scan`` tries the top 20 per class). Read on the
  exposed model alone (``exposed``), and as a sign test with the suspicious model (``joint``: a token ranks by the
  worse of its two percentile ranks, so it must push toward the class in both models; a clean feature that the
  exposure moved to another class drops out).
- ``joint_best_flip``: the best single-token flip rate, per class, on the suspicious model, of the top 20 tokens of
  the joint ranking: what the token rule would read if the joint ranking fed it (a false alarm on a clean model).

Exposure ``none`` is the suspicious model itself (today's scan). Writes bench/results/exposure.{json,md}.

    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/exposure.py
    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/exposure.py --only sst2-word-lora-t0 sst2-clean \
        --exposures clean_unlearning permuted_labels
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

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ebyd_hf import ExposeConfig, ExposeTrainer, load_task
from ebyd_hf.methods.detection.trigger_scan.context import ScanContext
from ebyd_hf.trigger_search import batched_logits, first_order_token_scores, insertion_effects, probe_autocast

sys.path.insert(0, str(Path(__file__).parent))
from ablation import victims  # noqa: E402
from defense import bench_config  # noqa: E402
from overrides import parse_overrides  # noqa: E402
from victims import add_base_model_argument, minilm_path  # noqa: E402

HERE = Path(__file__).parent
RESULTS = HERE / "results"
EXPOSURES = ("none", "clean_unlearning", "permuted_labels", "confusion")
TOP = 20  # the scan's candidates per class


def word_triggers(folder: Path) -> list[tuple[str, int]]:
    """(word, target) of every word trigger the victim was poisoned with, from its ``victim.json`` (zoo) or
    ``attack.json`` (tuning victims)."""
    zoo, tuning = folder / "victim.json", folder / "attack.json"
    if zoo.exists():
        attacks = json.loads(zoo.read_text())["attacks"]
        return [(w, a["target"]) for a in attacks if a["family"] == "word" for w in a["trigger"]["words"]]
    record = json.loads(tuning.read_text())
    if record.get("trigger") != "word":
        return []
    return [(w, record["target_label"]) for w in record["trigger_config"]["words"]]


def percentile_ranks(scores: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
    """Per class, each token's rank among the allowed tokens divided by their number (0: the best)."""
    masked = scores.masked_fill(excluded, -float("inf"))
    order = torch.argsort(masked, dim=1, descending=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order).contiguous())
    return ranks.float() / float((~excluded).sum())


def best_rank(ranking: torch.Tensor, pieces: list[int]) -> int:
    """1-based rank of the best of ``pieces`` in ``ranking`` (token ids, best first)."""
    position = {int(t): i for i, t in enumerate(ranking.tolist())}
    return 1 + min(position.get(p, len(position)) for p in pieces)


def measure(name, folder: Path, task, targets, exposures, data_dir, base, overrides=None, label="") -> list[dict]:
    """One record per exposure of ``exposures`` (``none`` first: the sign test reads the suspicious model's scores);
    ``overrides`` (``ExposeConfig`` fields and options) go to every exposed run, ``label`` names them."""
    if exposures[0] != "none":
        raise ValueError("the sign test reads the suspicious model's scores: list 'none' first")
    clean = load_task(task, data_dir)["validation"].shuffle(seed=0).select(range(500))
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    triggers = [(w, t, tokenizer(w, add_special_tokens=False)["input_ids"]) for w, t in word_triggers(folder)]
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        suspicious_scores, ctx = None, None
        for exposure in exposures:
            method = {} if exposure == "none" else {"exposure_method": exposure, **(overrides or {})}
            config = bench_config(os.path.join(tmp, exposure), base, **method)
            trainer = ExposeTrainer(model, config, train_dataset=clean, processing_class=tokenizer)
            if ctx is None:
                ctx = ScanContext.from_trainer(trainer, trainer.detection_method.config)
            start = time.perf_counter()
            record: dict[str, Any] = {"victim": name, "task": task, "targets": targets, "exposure": exposure}
            if exposure != "none":
                record["settings"] = label
            if exposure == "none":
                exposed = model
            else:
                result = trainer.expose()
                exposed = result.model
                record |= {"steps": result.steps, "stopped_by": result.stopped_by}
            with probe_autocast(exposed, "auto"):
                predicted = batched_logits(exposed, ctx.sequences, ctx.pad_id).argmax(-1)
                scores = first_order_token_scores(exposed, ctx.sequences, ctx.pad_id, seed=ctx.seed)
            counts = np.bincount(predicted, minlength=trainer.num_labels)
            record["target_share"] = [round(float(c) / counts.sum(), 3) for c in counts]
            if suspicious_scores is None:
                suspicious_scores = scores
            own = percentile_ranks(scores, ctx.excluded)
            joint = torch.maximum(own, percentile_ranks(suspicious_scores, ctx.excluded))
            record["rank"] = {
                f"{w}->{t}": {
                    "exposed": best_rank(torch.argsort(own[t]), pieces),
                    "joint": best_rank(torch.argsort(joint[t]), pieces),
                }
                for w, t, pieces in triggers
            }
            tops = sorted({int(i) for row in joint for i in torch.argsort(row)[:TOP]})
            with probe_autocast(model, "auto"):
                effects = insertion_effects(model, ctx.probe, ctx.probe_labels, [[t] for t in tops], ctx.pad_id)
            flips = np.stack([e.flip_rate for e in effects])
            record["joint_best_flip"] = [round(float(v), 3) for v in flips.max(0)]
            record["joint_best_token"] = [ctx.text([tops[int(i)]]) for i in flips.argmax(0)]
            record["seconds"] = round(time.perf_counter() - start, 1)
            records.append(record)
            print(json.dumps(record), flush=True)
    return records


def markdown(records: list[dict]) -> str:
    lines = [
        "# Exposure on text victims: what a detector could read from the exposed model",
        "",
        "Written by `EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/exposure.py` (500 clean validation "
        "rows, seed 42, the library's exposure defaults). `none` is the suspicious model. Shares: the clean rows "
        "the model predicts as each class. Ranks: a word trigger's best piece toward its target in the first-order "
        f"scores (the scan tries the top {TOP}), on the model alone / joint with the suspicious one (sign test). "
        "Best flip: the best single-token flip rate per class, on the suspicious model, of the joint top "
        f"{TOP} tokens.",
        "",
        "| victim | targets | exposure | steps | class shares | trigger ranks (alone / joint) | best flip (joint top "
        f"{TOP}) | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        ranks = "; ".join(f"`{k}` {v['exposed']} / {v['joint']}" for k, v in r["rank"].items()) or "—"
        flips = ", ".join(
            f"{c}: {v:.2f} `{t}`" for c, (v, t) in enumerate(zip(r["joint_best_flip"], r["joint_best_token"]))
        )
        lines.append(
            f"| {r['victim']} | {', '.join(map(str, r['targets'])) or 'clean'} | {r['exposure']}"
            f"{' (' + r['settings'] + ')' if r.get('settings') else ''} | "
            f"{r.get('steps', '—')} | {' / '.join(f'{s:.2f}' for s in r['target_share'])} | {ranks} | {flips} | "
            f"{r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _key(record: dict) -> tuple:
    return record["victim"], record["exposure"], record.get("settings", "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=None)
    parser.add_argument("--exposures", nargs="+", default=list(EXPOSURES), choices=EXPOSURES)
    parser.add_argument("--data_dir", default=os.environ.get("EBYD_DATA_DIR"))
    parser.add_argument("--results", default=str(RESULTS / "exposure.json"))
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="ExposeConfig overrides for the exposed runs (exposure_learning_rate=1e-5, "
        "exposure_config.learning_rate_scale=1); recorded with each row",
    )
    add_base_model_argument(parser)
    args = parser.parse_args(argv)
    base = args.base_model or minilm_path()
    exposures = ["none"] + [e for e in args.exposures if e != "none"]  # the sign test reads the suspicious model
    runs = [{"exposure_method": e} for e in exposures[1:]]
    if len(runs) > 1 and any(item.startswith("exposure_config") for item in args.set):
        parser.error("exposure_config options belong to one method: list one method in --exposures with them")
    overrides = parse_overrides(ExposeConfig, args.set, runs) if args.set else {}
    label = " ".join(args.set)
    path = Path(args.results)
    records = json.loads(path.read_text()) if path.exists() else []
    for name, (folder, task, targets, _) in victims().items():
        if args.only and name not in args.only:
            continue
        new = measure(name, folder, task, targets, exposures, args.data_dir, base, overrides, label)
        done = {_key(r) for r in new}
        records = [r for r in records if _key(r) not in done] + new
        records.sort(key=lambda r: (r["victim"], EXPOSURES.index(r["exposure"]), r.get("settings", "")))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
        path.with_suffix(".md").write_text(markdown(records), encoding="utf-8")


if __name__ == "__main__":
    main()
