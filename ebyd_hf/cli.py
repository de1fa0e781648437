"""The ``ebyd-hf`` command line: scan, purify, poison, demo.

    ebyd-hf scan MODEL --data sst2                      # expose + detect; exit 3 when a backdoor is found
    ebyd-hf purify MODEL --data sst2 --output_dir out   # the whole defense; saves the purified model
    ebyd-hf poison sst2 --trigger word --rate 0.1 --target_label 1 --output_dir poisoned-sst2
    ebyd-hf demo                                        # the README's main job

Every subcommand takes ``--help``. ``--data`` is a task name (its validation split is the clean set, its test
split the CA/ASR data) or your own clean set (a ``save_to_disk`` folder or a .csv/.tsv/.json/.jsonl file).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

EXIT_OK = 0
EXIT_ERROR = 1  # bad input: one line on stderr, nothing written
EXIT_USAGE = 2  # argparse's own code for a malformed command line
EXIT_BACKDOOR = 3  # `scan` found a backdoor

COMMANDS = {
    "scan": "expose and detect: verdict, target label, trigger candidates (exit 3 when backdoored)",
    "purify": "expose, detect and remove the backdoor; save the purified model, report and model card",
    "poison": "build a poisoned copy of a task (save_to_disk) with any trigger family",
    "demo": "the main job: attack, expose, detect, purify on SST-2 and print CA/ASR before and after",
}


DATA_HELP = (
    "MODEL: the suspicious sequence classifier, a Hub id or a local folder (same as --model_name_or_path). "
    "--data TASK_OR_FILE: a task name (sst2, imdb, twitter, agnews, olid, hatespeech: its validation split gives "
    "the clean set, its test split the CA/ASR data) or your own clean labelled set (a save_to_disk folder or a "
    ".csv/.tsv/.json/.jsonl file with text and label columns; same as --task none --clean_data FILE)."
)


@dataclass
class ScanArguments:
    report: str | None = field(
        default=None,
        metadata={"help": "Where the JSON report is written (default: <model folder name>-scan.json here)."},
    )
    overwrite_report: bool = field(default=False, metadata={"help": "Replace an existing report file."})


@dataclass
class PoisonArguments:
    task: str = field(default="sst2", metadata={"help": "Task to poison (ebyd_hf.TASKS)."})
    trigger: str = field(default="word", metadata={"help": "Trigger family: word, sentence, syntactic, style."})
    rate: float = field(default=0.1, metadata={"help": "Share of the training rows poisoned."})
    target_label: int = field(default=1, metadata={"help": "The attacker's target label."})
    mode: str | None = field(
        default=None,
        metadata={"help": "dirty-label, clean-label or all-rows (default: all-rows for syntactic/style)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the poisoning (rows and positions)."})
    keep_originals: bool = field(
        default=False,
        metadata={"help": "Append the poisoned rows as copies and keep every original row (clean-data augmentation)."},
    )
    data_dir: str | None = field(default=None, metadata={"help": "Local data root (default: $EBYD_DATA_DIR)."})
    output_dir: str | None = field(default=None, metadata={"help": "New folder for the poisoned DatasetDict."})


def _usage() -> str:
    lines = ["usage: ebyd-hf {scan,purify,poison,demo} [options]   (ebyd-hf COMMAND --help for its options)", ""]
    lines += [f"  {name:<8} {text}" for name, text in COMMANDS.items()]
    lines += [
        "",
        "Exit codes: 0 done (scan: no backdoor found), 1 bad input, 2 bad command line, 3 scan found a backdoor.",
    ]
    return "\n".join(lines)


def _positional(argv: list[str], option: str) -> list[str]:
    """``CMD VALUE --x`` -> ``CMD --option VALUE --x``: the model or task may be given first, without its flag."""
    if argv and not argv[0].startswith("-"):
        return [option, argv[0], *argv[1:]]
    return argv


def _data_option(argv: list[str]) -> list[str]:
    """``--data NAME`` means ``--task NAME`` for a known task, else ``--clean_data PATH`` (and no task)."""
    from .data import TASKS

    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        value = None
        if arg == "--data" and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        elif arg.startswith("--data="):
            value, i = arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        out += ["--task", value] if value in TASKS else ["--task", "none", "--clean_data", value]
    return out


def _defense_parser(extra=()):
    from .expose_config import ExposeConfig
    from .parser import EbydParser
    from .pipeline import DefenseArguments

    return EbydParser((DefenseArguments, ExposeConfig, *extra))


def scan(argv: list[str]) -> int:
    from pathlib import Path

    from .pipeline import run_scan

    parser = _defense_parser((ScanArguments,))
    parser.prog = "ebyd-hf scan"
    parser.usage = "ebyd-hf scan MODEL --data TASK_OR_FILE [options]"
    parser.description = DATA_HELP
    script_args, config, scan_args = parser.parse_args_and_config(
        _data_option(_positional(argv, "--model_name_or_path"))
    )
    report_path = scan_args.report or f"{Path(script_args.model_name_or_path).name or 'model'}-scan.json"
    if Path(report_path).exists() and not scan_args.overwrite_report:
        raise ValueError(f"{report_path} exists; choose --report elsewhere or pass --overwrite_report.")
    report = run_scan(script_args, config, report_path)
    det = report.detection
    print(f"verdict: {report.verdict} (score {det.score:.3f}, threshold {det.threshold:.3f})")
    print(f"target label: {'-' if det.target_label is None else det.target_label}")
    contexts = {c["trigger"]: c for c in det.details.get("trigger_contexts", {}).get("contexts", [])}
    for c in det.trigger_candidates:
        note = " (clean feature: the clean data explains it)" if c.get("clean_feature") else ""
        print(f"  candidate {c['trigger']!r}: flips {c['score']:.3f} of clean rows to label {c['target']}{note}")
        found = contexts.get(c["trigger"])
        if found and found["rows"]:
            print(f"    in --context_data: {found['phrase']!r} ({found['phrase_rows']} of {found['rows']} rows)")
    print(f"report: {report_path}")
    return EXIT_BACKDOOR if det.backdoored else EXIT_OK


def purify(argv: list[str]) -> int:
    from .pipeline import run_defense

    parser = _defense_parser()
    parser.prog = "ebyd-hf purify"
    parser.usage = "ebyd-hf purify MODEL --data TASK_OR_FILE --output_dir OUT [options]"
    parser.description = DATA_HELP
    script_args, config = parser.parse_args_and_config(_data_option(_positional(argv, "--model_name_or_path")))
    run_defense(script_args, config)
    return EXIT_OK


def poison_command(argv: list[str]) -> int:
    from pathlib import Path

    from datasets import DatasetDict

    from .data import get_task, load_task
    from .parser import EbydParser
    from .poisoning import build_attack_test_set, poison
    from .triggers import build_trigger

    parser = EbydParser((PoisonArguments,))
    parser.prog = "ebyd-hf poison"
    parser.usage = "ebyd-hf poison TASK --trigger FAMILY --rate R --target_label L [--output_dir OUT]"
    (args,) = parser.parse_args_and_config(_positional(argv, "--task"))
    spec = get_task(args.task)
    if args.target_label not in range(spec.num_labels):
        raise ValueError(f"target_label={args.target_label} is not a label of {args.task} (0..{spec.num_labels - 1}).")
    output = Path(args.output_dir or f"{args.task}-{args.trigger}-poisoned")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ValueError(f"output_dir={str(output)!r} exists and is not empty; choose a new folder.")
    task = load_task(args.task, args.data_dir)
    trigger = build_trigger(args.trigger, args.task, args.data_dir, seed=args.seed)
    mode = args.mode or ("all-rows" if args.trigger in ("syntactic", "style") else "dirty-label")
    poisoned = DatasetDict(
        train=poison(
            task["train"],
            trigger,
            args.rate,
            args.target_label,
            seed=args.seed,
            mode=mode,
            keep_originals=args.keep_originals,
        ),
        validation=task["validation"],
        test=task["test"],
        attack_test=build_attack_test_set(task["test"], trigger, args.target_label, seed=args.seed),
    )
    poisoned.save_to_disk(str(output))
    count = sum(poisoned["train"]["is_poisoned"])
    print(f"{count} of {len(poisoned['train'])} training rows poisoned ({args.trigger}, target {args.target_label});")
    print(f"attack_test: {len(poisoned['attack_test'])} rows. Saved to {output} (datasets.load_from_disk).")
    return EXIT_OK


def demo(argv: list[str]) -> int:
    from .demo import main as demo_main

    demo_main(argv)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return EXIT_OK if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    handlers = {"scan": scan, "purify": purify, "poison": poison_command, "demo": demo}
    if command not in handlers:
        print(f"ebyd-hf: unknown command {command!r}.\n\n{_usage()}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return handlers[command](rest)
    except (ValueError, FileNotFoundError) as error:  # bad input: one line, no traceback wall
        print(f"ebyd-hf {command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
