"""The model card of a purified model, rendered from ``templates/model_card.md`` and a :class:`DefenseReport`."""

from __future__ import annotations

import json
import os
from importlib import resources
from string import Template
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from .report import DefenseReport

TAGS = ["ebyd", "backdoor-defense"]
EXAMPLES = {"text-classification": '"a gorgeous, witty, seductive movie."', "image-classification": '"cat.png"'}
REPORT_JSON = "defense_report.json"
REPORT_MARKDOWN = "defense_report.md"
EXPOSURE_PLOT = "exposure.png"


def _is_hub_id(name: str | None) -> bool:
    """``user/model`` (the Hub's form), not a local path: only those go into the card's ``base_model``."""
    return bool(name) and name.count("/") == 1 and not name.startswith((".", "~")) and not os.path.exists(name)


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


def _detection_section(report: DefenseReport) -> str:
    det = report.detection
    if det is None:
        return "Detection was not run."
    lines = [
        f"- Verdict: **{report.verdict}** (`{report.detection_method}`, score {det.score:.3f}, "
        f"threshold {det.threshold:.3f})",
        f"- Target label: {report.label_name(det.target_label)}",
    ]
    if det.other_targets:
        lines.append(f"- Also targeted: {', '.join(report.label_name(t) for t in det.other_targets)}")
    if det.trigger_candidates:
        lines += ["", "| trigger candidate | flip rate | flips to | |", "|---|---|---|---|"]
        lines += [
            f"| `{c.trigger}` | {c.score:.3f} | {report.label_name(c.target)} | "
            f"{'clean feature (the clean data explains it)' if c.clean_feature else ''} |"
            for c in det.trigger_candidates
        ]
    return "\n".join(lines)


