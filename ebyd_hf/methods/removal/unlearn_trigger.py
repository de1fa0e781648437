"""Trigger unlearning: teach the model that the recovered triggers mean nothing.

When detection found triggers, their embedding rows are reset to the pretrained base (when ``base_model`` is
known) and the model is fine-tuned on the clean set plus copies of it with the triggers inserted and the true
labels kept (as Neural Cleanse unlearns its reversed trigger), with the regulariser asked for; the user's
``known_triggers`` are inserted the same way (a model with known triggers is purified whatever the verdict). A
flagged model is also fine-tuned against a soft trigger (:class:`~ebyd_hf.adversarial.SoftTrigger`,
``soft_trigger_*`` options), which reaches what the recovered tokens only approximate (sentences, syntactic
templates, styles). A model that detection calls clean, with no known triggers, comes back unchanged, unless
``finetune_when_clean`` asks for fine-tuning with the regulariser alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from ...adversarial import SoftTrigger
from ...trigger_search import insert_tokens
from ..base import RemovalMethod, StageHooks, register_removal
from .activeness import ActivenessHooks, FinetuneRegularizerConfig


def triggered_copies(
    dataset: Dataset, triggers: list[list[int]], seed: int, starts: list[bool] | None = None
) -> Dataset:
    """Every row of a tokenized dataset, once more with a random trigger inserted at a random position (at the
    start of the text for the triggers whose ``starts`` flag is set); labels kept."""
    rng = np.random.default_rng(seed)
    starts = starts or [False] * len(triggers)
    columns = {name: list(dataset[name]) for name in dataset.column_names}
    extra = {name: [] for name in columns}
    for row in range(len(dataset)):
        ids = columns["input_ids"][row]
        choice = int(rng.integers(len(triggers)))
        trigger = triggers[choice]
        position = int(rng.integers(1, max(len(ids) - 1, 1) + 1))
        if starts[choice]:
            position = 1
        extra["input_ids"].append(insert_tokens(ids, trigger, position))
        for name in columns:
            if name in ("attention_mask", "token_type_ids"):
                fill = columns[name][row][0] if name == "token_type_ids" else 1
                extra[name].append(insert_tokens(columns[name][row], [fill] * len(trigger), position))
            elif name != "input_ids":
                extra[name].append(columns[name][row])
    return Dataset.from_dict({name: columns[name] + extra[name] for name in columns})


def reference_model(trainer, model: torch.nn.Module) -> torch.nn.Module:
    """``base_model`` with a new classification head, fine-tuned on the clean set (plain cross-entropy, lr 1e-4,
    5 epochs): a model of the same task without the backdoor."""
    from transformers import AutoModelForSequenceClassification

    config = model.config
    reference = AutoModelForSequenceClassification.from_pretrained(
        trainer.args.base_model,
        num_labels=config.num_labels,
        id2label=config.id2label,
        label2id=config.label2id,
        trust_remote_code=trainer.args.trust_remote_code,
    )
    stage = trainer.stage_args(
        learning_rate=1e-4,
        num_train_epochs=5,
        max_steps=-1,
        eval_strategy=IntervalStrategy.NO,
        save_strategy=SaveStrategy.NO,
        load_best_model_at_end=False,
    )
    reference = reference.to(trainer.args.device)
    trainer.train_stage(reference, stage)
    reference.requires_grad_(False)
    return reference.eval()


@dataclass
class UnlearnTriggerConfig(FinetuneRegularizerConfig):
    """Options of trigger unlearning: the fine-tuning regulariser, and the soft trigger learned against the model
    while it is fine-tuned."""

    finetune_when_clean: bool = field(
        default=False,
        metadata={
            "help": "Fine-tune a model that detection calls clean (with the regulariser alone). Off: such a model "
            "comes back unchanged."
        },
    )
    soft_trigger_length: int = field(
        default=5,
        metadata={
            "help": "Vectors of the soft (embedding-space) trigger learned against a flagged model while it is "
            "fine-tuned to keep the true labels of rows carrying it. 0 turns it off.",
            "range": "[0, inf)",
        },
    )
    soft_trigger_learning_rate: float = field(
        default=0.05, metadata={"help": "Adam learning rate of the soft-trigger vectors.", "range": "(0, inf)"}
    )
    soft_trigger_steps: int = field(
        default=1,
        metadata={
            "help": "Soft-trigger steps per fine-tuning step (0: keep the warmed-up trigger fixed).",
            "range": "[0, inf)",
        },
    )
    soft_trigger_warmup_steps: int = field(
        default=20,
        metadata={"help": "Soft-trigger steps against the suspicious model before fine-tuning.", "range": "[0, inf)"},
    )
    soft_trigger_warmup_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Clean rows per warm-up step (default: per_device_eval_batch_size).",
            "range": "[1, inf)",
        },
    )
    soft_trigger_update: Literal["own_step", "shared"] = field(
        default="own_step",
        metadata={
            "help": "How the soft trigger moves during fine-tuning: `own_step`, its own forward and backward pass "
            "toward the target (`soft_trigger_steps` per step); `shared`, from the fine-tuning pass itself (up the "
            "true-label loss of the rows of other classes carrying it), at no extra pass (one step per optimiser "
            "step; `soft_trigger_steps=0` still keeps it fixed; not with `soft_trigger_reference`)."
        },
    )
    soft_trigger_rows: float = field(
        default=1.0,
        metadata={
            "help": "Share of each batch's rows that also go through with the soft trigger (drawn per step).",
            "range": "(0, 1]",
        },
    )
    step_budget: Literal["epochs", "finetune"] = field(
        default="epochs",
        metadata={
            "help": "`epochs`: num_train_epochs over the clean rows and their triggered copies (twice a plain "
            "fine-tune's steps); `finetune`: a plain fine-tune's steps over the same rows and copies."
        },
    )
    soft_trigger_position: Literal["start", "random", "mixed"] = field(
        default="start",
        metadata={
            "help": "Where the soft trigger goes: after the first token (`start`), anywhere (`random`, drawn per "
            "step) or alternating (`mixed`)."
        },
    )
    soft_trigger_share: float = field(
        default=1.0,
        metadata={
            "help": "Share of the fine-tuning steps, from the start, that carry the soft trigger.",
            "range": "[0, 1]",
        },
    )
    soft_trigger_weight: float = field(
        default=0.25,
        metadata={
            "help": "Share of the fine-tuning loss taken by the rows carrying the soft trigger.",
            "range": "[0, 1]",
        },
    )
    soft_trigger_reference: bool = field(
        default=False,
        metadata={
            "help": "Learn the soft trigger against a reference too (`base_model` fine-tuned on the clean set), "
            "which must keep the true labels. Needs `base_model`; about 2 minutes more."
        },
    )

    def check_with(self, args) -> None:
        if self.soft_trigger_reference and self.soft_trigger_update == "shared":
            raise ValueError(
                "soft_trigger_reference=True needs the trigger's own steps (the reference's loss is not in the "
                "fine-tuning pass): use soft_trigger_update='own_step', or leave soft_trigger_reference off."
            )
        if self.soft_trigger_reference and args.base_model is None:
            raise ValueError(
                "soft_trigger_reference=True trains its reference from base_model: give base_model (the pretrained "
                "model the suspect was fine-tuned from), or leave soft_trigger_reference off."
            )


def _mean_over_processes(trainer):
    """A mean over the processes of a distributed run (so every process keeps the same soft trigger), or None."""
    if trainer.accelerator.num_processes <= 1:
        return None
    return lambda grad: trainer.accelerator.reduce(grad, reduction="mean")


class UnlearningHooks(StageHooks):
    """The purification stage of :class:`UnlearnTrigger`: under a soft trigger (for the first ``share`` of the
    steps) the loss is taken on each batch clean and triggered, with the true labels; the step is the activeness
    step when the regulariser is on. With several soft triggers (one per detected target) each optimiser step takes
    the next one in turn, so a second target costs no more steps."""

    def __init__(self, config: UnlearnTriggerConfig, adversaries: list[SoftTrigger]):
        self.config, self.adversaries = config, list(adversaries)
        self.activeness = ActivenessHooks.from_config(config)
        self._step, self._position = -1, 1
        self._live: torch.Tensor | None = None  # the trigger's vectors in this step's pass (shared update)
        self._fresh = False  # a training step began and its first forward pass has not run yet
        self._pending: torch.Tensor | None = None  # the shared update's gradient, summed over micro-batches

    @property
    def adversary(self) -> SoftTrigger | None:
        """The soft trigger of the current optimiser step."""
        if not self.adversaries:
            return None
        return self.adversaries[max(self._step, 0) % len(self.adversaries)]

    def training_step(self, trainer, model, inputs, num_items_in_batch, step):
        self._fresh = True
        if self.activeness is None:
            loss = step(model, inputs, num_items_in_batch)
        else:
            loss = self.activeness.training_step(trainer, model, inputs, num_items_in_batch, step)
        live, self._live, self._fresh = self._live, None, False
        if live is not None:  # the shared update: up the true-label loss of the rows the trigger should flip
            grad = torch.zeros_like(live) if live.grad is None else -live.grad
            scaler = getattr(trainer.accelerator, "scaler", None)
            if scaler is not None:  # fp16: the pass's gradients carry the loss scale
                grad = grad / scaler.get_scale()
            self._pending = grad if self._pending is None else self._pending + grad
            if trainer.accelerator.sync_gradients:  # one trigger step per optimiser step, as own_step takes
                self.adversary.apply_gradient(self._pending, _mean_over_processes(trainer))
                self._pending = None
        return loss

    def compute_loss(self, trainer, model, inputs, return_outputs=False, num_items_in_batch=None):
        state = trainer.state
        if self.adversary is None or not model.training:
            return None
        if state.global_step >= self.config.soft_trigger_share * state.max_steps:
            return None
        shared = self.config.soft_trigger_update == "shared" and self.config.soft_trigger_steps > 0
        if self._step != state.global_step:  # the activeness step calls this twice per update
            self._step = state.global_step
            self._position = self._draw_position(trainer, inputs)
            if self.config.soft_trigger_update == "own_step":
                self._move_trigger(trainer, model, inputs)
        labels = inputs["labels"]
        rows = self._draw_rows(trainer, len(labels), labels.device)
        picked = labels if rows is None else labels[rows]
        vectors = self.adversary.vectors.detach().to(labels.device)
        if shared and self._fresh:  # the step's first pass: the trigger's gradient comes free
            self._fresh = False
            self._live = vectors.clone().requires_grad_(True)
            other = (picked != self.adversary.target)[:, None, None]
            vectors = torch.where(other, self._live, vectors)
        triggered = self.adversary.model_inputs(
            model, inputs, vectors, pad_clean=True, position=self._position, rows=rows
        )
        outputs = model(**triggered)
        losses = F.cross_entropy(outputs.logits.float(), torch.cat([labels, picked]), reduction="none")
        weight = self.config.soft_trigger_weight
        loss = (1 - weight) * losses[: len(labels)].mean() + weight * losses[len(labels) :].mean()
        return (loss, outputs) if return_outputs else loss

    def _draw_rows(self, trainer, batch: int, device) -> torch.Tensor | None:
        """The batch rows that also go through with the soft trigger (``soft_trigger_rows``), or None for all."""
        share = self.config.soft_trigger_rows
        if share >= 1:
            return None
        generator = torch.Generator().manual_seed(trainer.args.seed * 100_019 + self._step)
        count = max(1, round(share * batch))
        return torch.randperm(batch, generator=generator)[:count].sort().values.to(device)

    def _draw_position(self, trainer, inputs) -> int:
        """Where the trigger goes this step, by ``soft_trigger_position``: after the first token, or at a random
        position (each soft trigger alternates positions over its own steps under ``mixed``)."""
        step, mode = self._step, self.config.soft_trigger_position
        turn = step // len(self.adversaries)
        if mode == "random" or (mode == "mixed" and turn % 2 == 1):
            generator = torch.Generator().manual_seed(trainer.args.seed * 100_003 + step)
            return self.adversary.random_position(inputs, generator)
        return 1

    def _move_trigger(self, trainer, model, inputs) -> None:
        """The trigger's own steps against the current weights, once per optimiser step."""
        plain = trainer.accelerator.unwrap_model(model)
        reduce = _mean_over_processes(trainer)
        for _ in range(self.config.soft_trigger_steps):
            self.adversary.step(plain, inputs, reduce, position=self._position)


