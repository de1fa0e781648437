"""The ``ebyd-hf`` command line: scan, purify, poison, demo.

    ebyd-hf scan MODEL --data sst2                      # detect; exit 3 when a backdoor is found
    ebyd-hf purify MODEL --data sst2 --output_dir out   # the whole defense; saves the purified model
    ebyd-hf poison sst2 --trigger word --rate 0.1 --target_label 1 --output_dir poisoned-sst2
    ebyd-hf demo                                        # the README's main job

Every subcommand takes ``--help``. ``--data`` is a task name (its validation split is the clean set, its test
split the CA/ASR data) or your own clean set (a ``save_to_disk`` folder or a .csv/.tsv/.json/.jsonl file).
"""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_ERROR = 1  # bad input: one line on stderr, nothing written
EXIT_USAGE = 2  # argparse's own code for a malformed command line
EXIT_BACKDOOR = 3  # `scan` found a backdoor
EXIT_NOT_PURIFIED = 4  # `purify` measured a backdoor left (DefenseReport.warnings), or CA down over 2 points
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it

COMMANDS = {
    "scan": "detect: verdict, target label, trigger candidates (exit 3 when backdoored). The default text detection "
    "reads the suspicious model itself; it runs no exposure stage (docs/limitations.md says why)",
    "purify": "detect and remove the backdoor; save the purified model, report and model card",
    "poison": "build a poisoned copy of a task (save_to_disk) with any trigger family",
    "demo": "the main job: attack, detect, purify on SST-2 and print CA/ASR before and after",
}


MODEL_HELP = "The suspicious sequence classifier, a local folder or a Hub id (same as --model_name_or_path)."


def _usage() -> str:
    lines = ["usage: ebyd-hf {scan,purify,poison,demo} [options]   (ebyd-hf COMMAND --help for its options)", ""]
    lines += [f"  {name:<8} {text}" for name, text in COMMANDS.items()]
    lines += [
        "",
        "Exit codes: 0 done (scan: no backdoor found), 1 bad input, 2 bad command line, 3 scan found a backdoor, "
        "4 purify measured that the defense did not lower ASR or cost more than 2 points of CA.",
    ]
    return "\n".join(lines)


def defense_parser(command: str, script_arguments: type):
    """The parser of ``ebyd-hf scan`` / ``purify``: the script's dataclass, then ``ExposeConfig``, with ``--config``
    YAML defaults and ``MODEL`` as an optional positional for ``--model_name_or_path``."""
    from .expose_config import ExposeConfig
    from .parser import EbydParser

    return EbydParser(
        (script_arguments, ExposeConfig),
        prog=f"ebyd-hf {command}",
        usage=f"%(prog)s MODEL --data TASK_OR_FILE{' --output_dir OUT' if command == 'purify' else ''} [options]",
        description=COMMANDS[command],
        positional=("model_name_or_path", "MODEL", MODEL_HELP),
    )


def scan(argv: list[str]) -> int:
    from .pipeline import ScanArguments, run_scan

    script_args, config = defense_parser("scan", ScanArguments).parse_args_and_config(argv)
    report = run_scan(script_args, config)
    det = report.detection
    print(f"verdict: {report.verdict} (score {det.score:.3f}, threshold {det.threshold:.3f})")
    print(f"target label: {'-' if det.target_label is None else det.target_label}")
    if det.other_targets:
        print(f"also targeted: {', '.join(map(str, det.other_targets))}")
    contexts = {c["trigger"]: c for c in det.details.get("trigger_contexts", {}).get("contexts", [])}
    for c in det.trigger_candidates:
        note = " (clean feature: the clean data explains it)" if c.clean_feature else ""
        print(f"  candidate {c.trigger!r}: flips {c.score:.3f} of clean rows to label {c.target}{note}")
        found = contexts.get(c.trigger)
        if found and found["rows"]:
            print(f"    in --context_data: {found['phrase']!r} ({found['phrase_rows']} of {found['rows']} rows)")
    print(f"report: {script_args.report_path()}")
    return EXIT_BACKDOOR if det.backdoored else EXIT_OK


def purify(argv: list[str]) -> int:
    from .pipeline import PurifyArguments, run_defense

    report = run_defense(*defense_parser("purify", PurifyArguments).parse_args_and_config(argv))
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_NOT_PURIFIED if report.warnings else EXIT_OK


def poison_command(argv: list[str]) -> int:
    from .parser import EbydParser
    from .pipeline import PoisonArguments, run_poison

    parser = EbydParser(
        PoisonArguments,
        prog="ebyd-hf poison",
        usage="%(prog)s TASK --trigger FAMILY --rate R --target_label L [--output_dir OUT]",
        description=COMMANDS["poison"],
        positional=("task", "TASK", "The task to poison (same as --task)."),
    )
    (args,) = parser.parse_args_and_config(argv)
    poisoned, output = run_poison(args)
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
    except (ValueError, OSError) as error:  # bad input, an unreadable or unwritable file: one line, no traceback
        print(f"ebyd-hf {command}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"ebyd-hf {command}: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as done:  # argparse: --help (0) or a malformed command line (2, its message printed)
        if isinstance(done.code, str):
            print(f"ebyd-hf {command}: error: {done.code}", file=sys.stderr)
            return EXIT_ERROR
        return EXIT_OK if done.code is None else done.code


def _one_line(error: BaseException) -> str:
    """The error as one line: an ``OSError`` as its message and file name, anything else as its text, newlines
    folded (a message from deep inside a library may span several)."""
    if isinstance(error, OSError) and error.strerror:
        text = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