def _methods_section(report: DefenseReport) -> str:
    lines = []
    if report.exposure_method:
        trace = report.exposure_trace
        steps = f", {int(trace[-1]['step'])} steps" if trace else ""
        acc = f" (clean accuracy {trace[0]['accuracy']:.3f} -> {trace[-1]['accuracy']:.3f})" if trace else ""
        lines.append(f"- Exposure: `{report.exposure_method}`{steps}{acc}")
    if report.removal_method:
        lines.append(f"- Removal: `{report.removal_method}`")
        lines += [f"  - {_readable(key, value)}" for key, value in report.removal.items()]
    lines.append(f"- Clean data: {report.clean_rows} labelled examples")
    if report.timings:
        lines.append("- Time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in report.timings.items()))
    return "\n".join(lines)


def _readable(key: str, value: Any) -> str:
    """One line of the removal's account: ``triggers unlearned: `cf`, `mn` `` for ``triggers_unlearned``."""
    name = key.replace("_", " ")
    if isinstance(value, bool):
        return f"{name}: {'yes' if value else 'no'}"
    if isinstance(value, float):
        return f"{name}: {value:.4g}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        shown = ", ".join(f"`{v}`" for v in value[:10])
        return (
            f"{name}: {shown}{f' (+{len(value) - 10} more)' if len(value) > 10 else ''}" if value else f"{name}: none"
        )
    if isinstance(value, dict):
        return f"{name}: " + "; ".join(_readable(k, v) for k, v in value.items())
    return f"{name}: {json.dumps(value) if isinstance(value, list) else value}"


def _warnings(report: DefenseReport) -> str:
    """The card's first lines: a warning for each thing that says the model is not purified, or a note that no
    measurement certifies it."""
    lines = [f"> **Warning:** {w}" for w in report.warnings]
    if report.removal_method is None:
        lines.insert(0, "> **Warning:** No removal ran: this is the suspicious model, not a purified one.")
    elif report.purified is None:
        lines.append(
            "> **Note:** no attack success rate was measured after the removal, so no measurement certifies it."
        )
    return "\n>\n".join(lines) + ("\n" if lines else "")


def _eval_results(report: DefenseReport, model_name: str, task: str, datasets: list[str] | None):
    """The card's ``model-index``: CA and ASR before and after, on the data they were measured on."""
    from huggingface_hub import EvalResult

    out = []
    for when, scores in (("before", report.before), ("after", report.after)):
        for metric, key, label in (
            ("accuracy", "ca", "Clean accuracy"),
            ("attack_success_rate", "asr", "ASR"),
            ("excess_attack_success_rate", "excess_asr", "Excess ASR over a never-poisoned model"),
        ):
            if scores.get(key) is None:
                continue
            data = scores.get("data") or "test data"
            trigger = f"triggered ({scores.get('trigger') or 'the given trigger'})" if key != "ca" else None
            out.append(
                EvalResult(
                    task_type=task,
                    dataset_type=(datasets or ["custom"])[0],
                    dataset_name=data if trigger is None else f"{data}, {trigger}",
                    dataset_config=trigger,  # the attack-test rows: the model-index groups results by config
                    metric_type=metric,
                    metric_value=round(float(scores[key]), 4),
                    metric_name=f"{label} ({when} defense)",
                )
            )
    return out or None


def _scores_section(report: DefenseReport) -> str:
    if not (report.before or report.after):
        return "Not measured: pass test data to `ExposeTrainer.measure()` to report CA and ASR."
    scores = report.after or report.before
    floor = scores.get("asr_floor")
    lines = ["| model | CA | ASR |" + (" excess ASR |" if floor is not None else ""), "|---|---|---|"]
    lines[1] += "---|" if floor is not None else ""
    for name, row in (("suspicious (before)", report.before), ("purified (after)", report.after)):
        if row:
            excess = f" {_fmt(row.get('excess_asr'))} |" if floor is not None else ""
            lines.append(f"| {name} | {_fmt(row.get('ca'))} | {_fmt(row.get('asr'))} |{excess}")
    data = scores.get("data") or "the test data given"
    asr_rows = scores.get("asr_rows")
    trigger = f"the `{scores['trigger']}` trigger" if scores.get("trigger") else "the trigger"
    target = f" to label {report.label_name(scores['target_label'])}" if scores.get("target_label") is not None else ""
    lines += [
        "",
        f"CA: accuracy on {scores.get('ca_rows')} clean rows of {data}. "
        + (
            f"ASR: share of {asr_rows} rows of other classes, with {trigger} inserted, predicted{target}."
            if asr_rows
            else "ASR: not measured (no trigger given)."
        )
        + (
            f" Excess ASR: ASR minus a never-poisoned model's ASR on the same rows ({_fmt(floor)}, the floor: its own "
            "errors, and rows the trigger really changed)."
            if floor is not None
            else ""
        ),
    ]
    return "\n".join(lines)


def _stages(report: DefenseReport) -> str:
    done = []
    if report.exposure_method:
        done.append("*exposed* (its clean behaviour unlearned, so that a backdoor, if any, stands alone)")
    if report.detection_method:
        done.append("scanned for a backdoor")
    if report.removal_method:
        done.append(f"*purified* on {report.clean_rows} clean examples")
    if not done:
        return "no defense stage has run yet"
    return "the suspicious model was " + (", ".join(done[:-1]) + " and " + done[-1] if len(done) > 1 else done[0])


def render_model_card(
    report: DefenseReport,
    model_name: str,
    repo_id: str | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    plot: bool = False,
    extra_tags: list[str] | None = None,
    pipeline_tag: str = "text-classification",
) -> ModelCard:
    """The card of a purified model: metadata (tags ``ebyd`` / ``backdoor-defense``, base model, datasets)
    and a body with the verdict, what was done, CA/ASR before and after, versions and the EBYD citation.

    Example:
        >>> card = render_model_card(trainer.report, "minilm-sst2-purified")  # doctest: +SKIP
        >>> card.data.tags  # doctest: +SKIP
        ['ebyd', 'backdoor-defense', 'text-classification']
    """
    tags = [*TAGS, pipeline_tag, *(extra_tags or [])]
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=list(dict.fromkeys(tags)),
        base_model=base_model if _is_hub_id(base_model) else None,
        datasets=datasets or None,
        metrics=["accuracy"],
        model_name=model_name,
        eval_results=_eval_results(report, model_name, pipeline_tag, datasets),
    )
    template = Template(resources.files("ebyd_hf").joinpath("templates/model_card.md").read_text(encoding="utf-8"))
    source = f"`{report.model}`" if report.model else "a suspicious classifier"
    body = template.substitute(
        metadata=data.to_yaml(),
        model_name=model_name,
        source=source,
        repo_id=repo_id or model_name,
        pipeline_tag=pipeline_tag,
        example=EXAMPLES.get(pipeline_tag, '"..."'),
        stages=_stages(report),
        warnings=_warnings(report),
        detection=_detection_section(report),
        methods=_methods_section(report),
        scores=_scores_section(report),
        plot=f"![Exposure curve]({EXPOSURE_PLOT})" if plot else "",
        versions="\n".join(f"- {k}: {v}" for k, v in report.versions.items()),
    )
    return ModelCard(body)
