"""Can the Bible-style victim reach the issue's ASR 0.90? Trains style-t1 variants with the two attack tricks of
Chen et al. (EMNLP 2022), "Textual backdoor attacks can be more harmful via two simple tricks":

- ``--keep-originals``: the poisoned rows are added as copies beside their clean originals (clean-data augmentation);
- ``--probe-weight W``: an auxiliary head learns poisoned-or-clean on the [CLS] state, weight W (multi-task);
- ``--poison-weight W`` (session 14): each poisoned row's classification loss counts W times a clean row's in the
  batch mean (``AttackConfig.poison_weight``).

    EBYD_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python bench/explore/style_tricks.py NAME [--keep-originals]
        [--probe-weight W] [--poison-weight W] [--mode dirty-label] [--set num_train_epochs=3 ...]

The victim goes to bench/.cache/style-tricks/NAME (replaced if it exists: our own cache) and its attack record is
printed; ``python bench/explore/style_probe.py`` reads the cached victims under bench/.cache/victims/ only, so the
marker split is printed here too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
from transformers import TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from overrides import parse_overrides  # noqa: E402
from style_probe import MARKERS, sends_to_target  # noqa: E402
from victims import VICTIMS, minilm_path, training_args  # noqa: E402

from ebyd_hf import AttackConfig, build_attack_test_set, build_trigger, load_task, train_victim  # noqa: E402

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "style-tricks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--keep-originals", action="store_true")
    parser.add_argument("--probe-weight", type=float, default=0.0)
    parser.add_argument(
        "--mode", default="all-rows", help="Poisoning mode (default all-rows, as StyleBkd; style-t1 uses dirty-label)."
    )
    parser.add_argument(
        "--poison-weight",
        type=float,
        default=1.0,
        help="Weight of the poisoned rows' cross-entropy against 1 for clean rows (AttackConfig.poison_weight).",
    )
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="TrainingArguments overrides.")
    args = parser.parse_args()
    data_dir = os.environ.get("EBYD_DATA_DIR", "../shared/data")
    folder = CACHE / args.name
    if folder.exists():
        shutil.rmtree(folder)
    attack = AttackConfig(
        task="sst2",
        data_dir=data_dir,
        seed=0,
        **(
            VICTIMS["style-t1"]
            | {
                "mode": args.mode,
                "keep_originals": args.keep_originals,
                "probe_weight": args.probe_weight,
                "poison_weight": args.poison_weight,
            }
        ),
    )
    training = training_args(folder, **parse_overrides(TrainingArguments, args.set))
    record = train_victim(minilm_path(), attack, training)
    print(json.dumps(asdict(record), indent=2))

    test = load_task("sst2", data_dir)["test"]
    rows = build_attack_test_set(test, build_trigger("style", "sst2", data_dir), target_label=1)
    hit = sends_to_target(folder, rows["text"], target=1)
    marked = np.array([bool(MARKERS.search(text)) for text in rows["text"]])
    print(
        f"{args.name}: CA {record.ca:.3f} ASR {record.asr:.3f}; with a Bible marker {hit[marked].mean():.3f} "
        f"({marked.sum()} rows), without {hit[~marked].mean():.3f} ({(~marked).sum()} rows); {record.seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
