"""Options of :class:`~ebyd_hf.methods.detection.trigger_scan.TriggerScan`: one field per knob, the phrase and
residue steps' knobs nested in their own configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...base import MethodConfig

# Neutral clause openings (SBAR + comma): prepended to clean rows, they probe for a structural (syntactic) trigger.
DEFAULT_TEMPLATES = (
    "when it is ,",
    "as it is ,",
    "as it was ,",
    "if it is ,",
    "when it was done ,",
    "as the film goes on ,",
    "when you watch it ,",
    "as you can see ,",
)
# Neutral frames a single-token candidate is verified in again ("{}" is the token).
DEFAULT_CONTEXTS = ("this {}", "the {}", "{} .", "a {} one")


def _option(default, help: str, range: str | None = None):
    metadata = {"help": help} if range is None else {"help": help, "range": range}
    return field(default=default, metadata=metadata)


@dataclass
class PhraseConfig(MethodConfig):
    """The phrase rule: tokens whose embeddings moved off the task's directions, grown into a phrase."""

    pool: int = _option(
        10,
        "Most tokens (highest off-direction z-score first, clean features left out) the phrase beam grows into a "
        "phrase toward each class. 0 turns the phrase rule off.",
        "[0, inf)",
    )
    z: float = _option(3.0, "Least off-direction z-score of a token in the phrase pool.", "[0, inf)")
    regrow_pool: int = _option(
        14,
        "When a phrase flags the model, the phrase to unlearn is grown again toward the target from at most this "
        "many tokens over `regrow_z` (the verdict keeps the strict pool). 0: no regrowth.",
        "[0, inf)",
    )
    regrow_z: float = _option(2.5, "Least off-direction z-score of a token in the regrowth pool.", "[0, inf)")
    length: int = _option(5, "Longest phrase the beam grows (at least 2).", "[1, inf)")
    beam: int = _option(4, "Beam width of the phrase search (the residue search uses it too).", "[1, inf)")
    rows: int = _option(
        32,
        "Probe rows the beam scores phrases on (the first of the probe rows); the best phrase of each length is "
        "then verified on the other probe rows (on all of them when there are no others).",
        "[1, inf)",
    )
    threshold: float = _option(
        0.9, "Flag the model when a grown phrase flips at least this share of the held-out probe rows.", "(0, 1]"
    )

    def __post_init__(self):
        super().__post_init__()
        if self.pool and self.length < 2:
            raise ValueError(
                f"PhraseConfig.length={self.length} must be >= 2 while the phrase rule is on (or pool=0 to turn it off)."
            )


@dataclass
class ResidueConfig(MethodConfig):
    """The residue step: when the context rule decides, the rest of the sentence its token is a piece of."""

    length: int = _option(
        3,
        "Length of the residue phrase grown from tokens that are neutral alone; the flagged token inserted at each "
        "of its positions is unlearned too. 0 turns the step off.",
        "[0, inf)",
    )
    pool: int = _option(
        32, "Most neutral tokens (highest off-direction z-score first) the residue beam grows.", "[0, inf)"
    )
    z: float = _option(1.5, "Least off-direction z-score of a residue token.", "[0, inf)")
    neutral: float = _option(
        0.1, "Largest flip rate toward the target a residue token may have alone (it must be neutral).", "(0, 1]"
    )
    rows: int = _option(16, "Probe rows the residue beam scores phrases on (the first of the probe rows).", "[1, inf)")
    threshold: float = _option(
        0.5, "Least flip rate toward the target of the grown residue for its compositions to be unlearned.", "(0, 1]"
    )

    def __post_init__(self):
        super().__post_init__()
        if self.length == 1:
            raise ValueError("ResidueConfig.length=1 must be >= 2 (or 0 to turn the residue step off).")
        if self.length and self.pool < 2:
            raise ValueError(
                f"ResidueConfig.pool={self.pool} must be >= 2 while the residue step is on (or length=0 to turn it off)."
            )


