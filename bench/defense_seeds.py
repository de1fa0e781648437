"""How much the defense's numbers move with its seed: the ``ebyd`` rows of several ``bench/defense.py`` runs that
differ only in ``ExposeConfig.seed`` (it draws the probe rows, the trigger positions of the unlearning copies, the
soft trigger's start and the data order; the victims and the scored rows stay the same), side by side with mean
and range, in bench/results/defense-seeds.json and .md.

    python bench/defense.py --defenses ebyd --set seed=1 --results /tmp/seed1.json   # and seed=2, ...
    python bench/defense_seeds.py bench/results/defense.json /tmp/seed1.json /tmp/seed2.json

A record without a ``seed`` override ran with the default seed (42). Re-running with the same inputs rewrites the
same table; records of a (victim, seed) already in the output are replaced.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
ORDER = ["word-t1", "sentence-t1", "syntactic-t1", "style-t1", "word-t0", "syntactic-t0", "clean"]
DEFAULT_SEED = 42  # TrainingArguments.seed
ASR_BAR, CA_DROP_BAR, CLEAN_CA_DROP_BAR = 0.10, 0.02, 0.01


def seed_of(record: dict) -> int:
    return int((record.get("overrides") or {}).get("seed", DEFAULT_SEED))


def collect(paths: list[Path], existing: list[dict]) -> list[dict]:
    """The ``ebyd`` records of ``paths`` (with their seed), merged over ``existing`` by (victim, seed)."""
    new = []
    for path in paths:
        for record in json.loads(path.read_text()):
            if record["defense"] == "ebyd":
                extra = set(record.get("overrides") or {}) - {"seed"}
                if extra:
                    raise SystemExit(f"{path}: {record['victim']} ran with other overrides ({sorted(extra)}).")
                new.append({**record, "seed": seed_of(record)})
    keys = {(r["victim"], r["seed"]) for r in new}
    records = [r for r in existing if (r["victim"], r["seed"]) not in keys] + new
    return sorted(records, key=lambda r: (ORDER.index(r["victim"]) if r["victim"] in ORDER else 99, r["seed"]))


def summary(records: list[dict]) -> list[dict]:
    """One row per victim: every seed's verdict and CA / ASR after, their mean and range, the bars met per seed."""
    rows = []
    for victim in dict.fromkeys(r["victim"] for r in records):
        runs = [r for r in records if r["victim"] == victim]
        first = runs[0]
        target = first["target_label"]
        right = [
            r["verdict_backdoored"] == (target is not None) and (target is None or r["predicted_target"] == target)
            for r in runs
        ]
        ca = [r["ca_after"] for r in runs]
        asr = [r["asr_after"] for r in runs if r["asr_after"] is not None]
        drop_bar = CA_DROP_BAR if target is not None else CLEAN_CA_DROP_BAR
        rows.append(
            {
                "victim": victim,
                "target_label": target,
                "seeds": [r["seed"] for r in runs],
                "ca_before": first["ca_before"],
                "asr_before": first["asr_before"],
                "asr_clean_model": first.get("asr_clean_model"),
                "detection_right": sum(right),
                "ca_after": ca,
                "ca_after_mean": statistics.fmean(ca),
                "asr_after": asr or None,
                "asr_after_mean": statistics.fmean(asr) if asr else None,
                "ca_drop_within_bar": sum(first["ca_before"] - c <= drop_bar + 1e-9 for c in ca),
                "asr_within_bar": sum(a <= ASR_BAR for a in asr) if asr else None,
                "seconds_mean": statistics.fmean(r["seconds"] for r in runs),
            }
        )
    return rows


def write(records: list[dict], out: Path) -> None:
    out.write_text(json.dumps(records, indent=2) + "\n")
    f = lambda v: f"{v:.3f}"  # noqa: E731
    lines = [
        "# Defense benchmark across seeds (`ExposeTrainer.train()` with the defaults, MiniLM victims)",
        "",
        "Written by `bench/defense_seeds.py` from `bench/defense.py --defenses ebyd --set seed=N` runs; only the "
        "defense's seed changes (probe rows, trigger positions, soft-trigger start, data order), not the victims or "
        "the scored rows. CA on the SST-2 test split (1,821 rows), ASR on each victim's attack-test set.",
        "",
        "| victim | seeds | verdict + target right | CA before → after (per seed) | mean CA drop "
        "| ASR before → after (per seed) | mean ASR | ASR of the clean model | seeds with ASR <= 0.10 | mean s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary(records):
        n = len(row["seeds"])
        seeds = ", ".join(map(str, row["seeds"]))
        ca = " / ".join(map(f, row["ca_after"]))
        drop = 100 * (row["ca_before"] - row["ca_after_mean"])
        if row["asr_after"] is None:
            asr, mean_asr, floor, within = "—", "—", "—", "—"
        else:
            asr = f"{f(row['asr_before'])} → " + " / ".join(map(f, row["asr_after"]))
            mean_asr, floor = f(row["asr_after_mean"]), f(row["asr_clean_model"])
            within = f"{row['asr_within_bar']}/{n}"
        lines.append(
            f"| {row['victim']} | {seeds} | {row['detection_right']}/{n} | {f(row['ca_before'])} → {ca} | "
            f"{drop:+.1f} pts | {asr} | {mean_asr} | {floor} | {within} | {row['seconds_mean']:.0f} |"
        )
    lines += [
        "",
        '- "mean CA drop": CA before minus the mean CA after, in points (negative: the defense raised CA). Bars '
        "(issue 3): ASR <= 0.10 and a CA drop <= 2 points on the backdoored victims, <= 1 point on the clean one.",
        '- "ASR of the clean model": the never-poisoned victim on the same attack-test set, the floor a defense '
        "reaches without giving up clean accuracy (see bench/results/defense.md).",
        "- Seed 42 (the default) is the `ebyd` row of bench/results/defense.json, the run the defaults were chosen on; "
        "the other seeds ran two side by side with one thread each. Wall times are upper bounds.",
        "- The style-t1 row is the style victim of bench/victims.py (poisoned rows weigh 16 times: CA 0.851, ASR "
        "0.906); on the same recipe without the weight (`poison_weight` 1: CA 0.877, ASR 0.872) the same seeds "
        "gave ASR 0.306 / 0.219 / 0.219. Its clean-model rate (0.253; 0.262 in the other rows) comes from a "
        "seeded retraining of the clean victim (`python bench/victims.py --retrain clean`), not the draw behind "
        "the other rows.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path, help="bench/defense.py result files")
    parser.add_argument("--out", type=Path, default=RESULTS / "defense-seeds.json")
    args = parser.parse_args()
    existing = json.loads(args.out.read_text()) if args.out.exists() else []
    write(collect(args.inputs, existing), args.out)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
