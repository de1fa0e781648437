"""What a defense found and did: :class:`DetectionResult` and :class:`DefenseReport` (JSON, markdown, a PNG
of the exposure curve)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal


@dataclass
class TriggerCandidate:
    """A trigger a detection method recovered: the tokens, the class they flip rows to, how strongly, and how removal
    should unlearn them."""

    trigger: str
    """The candidate as text (tokens joined, or the phrase decoded)."""
    token_ids: list[int]
    target: int
    """The class the candidate flips clean rows of other classes to."""
    score: float
    """Flip rate: the share of correctly classified clean rows of other classes that the candidate, inserted,
    sends to ``target``."""
    margin_shift: float = 0.0
    """Mean shift of the logit margin toward ``target`` when inserted (breaks ties between equal flip rates)."""
    sources: list[str] = field(default_factory=list)
    """What proposed it: ``first_order``, ``embedding_shift``, ``joint``, ``template``, ``phrase``, ``residue``,
    ``known``."""
    position: Literal["anywhere", "start"] = "anywhere"
    """Where removal inserts it into clean rows: anywhere (tokens, phrases), or after the first token (templates)."""
    reset_embeddings: bool = False
    """Whether removal resets its tokens' embedding rows to the base model's (recovered rare tokens; not common
    words such as templates, phrases or a residue)."""
    context_score: float | None = None
    """Mean flip rate inside neutral frames (the context rule), when it was measured."""
    clean_feature: bool = False
    """The clean data explains it (the clean-feature test): reported, never unlearned, never flags a model."""
    clean_support: dict[str, Any] | None = None
    embedding_shift: float | None = None

    def to_markdown(self) -> str:
        notes = [f"{self.score:.3f}"]
        if self.context_score is not None:
            notes.append(f"in context {self.context_score:.3f}")
        if "phrase" in self.sources:
            notes.append("grown phrase")
        if self.clean_feature:
            notes.append("clean feature")
        return f"`{self.trigger}` ({', '.join(notes)})"


@dataclass
class RuleOutcome:
    """One detection rule's reading: its score toward ``target`` against its threshold."""

    rule: str
    score: float
    threshold: float
    target: int | None
    fired: bool


@dataclass
class DetectionResult:
    """The detection verdict: is the model backdoored, which label is targeted, what the trigger looks like."""

    backdoored: bool
    score: float
    """Backdoor score; ``backdoored`` is ``score >= threshold``."""
    threshold: float
    target_label: int | None
    target_score: float | None
    trigger_candidates: list[TriggerCandidate] = field(default_factory=list)
    """What the method reports, best first."""
    triggers: list[TriggerCandidate] = field(default_factory=list)
    """What removal unlearns (empty for a model called clean)."""
    decided_by: str | None = None
    """The rule that flagged the model (``None`` when no rule fired)."""
    other_targets: list[int] = field(default_factory=list)
    """Further labels a backdoor sends rows to (a model with several backdoors), each flagged by a rule read again
    toward the labels not flagged yet; ``triggers`` holds theirs too."""
    rules: list[RuleOutcome] = field(default_factory=list)
    """Every rule that was read, in order, with its score and threshold."""
    notes: list[str] = field(default_factory=list)
    """Lines the method adds to the markdown report."""
    details: dict[str, Any] = field(default_factory=dict)
    """Method-specific measurements (JSON-able), for the JSON report."""