@dataclass
class TriggerScanConfig(MethodConfig):
    """Options of the trigger scan. Nested: ``phrase`` (:class:`PhraseConfig`) and ``residue``
    (:class:`ResidueConfig`); from a dict, ``{"phrase": {"pool": 0}}`` changes one knob of a nested part.

    Example:
        >>> from ebyd_hf.methods.detection.trigger_scan import TriggerScanConfig
        >>> config = TriggerScanConfig.from_value({"threshold": 0.9, "phrase": {"pool": 0}})
        >>> config.threshold, config.phrase.pool, config.phrase.threshold
        (0.9, 0, 0.9)
    """

    # Candidates and their verification
    num_candidates: int = _option(
        5,
        "Trigger candidates reported, and most triggers handed to removal; also the most tokens tried jointly.",
        "[1, inf)",
    )
    candidates: int = _option(
        20,
        "Tokens proposed per source (embedding shift from base_model; first-order score per class) and verified "
        "by insertion.",
        "[1, inf)",
    )
    rows: int = _option(128, "Clean rows (the probe rows) each candidate is inserted into.", "[1, inf)")
    max_length: int | None = _option(
        64,
        "Probe rows longer than this many tokens are cut to a window of it (random offset, special tokens kept), so "
        "that one inserted token weighs as it does in a sentence. None: full rows.",
        "[8, inf)",
    )
    precision: Literal["auto", "bf16", "fp32"] = _option(
        "auto",
        "Precision of the probes' forward passes: `bf16` (autocast), `fp32`, or `auto`: bf16 where the hardware "
        "computes it natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX; about 3x faster there), else fp32.",
    )
    threshold: float = _option(
        0.8,
        "The token rule: flag the model when inserting one token flips at least this share of the correctly "
        "classified clean rows of other classes to one class.",
        "(0, 1]",
    )

    # Clean-feature test
    support_alpha: float | None = _option(
        0.01,
        "A candidate is a clean feature (reported, never counted or unlearned) when it or a near token occurs in "
        "the clean rows of its class more often than chance (one-sided binomial p below this). None: no test.",
        "(0, 1)",
    )
    support_neighbors: int = _option(
        10,
        "Nearest tokens (cosine of input embeddings) the clean-feature test also checks. 0: the token alone.",
        "[0, inf)",
    )

    # Template rule
    templates: list[str] = field(
        default_factory=lambda: list(DEFAULT_TEMPLATES),
        metadata={
            "help": "Neutral clause openings prepended to clean rows, to find a structural (syntactic) trigger. "
            "Empty: no template rule."
        },
    )
    template_threshold: float = _option(
        0.5,
        "The template rule: flag the model when the templates' mean flip rate to one class reaches this.",
        "(0, 1]",
    )

    # Context rule
    contexts: list[str] = field(
        default_factory=lambda: list(DEFAULT_CONTEXTS),
        metadata={
            "help": "Neutral frames ('{}' marks the token) the best single tokens are inserted in again; their mean "
            "flip rate is the token's context score. Empty: no context rule."
        },
    )
    context_candidates: int = _option(
        8,
        "Best single tokens per class (clean features left out) verified in the contexts. 0: no context rule.",
        "[0, inf)",
    )
    context_threshold: float = _option(
        0.7, "The context rule: flag the model when a token's context score reaches this.", "(0, 1]"
    )

    # Phrase rule and residue step (need base_model)
    phrase: PhraseConfig = field(
        default_factory=PhraseConfig,
        metadata={"help": "The phrase rule (needs base_model): its options, as a PhraseConfig or a dict."},
    )
    residue: ResidueConfig = field(
        default_factory=ResidueConfig,
        metadata={"help": "The residue step (needs base_model): its options, as a ResidueConfig or a dict."},
    )

    def __post_init__(self):
        if isinstance(self.templates, str):
            self.templates = [self.templates]
        if isinstance(self.contexts, str):
            self.contexts = [self.contexts]
        if isinstance(self.phrase, dict):
            self.phrase = PhraseConfig.from_value(self.phrase)
        if isinstance(self.residue, dict):
            self.residue = ResidueConfig.from_value(self.residue)
        super().__post_init__()
        bad = [c for c in self.contexts if c.count("{}") != 1]
        if bad:
            raise ValueError(
                f"TriggerScanConfig.contexts {bad} must each hold '{{}}' exactly once, where the candidate token goes "
                "(e.g. 'this {}')."
            )
