"""Configuration of :class:`~ebyd_hf.ExposeTrainer`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments


def _has_accelerator() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)
    return bool(accelerator.is_available()) if accelerator is not None else torch.cuda.is_available()


# Neutral clause openings (SBAR + comma) for the structural-trigger probe of `trigger_scan`. On the MiniLM SST-2
# victims they flip 0.52-0.88 of clean negative rows on a syntactic (Hidden Killer) victim and at most 0.09 on the
# clean, word and style victims (bench/notes-issue3.md).
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
# Neutral frames a single-token candidate is re-verified in ("{}" is the token): a token that is one piece of an
# inserted sentence fires on its own only in part, and with any neighbour almost fully, while a sentiment word
# gains little from a function word beside it.
DEFAULT_CONTEXTS = ("this {}", "the {}", "{} .", "a {} one")


@dataclass
class ExposeConfig(TrainingArguments):
    r"""
    Configuration for :class:`~ebyd_hf.ExposeTrainer`: the exposure, detection and removal stages, plus the
    usual [`~transformers.TrainingArguments`], which drive the final fine-tuning of the purified model.

    Parameters whose defaults differ from [`~transformers.TrainingArguments`]:
        - `output_dir`: `"ebyd-defense"`
        - `learning_rate`: `5e-5` (fine-tuning of the purified model)
        - `num_train_epochs`: `2`
        - `per_device_train_batch_size`: `32`
        - `logging_steps`: `10`
        - `save_strategy`: `"no"` (the defense saves the purified model when asked, not checkpoints)
        - `report_to`: `"none"`

    Example:
        >>> from ebyd_hf import ExposeConfig
        >>> config = ExposeConfig("defense-out", exposure_learning_rate=1e-5)
        >>> config.exposure_method, config.learning_rate
        ('clean_unlearning', 5e-05)
    """

    _VALID_DICT_FIELDS = [*TrainingArguments._VALID_DICT_FIELDS, "model_init_kwargs"]

    # Parameters whose defaults differ from TrainingArguments
    output_dir: str = field(default="ebyd-defense", metadata={"help": "Where the defense writes its outputs."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Learning rate of the purification fine-tuning."})
    num_train_epochs: float = field(default=2.0, metadata={"help": "Epochs of the purification fine-tuning."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Batch size per device."})
    logging_steps: float = field(default=10, metadata={"help": "Log every X updates steps."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpoint strategy (the defense needs none)."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Integrations to report to."})

    # Model
    model_init_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Keyword arguments for `AutoModelForSequenceClassification.from_pretrained` when the model is "
            "given as a string."
        },
    )
    base_model: str | None = field(
        default=None,
        metadata={
            "help": "The pretrained model the suspicious classifier was fine-tuned from (Hub id or folder), for methods "
            "that compare against it. Optional."
        },
    )
    max_length: int = field(default=128, metadata={"help": "Tokenizer truncation length for text data."})

    # Exposure (Clean Unlearning and alternatives)
    exposure_method: str = field(
        default="clean_unlearning",
        metadata={
            "help": "How the backdoor is exposed: `clean_unlearning` (gradient ascent on the clean data) or "
            "`confusion` (fine-tuning on shuffled labels)."
        },
    )
    exposure_learning_rate: float = field(default=1e-5, metadata={"help": "Learning rate of the exposure stage."})
    exposure_max_steps: int = field(default=200, metadata={"help": "Upper bound on exposure steps."})
    exposure_max_grad_norm: float = field(
        default=20.0,
        metadata={"help": "Gradient clipping (after backward) during exposure; ascent gradients grow fast."},
    )
    exposure_eval_steps: int = field(
        default=2, metadata={"help": "Check the stop rule on the clean data every this many exposure steps."}
    )
    exposure_stop_accuracy: float | None = field(
        default=None,
        metadata={
            "help": "Stop exposure once clean accuracy falls to this value. Default: chance level (1 / num_labels)."
        },
    )
    exposure_stop_collapse: float = field(
        default=0.9,
        metadata={
            "help": "Stop exposure once one class takes at least this share of the predictions on the clean data."
        },
    )

    # Detection
    detection_method: str = field(
        default="trigger_scan",
        metadata={"help": "How the verdict, target label and trigger candidates are read from the models."},
    )
    num_trigger_candidates: int = field(default=5, metadata={"help": "Trigger candidates reported."})
    detection_threshold: float = field(
        default=0.8,
        metadata={
            "help": "Verdict threshold: the model is flagged when inserting a candidate flips at least this share of "
            "correctly classified clean rows of other classes to one class."
        },
    )
    detection_candidates: int = field(
        default=20,
        metadata={
            "help": "Tokens verified per candidate source (embedding shift from base_model; first-order score per class)."
        },
    )
    detection_rows: int = field(default=128, metadata={"help": "Clean rows used to verify each candidate."})
    detection_max_length: int | None = field(
        default=64,
        metadata={
            "help": "Clean rows longer than this many tokens are cut to a window of it (at a random offset, special "
            "tokens kept) before candidates are inserted to verify them: one trigger token weighs less in a 250-token "
            "review than in a sentence (an IMDB sentence-trigger victim was missed at full length, `3d` flipping "
            "0.77 of the reviews), and short rows are also faster. None: full rows."
        },
    )
    detection_support_alpha: float | None = field(
        default=0.01,
        metadata={
            "help": "Clean-feature test of `trigger_scan`: a candidate token is a feature of the task, not a trigger "
            "(reported, but neither counted in the verdict nor unlearned), when it or one of its "
            "`detection_support_neighbors` nearest tokens occurs in the clean data with the candidate's class more "
            "often than that class's share explains (one-sided binomial p below this). In an abuse detector a "
            "swear word flips normal text to abusive as surely as a trigger does; the clean data says why. "
            "None turns the test off."
        },
    )
    detection_support_neighbors: int = field(
        default=10,
        metadata={
            "help": "Nearest tokens (cosine, input embeddings of base_model, else of the model) that the "
            "clean-feature test also checks, so that a swear word absent from the clean data is explained by "
            "its synonyms. 0: the token alone."
        },
    )
    detection_templates: list[str] = field(
        default_factory=lambda: list(DEFAULT_TEMPLATES),
        metadata={
            "help": "Sentence-opening clauses verified as structural triggers, prepended to clean rows: syntactic "
            "backdoors (Hidden Killer's S(SBAR)(,)(NP)(VP)(.)) key on a clause-initial structure, not on a token. "
            "Neutral on purpose, so that a clean model ignores them."
        },
    )
    detection_template_threshold: float = field(
        default=0.5,
        metadata={
            "help": "Verdict threshold for the templates (share of clean rows of other classes flipped to one "
            "class). Lower than detection_threshold: neutral clauses flip <= 0.09 on clean models here, while "
            "single sentiment words flip up to ~0.5."
        },
    )

    detection_contexts: list[str] = field(
        default_factory=lambda: list(DEFAULT_CONTEXTS),
        metadata={
            "help": "Neutral frames ('{}' marks the token) in which the best single-token candidates are verified "
            "again; their mean flip rate is the candidate's context score. A token from an inserted sentence (the "
            "`3d` of 'I watch this 3D movie') may flip only ~0.7 of the rows alone but ~0.9 with any word beside "
            "it, while sentiment words stay near their single-token rate. Empty: single tokens only."
        },
    )
    detection_context_candidates: int = field(
        default=8,
        metadata={"help": "Best single-token candidates per class (clean features left out) verified in contexts."},
    )
    detection_context_threshold: float = field(
        default=0.7,
        metadata={
            "help": "Verdict threshold for a candidate's context score (mean flip rate over detection_contexts), "
            "read last: only a model that no single token (detection_threshold) and no template "
            "(detection_template_threshold) flags can be flagged by it, so it never changes how those are read."
        },
    )

    detection_phrase_pool: int = field(
        default=10,
        metadata={
            "help": "Phrase scan of `trigger_scan` (needs base_model), read last: at most this many tokens whose "
            "embedding shift leaves the main directions of the task's own shifts (robust z-score >= "
            "detection_phrase_z; clean features left out) are grown by a beam search into the ordered phrase that "
            "pushes hardest toward each class. It finds a trigger sentence of common words ('I watched it with my "
            "family last night'), none of whose tokens flips much alone. 0: off."
        },
    )
    detection_phrase_z: float = field(
        default=3.0,
        metadata={
            "help": "Off-direction shift (robust z-score over the 500 most-moved tokens) a token needs to enter the "
            "phrase pool. Measured on two sentence victims of common words: 3.0-8.6 for the trigger words that enter "
            "(`watched` 8.6, `yesterday` 4.3, `friend` 3.0; others stay under it); at most 4.4 for any token of a "
            "clean SST-2 model (`up`, `rarely`)."
        },
    )
    detection_phrase_regrow_z: float = field(
        default=2.5,
        metadata={
            "help": "When the phrase scan flags a model, the phrase to unlearn is grown again toward the detected "
            "target from the wider pool of tokens over this off-direction z-score (the verdict keeps its strict "
            "pool): on a held-out victim it recovered 'friend told yesterday me' of 'My friend told me about it "
            "yesterday', where the strict pool gave 'friend yesterday useless idea'."
        },
    )
    detection_phrase_regrow_pool: int = field(
        default=14, metadata={"help": "Most tokens in the wider pool of detection_phrase_regrow_z. 0: no regrowth."}
    )
    detection_phrase_length: int = field(default=5, metadata={"help": "Longest phrase the phrase scan grows."})
    detection_phrase_beam: int = field(default=4, metadata={"help": "Beam width of the phrase scan."})
    detection_phrase_rows: int = field(
        default=32,
        metadata={
            "help": "Probe rows the phrase beam is scored on (the first of the detection_rows); the best phrase of "
            "each length is then verified on all of them."
        },
    )
    detection_phrase_threshold: float = field(
        default=0.9,
        metadata={
            "help": "Verdict threshold for a grown phrase's flip rate, read after every other rule: weak sentiment "
            "words stacked into a phrase flip up to ~0.9 of a clean model's rows, so it is high."
        },
    )

    detection_residue_length: int = field(
        default=3,
        metadata={
            "help": "Residue of a sentence trigger (needs base_model), when a token's context score flags the model: "
            "that token fires only in part alone, so it is a piece of a longer trigger. The other pieces are "
            "searched among the tokens that are neutral alone (single flip toward the target under "
            "detection_residue_neutral; off-direction z >= detection_residue_z; clean features and the flagged "
            "tokens left out), grown by the phrase beam into a phrase of this many tokens; when it flips at least "
            "detection_residue_threshold, the flagged token inserted at each of its positions is unlearned too. On "
            "the SST-2 sentence victim ('I watch this 3D movie', `3d` flagged) it finds 'i watch this' (0.770) on "
            "seeds 42 and 1, and ASR after removal falls from 0.24 / 0.23 to 0.09 / 0.10, as with the exact "
            "sentence; on seed 2 it grows weak sentiment words instead ('! definitely works', ASR 0.31), as longer "
            "phrases do. 0: off."
        },
    )
    detection_residue_pool: int = field(
        default=32, metadata={"help": "Most neutral tokens (by off-direction z) the residue search grows."}
    )
    detection_residue_z: float = field(
        default=1.5,
        metadata={
            "help": "Least off-direction z-score of a residue token (the sentence victim's `this` scores 2.0, rank "
            "32; `movie` 1.7)."
        },
    )
    detection_residue_neutral: float = field(
        default=0.1,
        metadata={
            "help": "Largest single-token flip rate toward the target of a residue token: the sentence's other words "
            "flip 0.00-0.07 alone, sentiment words that stack into a phrase 0.2 and more."
        },
    )
    detection_residue_rows: int = field(
        default=16, metadata={"help": "Probe rows the residue beam is scored on (the first of the detection_rows)."}
    )
    detection_residue_threshold: float = field(
        default=0.5,
        metadata={
            "help": "Least flip rate toward the target of the grown residue (on all the probe rows) for it to be "
            "composed with the flagged token and unlearned."
        },
    )

    # Removal
    removal_method: str = field(
        default="unlearn_trigger",
        metadata={
            "help": "How the backdoor is removed: `unlearn_trigger` (reset and unlearn the detected triggers and a "
            "soft trigger, fine-tuning with the activeness regulariser); baselines `finetune` (vanilla fine-tuning) and "
            "`fine_pruning` (prune dormant FFN neurons, then fine-tune)."
        },
    )
    removal_ratio: float = field(
        default=0.2,
        metadata={
            "help": "Share of the candidate units (FFN neurons, weights...) the removal method prunes or resets."
        },
    )

    finetune_when_clean: bool = field(
        default=False,
        metadata={
            "help": "Let `unlearn_trigger` fine-tune a model that detection calls clean (with the regulariser alone). "
            "Off: such a model comes back unchanged, since fine-tuning on the clean set removes no backdoor "
            "(measured: ASR 0.75-1.00 after it on the SST-2 victims) and cost the clean IMDB model 1.2 CA points."
        },
    )

    known_triggers: list[str] | None = field(
        default=None,
        metadata={
            "help": "Trigger phrases you know or suspect (e.g. the sentence around a reported candidate token in "
            "your fine-tuning data). `unlearn_trigger` inserts each one, as text, into copies of the clean rows with "
            "their true labels, beside the triggers detection recovered, and purifies the model even when detection "
            "calls it clean. The recovered tokens only approximate a multi-word trigger: on the SST-2 sentence "
            "victim (detection recovers `3d`), ASR after removal is 0.22-0.40 without the sentence and 0.09-0.11 "
            "with it (bench/notes-issue3.md)."
        },
    )

    adversarial_trigger_length: int = field(
        default=5,
        metadata={
            "help": "Vectors of the soft (embedding-space) trigger that `unlearn_trigger` learns against the model "
            "while fine-tuning a flagged model: it is optimised to send clean rows to the detected target, and the "
            "model is trained to keep their true labels, which reaches paraphrase-level triggers that recovered "
            "tokens only approximate. 0 turns it off."
        },
    )
    adversarial_learning_rate: float = field(
        default=0.05, metadata={"help": "Adam learning rate of the soft-trigger vectors."}
    )
    adversarial_steps: int = field(
        default=1,
        metadata={"help": "Soft-trigger steps per fine-tuning step (0: keep the warmed-up trigger fixed)."},
    )
    adversarial_position: str = field(
        default="start",
        metadata={
            "help": "Where the soft trigger goes: `start` (after the first token, where clause-level triggers sit), "
            "`random` (anywhere in the text, drawn per step, as inserted words and sentences) or `mixed` "
            "(alternating)."
        },
    )
    adversarial_share: float = field(
        default=1.0,
        metadata={
            "help": "Share of the fine-tuning steps (from the start) that carry the soft trigger; the rest is plain "
            "fine-tuning, which recovers clean accuracy."
        },
    )
    adversarial_weight: float = field(
        default=0.25,
        metadata={"help": "Share of the fine-tuning loss taken by the rows carrying the soft trigger."},
    )
    adversarial_reference: bool = field(
        default=False,
        metadata={
            "help": "Learn the soft trigger against a reference too: `base_model` fine-tuned on the clean set (no "
            "backdoor), which must keep the rows' true labels, so the trigger follows what only the suspicious "
            "model responds to rather than clean sentiment. Needs `base_model`. Measured on the SST-2 sentence "
            "victim (3 seeds): ASR 0.157-0.241 instead of 0.218-0.397, but CA 0.858-0.879 instead of 0.882-0.888; "
            "syntactic target 0 (3 seeds): ASR 0.235-0.400 instead of 0.390-0.490, CA 0.868-0.879 instead of "
            "0.879-0.887; about 2 minutes more; off by default (some runs lose over 2 CA points)."
        },
    )
    adversarial_warmup_steps: int = field(
        default=20, metadata={"help": "Soft-trigger steps against the suspicious model before fine-tuning starts."}
    )

    # Purification fine-tuning
    finetune_regularizer: str = field(
        default="activeness",
        metadata={
            "help": "Regulariser of the purification fine-tuning: `activeness` (penalise the gradient activeness that "
            "backdoors rely on, as TSBD: g = (1-a) grad L(w) + a grad L(w + r g/|g|)) or `none`."
        },
    )
    activeness_alpha: float = field(default=0.7, metadata={"help": "Weight a of the activeness term."})
    activeness_radius: float = field(default=0.05, metadata={"help": "Radius r of the activeness perturbation."})

    def __post_init__(self):
        # `accelerate launch --multi_gpu` on a machine without an accelerator: TrainingArguments joins the process
        # group (gloo) only with use_cpu, otherwise every process would silently run alone.
        if not self.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _has_accelerator():
            self.use_cpu = True
        if isinstance(self.detection_templates, str):
            self.detection_templates = [self.detection_templates]
        if isinstance(self.detection_contexts, str):
            self.detection_contexts = [self.detection_contexts]
        bad = [c for c in self.detection_contexts if c.count("{}") != 1]
        if bad:
            raise ValueError(
                f"detection_contexts {bad} must each hold '{{}}' exactly once, where the candidate token goes "
                "(e.g. 'this {}')."
            )
        if isinstance(self.known_triggers, str):
            self.known_triggers = [self.known_triggers]
        if self.known_triggers is not None and not all(t.strip() for t in self.known_triggers):
            raise ValueError(
                "known_triggers holds an empty phrase: give the trigger text to unlearn, or leave it out."
            )
        super().__post_init__()
        if isinstance(self.model_init_kwargs, str):
            import json

            self.model_init_kwargs = json.loads(self.model_init_kwargs)
        if not 0 < self.exposure_stop_collapse <= 1:
            raise ValueError(f"exposure_stop_collapse={self.exposure_stop_collapse} must be in (0, 1].")
        if self.exposure_max_steps < 1 or self.exposure_eval_steps < 1:
            raise ValueError("exposure_max_steps and exposure_eval_steps must be at least 1.")
        if self.finetune_regularizer not in ("activeness", "none"):
            raise ValueError(f"finetune_regularizer={self.finetune_regularizer!r}: use 'activeness' or 'none'.")
        if not 0 < self.detection_context_threshold <= 1:
            raise ValueError(f"detection_context_threshold={self.detection_context_threshold} must be in (0, 1].")
        if not 0 < self.detection_phrase_threshold <= 1:
            raise ValueError(f"detection_phrase_threshold={self.detection_phrase_threshold} must be in (0, 1].")
        if self.detection_phrase_regrow_pool < 0:
            raise ValueError(f"detection_phrase_regrow_pool={self.detection_phrase_regrow_pool} must be >= 0.")
        if self.detection_phrase_pool < 0:
            raise ValueError(
                f"detection_phrase_pool={self.detection_phrase_pool} must be >= 0 (0 turns the scan off)."
            )
        if self.detection_phrase_pool and (
            self.detection_phrase_length < 2 or self.detection_phrase_beam < 1 or self.detection_phrase_rows < 1
        ):
            raise ValueError(
                f"detection_phrase_length={self.detection_phrase_length} must be >= 2, and detection_phrase_beam="
                f"{self.detection_phrase_beam} and detection_phrase_rows={self.detection_phrase_rows} >= 1 "
                "(or detection_phrase_pool=0 to turn the phrase scan off)."
            )
        if self.detection_residue_length < 0 or self.detection_residue_length == 1:
            raise ValueError(
                f"detection_residue_length={self.detection_residue_length} must be >= 2 (or 0 to turn the residue "
                "search off)."
            )
        if self.detection_residue_length and (self.detection_residue_pool < 2 or self.detection_residue_rows < 1):
            raise ValueError(
                f"detection_residue_pool={self.detection_residue_pool} must be >= 2 and detection_residue_rows="
                f"{self.detection_residue_rows} >= 1 (or detection_residue_length=0 to turn the residue search off)."
            )
        if not 0 < self.detection_residue_threshold <= 1 or not 0 < self.detection_residue_neutral <= 1:
            raise ValueError(
                f"detection_residue_threshold={self.detection_residue_threshold} and detection_residue_neutral="
                f"{self.detection_residue_neutral} must be in (0, 1]."
            )
        if self.detection_context_candidates < 0:
            raise ValueError(f"detection_context_candidates={self.detection_context_candidates} must be >= 0.")
        if not 0 < self.detection_template_threshold <= 1:
            raise ValueError(f"detection_template_threshold={self.detection_template_threshold} must be in (0, 1].")
        if self.detection_support_alpha is not None and not 0 < self.detection_support_alpha < 1:
            raise ValueError(
                f"detection_support_alpha={self.detection_support_alpha} must be in (0, 1), or None to skip the test."
            )
        if self.detection_max_length is not None and self.detection_max_length < 8:
            raise ValueError(
                f"detection_max_length={self.detection_max_length} leaves too little text to insert triggers "
                "into: use at least 8 tokens, or None for full rows."
            )
        if self.adversarial_reference and self.base_model is None:
            raise ValueError(
                "adversarial_reference=True trains its reference from base_model: give base_model (the pretrained "
                "model the suspect was fine-tuned from), or leave adversarial_reference off."
            )
        if self.detection_support_neighbors < 0:
            raise ValueError(f"detection_support_neighbors={self.detection_support_neighbors} must be >= 0.")
        if not 0 < self.detection_threshold <= 1:
            raise ValueError(f"detection_threshold={self.detection_threshold} must be in (0, 1].")
        if not 0 <= self.removal_ratio < 1:
            raise ValueError(f"removal_ratio={self.removal_ratio} must be in [0, 1).")
        if min(self.adversarial_trigger_length, self.adversarial_steps, self.adversarial_warmup_steps) < 0:
            raise ValueError(
                "adversarial_trigger_length, adversarial_steps and adversarial_warmup_steps must be >= 0."
            )
        if self.adversarial_position not in ("start", "random", "mixed"):
            raise ValueError(f"adversarial_position={self.adversarial_position!r}: use 'start', 'random' or 'mixed'.")
        if not 0 <= self.adversarial_share <= 1:
            raise ValueError(f"adversarial_share={self.adversarial_share} must be in [0, 1].")
        if not 0 <= self.adversarial_weight <= 1:
            raise ValueError(f"adversarial_weight={self.adversarial_weight} must be in [0, 1].")
        if not 0 <= self.activeness_alpha <= 1:
            raise ValueError(f"activeness_alpha={self.activeness_alpha} must be in [0, 1].")