@dataclass
class DefenseReport:
    """Everything one run of :class:`~ebyd_hf.ExposeTrainer` found and did.

    Example:
        >>> report = trainer.report  # doctest: +SKIP
        >>> report.to_json("defense.json"); print(report.to_markdown())  # doctest: +SKIP
    """

    model: str
    clean_rows: int
    exposure_method: str | None = None
    detection_method: str | None = None
    removal_method: str | None = None
    detection: DetectionResult | None = None
    removal: dict[str, Any] = field(default_factory=dict)
    exposure_trace: list[dict[str, float]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    """CA/ASR of the suspicious model when test data was given, with the data they were measured on."""
    after: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    label_names: list[str] | None = None
    """The model's label names in id order, when it has names (not ``LABEL_0``...): targets are reported by name."""

    ASR_NOISE: ClassVar[float] = 0.01
    """An ASR change smaller than this (one point) is no change: the defense did not lower the ASR."""
    CA_COST_LIMIT: ClassVar[float] = 0.02
    """More clean accuracy lost than this (two points) is reported as a cost the user has to weigh."""
    EXCESS_LIMIT: ClassVar[float] = 0.10
    """Where a never-poisoned model's ASR (the floor) was measured: an ASR still more than this (ten points) above
    it after the defense is a backdoor left standing."""

    @property
    def verdict(self) -> str:
        if self.detection is None:
            return "not run"
        return "backdoored" if self.detection.backdoored else "clean"

    def label_name(self, label: int | None) -> str:
        """``label`` as the report prints it: ``1 (positive)`` when the model names its labels, ``—`` for none."""
        if label is None:
            return "—"
        names = self.label_names or []
        return f"{label} ({names[label]})" if 0 <= label < len(names) else str(label)

    @property
    def warnings(self) -> list[str]:
        """What the measured scores say against the defense, in plain words: the ASR was not
        lowered, or clean accuracy fell by more than ``CA_COST_LIMIT``. Empty when none applies (or nothing was
        measured after a removal)."""
        out = []
        before, after = self.before, self.after
        if after and before.get("asr") is not None and after.get("asr") is not None:
            out += self._asr_warnings(before["asr"], after["asr"], after.get("asr_floor"))
        if after and before.get("ca") is not None and after.get("ca") is not None:
            cost = before["ca"] - after["ca"]
            if cost > self.CA_COST_LIMIT:
                out.append(
                    f"The defense cost {100 * cost:.1f} points of clean accuracy ({before['ca']:.3f} -> "
                    f"{after['ca']:.3f}), more than {100 * self.CA_COST_LIMIT:.0f}."
                )
        return out

    def _asr_warnings(self, before: float, after: float, floor: float | None) -> list[str]:
        """Against a floor: a backdoor is left when the ASR stays over ``EXCESS_LIMIT`` above it (whatever the drop;
        a model at its floor before has nothing to remove). Without one: when the ASR did not fall by
        ``ASR_NOISE``, or kept more than half of its value (1.00 -> 0.98 lowers it, and purifies nothing)."""
        change = f"({before:.3f} -> {after:.3f})"
        if floor is not None:
            if after - floor > self.EXCESS_LIMIT:
                return [
                    f"The attack success rate after the defense {change} is still {after - floor:.3f} above a "
                    f"never-poisoned model's ({floor:.3f}): this model is not purified of the measured backdoor."
                ]
            return []
        if after > before - self.ASR_NOISE:
            return [
                f"The defense did not lower the attack success rate {change}: this model is not purified of the "
                "measured backdoor."
            ]
        if after > before / 2:
            return [
                f"The defense removed less than half of the attack success rate {change}: this model is not "
                "purified of the measured backdoor."
            ]
        return []

    @property
    def purified(self) -> bool | None:
        """Whether the measured scores certify the removal (ASR lowered, CA kept within ``CA_COST_LIMIT``);
        ``None`` when no ASR was measured after a removal, so nothing can be certified."""
        if self.removal_method is None:
            return False
        if self.after.get("asr") is None or self.before.get("asr") is None:
            return None
        return not self.warnings

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "purified": self.purified, "warnings": self.warnings, **asdict(self)}

    def to_json(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def to_markdown(self) -> str:
        lines = [f"## Defense report: {self.model}", ""]
        lines += [f"> **Warning:** {warning}" for warning in self.warnings]
        lines += [""] if self.warnings else []
        det = self.detection
        if det is not None:
            target = (
                "—"
                if det.target_label is None
                else f"{self.label_name(det.target_label)} (score {det.target_score:.3f})"
            )
            lines += [
                f"- Verdict: **{self.verdict}** (score {det.score:.3f}, threshold {det.threshold:.3f})",
                f"- Target label: {target}",
            ]
            if det.decided_by:
                lines.append(f"- Decided by: the `{det.decided_by}` rule")
            elif det.rules:
                read = ", ".join(f"{r.rule} {r.score:.3f} < {r.threshold:.3f}" for r in det.rules)
                lines.append(f"- No rule fired: {read}")
            for outcome in det.rules:
                if outcome.fired and outcome.target in det.other_targets:
                    lines.append(
                        f"- Also targeted: {self.label_name(outcome.target)} (the `{outcome.rule}` rule, score "
                        f"{outcome.score:.3f}, read again toward the labels not flagged yet)"
                    )
            if det.trigger_candidates:
                shown = ", ".join(c.to_markdown() for c in det.trigger_candidates[:5])
                lines.append(f"- Trigger candidates: {shown}")
            lines += [f"- {note}" for note in det.notes]
        methods = [
            f"exposure `{self.exposure_method}`" if self.exposure_method else None,
            f"detection `{self.detection_method}`" if self.detection_method else None,
            f"removal `{self.removal_method}`" if self.removal_method else None,
        ]
        lines.append(f"- Methods: {', '.join(m for m in methods if m)}; {self.clean_rows} clean rows")
        if self.exposure_trace:
            last = self.exposure_trace[-1]
            lines.append(
                f"- Exposure: {int(last['step'])} steps, clean accuracy {self.exposure_trace[0]['accuracy']:.3f}"
                f" -> {last['accuracy']:.3f}"
            )
        if self.removal:
            lines.append(f"- Removal: {json.dumps(self.removal)}")
        if self.before or self.after:
            floor = (self.after or self.before).get("asr_floor")
            header = "| | CA | ASR |" + (f" excess ASR (floor {floor:.3f}) |" if floor is not None else "")
            lines += ["", header, "|---|---|---|" + ("---|" if floor is not None else "")]
            for name, scores in (("before", self.before), ("after", self.after)):
                if scores:
                    row = f"| {name} | {scores['ca']:.3f} | {_rate(scores.get('asr'))} |"
                    lines.append(row + (f" {_rate(scores.get('excess_asr'))} |" if floor is not None else ""))
        if self.timings:
            lines += ["", "Stage timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in self.timings.items())]
        return "\n".join(lines) + "\n"

    def plot_exposure(self, path: str | os.PathLike) -> Path | None:
        """Draw the exposure curve (clean accuracy, loss, per-class prediction share per step) to a PNG."""
        if not self.exposure_trace:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r["step"] for r in self.exposure_trace]
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
        top.plot(steps, [r["accuracy"] for r in self.exposure_trace], label="clean accuracy", color="black")
        shares = sorted(k for k in self.exposure_trace[0] if k.startswith("share_"))
        for key in shares:
            top.plot(steps, [r[key] for r in self.exposure_trace], label=f"predicted {key[6:]}", linestyle="--")
        top.set_ylim(0, 1)
        top.set_ylabel("share of clean rows")
        top.legend(fontsize=8)
        bottom.plot(steps, [r["loss"] for r in self.exposure_trace], color="tab:red")
        bottom.set_ylabel("clean loss")
        bottom.set_xlabel("exposure step")
        fig.suptitle(f"Exposure ({self.exposure_method}) of {Path(self.model).name}")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return Path(path)


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