@register_removal
class UnlearnTrigger(RemovalMethod):
    name: ClassVar[str] = "unlearn_trigger"
    config_class: ClassVar[type] = UnlearnTriggerConfig
    uses_exposure: ClassVar[bool] = False
    uses_known_triggers: ClassVar[bool] = True
    modalities: ClassVar[tuple[str, ...]] = ("text",)

    def insertion_room(self) -> int:
        return self.config.soft_trigger_length

    def soft_trigger(
        self, trainer, model: torch.nn.Module, target: int, init_ids: list[int] | None, reference=None
    ) -> SoftTrigger:
        """A soft trigger towards ``target``, started from a recovered trigger's embeddings and warmed up against
        the (still unchanged) suspicious model on the clean set (and against ``reference``, when given)."""
        config = self.config
        adversary = SoftTrigger(
            model,
            target,
            config.soft_trigger_length,
            config.soft_trigger_learning_rate,
            init_ids,
            trainer.args.seed,
            reference=reference,
        )

        def cycled():  # the clean set is never empty (the trainer refuses it), so this does not spin
            while True:
                yield from trainer.clean_batches(model, config.soft_trigger_warmup_batch_size)

        model.eval()
        rates = [adversary.step(model, batch) for batch in islice(cycled(), config.soft_trigger_warmup_steps)]
        flips = [rate for rate in rates if rate is not None]
        model.train()
        adversary.warmup_flip_rate = round(flips[-1], 4) if flips else None
        return adversary

    def purify(self, trainer, exposure, detection):
        if detection is None:
            detection = trainer.detect()
        model = trainer.fresh_copy()
        known = trainer.known_triggers
        if not detection.backdoored and not known and not self.config.finetune_when_clean:
            return model.eval(), {"triggers_unlearned": [], "skipped": "no backdoor detected"}
        recovered = list(detection.triggers) if detection.backdoored else []
        chosen = known + recovered
        account = {"triggers_unlearned": [c.trigger for c in chosen]}
        if known:
            account["known_triggers"] = [c.trigger for c in known]
        adversaries = []
        if detection.backdoored and detection.target_label is not None and self.config.soft_trigger_length:
            reference = reference_model(trainer, model) if self.config.soft_trigger_reference else None
            # One per detected target, started from a trigger recovered toward it; the first may fall back on any.
            for target in [detection.target_label, *detection.other_targets]:
                starts = [c for c in recovered if c.target == target]
                if not adversaries:
                    starts = starts or recovered or known
                start = starts[0].token_ids if starts else None
                adversaries.append(self.soft_trigger(trainer, model, target, start, reference))
            first = adversaries[0]
            account["soft_trigger"] = {
                "length": first.length,
                "warmup_flip_rate": first.warmup_flip_rate,
                "reference": first.reference is not None,
            }
            if len(adversaries) > 1:
                account["soft_trigger"]["targets"] = [a.target for a in adversaries]
                account["soft_trigger"]["warmup_flip_rates"] = [a.warmup_flip_rate for a in adversaries]
        dataset = None
        if chosen:
            base = trainer.load_base_model()
            if base is not None:
                tokens = sorted({t for c in chosen if c.reset_embeddings for t in c.token_ids})
                with torch.no_grad():
                    table = model.get_input_embeddings().weight
                    table[tokens] = base.get_input_embeddings().weight[tokens].to(table.device, table.dtype)
                account["embedding_rows_reset"] = len(tokens)
            starts = [c.position == "start" for c in chosen]
            dataset = triggered_copies(trainer.train_dataset, [c.token_ids for c in chosen], trainer.args.seed, starts)
            account["unlearning_rows"] = len(dataset)
        overrides = {}
        budget = self.config.step_budget == "finetune" and trainer.args.max_steps <= 0
        if dataset is not None and budget:  # a plain fine-tune's steps
            overrides["num_train_epochs"] = trainer.args.num_train_epochs * len(trainer.train_dataset) / len(dataset)
            account["unlearning_epochs"] = overrides["num_train_epochs"]
        hooks = UnlearningHooks(self.config, adversaries)
        model = trainer.finetune(model, train_dataset=dataset, hooks=hooks, **overrides)
        account["regularizer"] = self.config.regularizer
        return model, account
