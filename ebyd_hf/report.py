"""What a defense found and did: :class:`DetectionResult` and :class:`DefenseReport` (JSON, markdown, a PNG
of the exposure curve)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DetectionResult:
    """The detection verdict: is the model backdoored, which label is targeted, what the trigger looks like."""

    backdoored: bool
    score: float
    """Backdoor score; ``backdoored`` is ``score >= threshold``."""
    threshold: float
    target_label: int | None
    target_score: float | None
    trigger_candidates: list[dict[str, Any]] = field(default_factory=list)
    """Best first: ``{"trigger": str, "score": float, ...}``."""
    details: dict[str, Any] = field(default_factory=dict)


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

    @property
    def verdict(self) -> str:
        if self.detection is None:
            return "not run"
        return "backdoored" if self.detection.backdoored else "clean"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, **asdict(self)}

    def to_json(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def to_markdown(self) -> str:
        lines = [f"## Defense report: {self.model}", ""]
        det = self.detection
        if det is not None:
            target = "—" if det.target_label is None else f"{det.target_label} (score {det.target_score:.3f})"
            lines += [
                f"- Verdict: **{self.verdict}** (score {det.score:.3f}, threshold {det.threshold:.3f})",
                f"- Target label: {target}",
            ]
            if det.trigger_candidates:
                shown = ", ".join(_candidate(c) for c in det.trigger_candidates[:5])
                lines.append(f"- Trigger candidates: {shown}")
            residue = det.details.get("residue")
            if residue and residue.get("phrase"):
                phrase = residue["phrase"]
                use = (
                    f"`{residue['flagged']}` unlearned at each of its {len(phrase['token_ids']) + 1} positions"
                    if residue["used"]
                    else "under detection_residue_threshold, not unlearned"
                )
                lines.append(
                    f'- Residue of `{residue["flagged"]}`: "{phrase["trigger"]}" ({phrase["score"]:.3f}); {use}'
                )
            looked_up = det.details.get("trigger_contexts")
            if looked_up:
                found = [c for c in looked_up["contexts"] if c["rows"]]
                shown = ", ".join(
                    f'`{c["trigger"]}` -> "{c["phrase"]}" ({c["phrase_rows"]} of {c["rows"]} rows)' for c in found
                )
                lines.append(
                    f"- Trigger contexts in {looked_up['source']} ({looked_up['rows']} rows): {shown or 'none found'}"
                )
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
            lines += ["", "| | CA | ASR |", "|---|---|---|"]
            for name, scores in (("before", self.before), ("after", self.after)):
                if scores:
                    asr = "—" if scores.get("asr") is None else f"{scores['asr']:.3f}"
                    lines.append(f"| {name} | {scores['ca']:.3f} | {asr} |")
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


def _candidate(candidate: dict) -> str:
    """A trigger candidate for the markdown report: its flip rate, its context score when it was verified in
    neutral frames, whether it is a phrase grown by the phrase scan, and whether the clean data explains it."""
    notes = [f"{candidate['score']:.3f}"]
    if "context_score" in candidate:
        notes.append(f"in context {candidate['context_score']:.3f}")
    if "phrase" in candidate.get("sources", ()):
        notes.append("grown phrase")
    if candidate.get("clean_feature"):
        notes.append("clean feature")
    return f"`{candidate['trigger']}` ({', '.join(notes)})"
