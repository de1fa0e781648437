"""Trigger unlearning: teach the model that the recovered triggers mean nothing.

When detection found triggers, their embedding rows are reset to the pretrained base (when ``base_model`` is
known) and the model is fine-tuned on the clean set plus copies of it with the triggers inserted and the true
labels kept (as Neural Cleanse unlearns its reversed trigger), with the activeness regulariser; the user's
``known_triggers`` are inserted the same way (a model with known triggers is purified whatever the verdict). A
flagged model is also fine-tuned against a soft trigger (:class:`~ebyd_hf.adversarial.SoftTrigger`,
``adversarial_*`` options), which reaches what the recovered tokens only approximate (sentences, syntactic
templates, styles). A model that detection calls clean, with no known triggers, comes back unchanged, unless
``finetune_when_clean`` asks for fine-tuning with the regulariser alone."""

from __future__ import annotations

from itertools import islice
from typing import ClassVar

import numpy as np
import torch
from datasets import Dataset
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from ...adversarial import SoftTrigger
from ...trigger_search import insert_tokens
from ..base import RemovalMethod, register_removal


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
    5 epochs: measured CA 0.857 for MiniLM on 500 SST-2 rows): a model of the same task without the backdoor."""
    from transformers import AutoModelForSequenceClassification

    if trainer.args.base_model is None:
        raise ValueError("adversarial_reference=True needs base_model (the pretrained model the suspect came from).")
    config = model.config
    reference = AutoModelForSequenceClassification.from_pretrained(
        trainer.args.base_model, num_labels=config.num_labels, id2label=config.id2label, label2id=config.label2id
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


def soft_trigger(trainer, model: torch.nn.Module, target: int, init_ids: list[int] | None) -> SoftTrigger:
    """A soft trigger towards ``target``, started from a recovered trigger's embeddings and warmed up against
    the (still unchanged) suspicious model on the clean set."""
    args = trainer.args
    reference = reference_model(trainer, model) if args.adversarial_reference else None
    adversary = SoftTrigger(
        model,
        target,
        args.adversarial_trigger_length,
        args.adversarial_learning_rate,
        init_ids,
        args.seed,
        reference=reference,
    )

    def cycled():  # the clean set is never empty (the trainer refuses it), so this does not spin
        while True:
            yield from trainer.clean_batches(model)

    model.eval()
    rates = [adversary.step(model, batch) for batch in islice(cycled(), args.adversarial_warmup_steps)]
    flips = [rate for rate in rates if rate is not None]
    model.train()
    adversary.warmup_flip_rate = round(flips[-1], 4) if flips else None
    return adversary


@register_removal
class UnlearnTrigger(RemovalMethod):
    name: ClassVar[str] = "unlearn_trigger"
    uses_exposure: ClassVar[bool] = False
    uses_known_triggers: ClassVar[bool] = True
    modalities: ClassVar[tuple[str, ...]] = ("text",)

    def purify(self, trainer, exposure, detection):
        if detection is None:
            detection = trainer.detect()
        model = trainer.fresh_copy()
        known = trainer.known_triggers
        if not detection.backdoored and not known and not trainer.args.finetune_when_clean:
            return model.eval(), {"triggers_unlearned": [], "skipped": "no backdoor detected"}
        # The confirmed triggers only (over their verdict threshold, flipping to the detected target): every
        # measurement so far ranks the true trigger tokens first, while a long tail of sentiment words would
        # dilute the unlearning set.
        recovered = []
        if detection.backdoored:
            recovered = detection.details.get("triggers") or [
                c for c in detection.trigger_candidates if c["score"] >= detection.threshold
            ]
        chosen = known + recovered
        triggers = [c["token_ids"] for c in chosen]
        starts = [c.get("position") == "start" for c in chosen]
        account = {"triggers_unlearned": [c["trigger"] for c in chosen]}
        if known:
            account["known_triggers"] = [c["trigger"] for c in known]
        dataset = None
        adversary = None
        if detection.backdoored and detection.target_label is not None and trainer.args.adversarial_trigger_length:
            start = (recovered or known)[0]["token_ids"] if chosen else None
            adversary = soft_trigger(trainer, model, detection.target_label, start)
            account["soft_trigger"] = {
                "length": adversary.length,
                "warmup_flip_rate": adversary.warmup_flip_rate,
                "reference": adversary.reference is not None,
            }
        if triggers:
            base = trainer.load_base_model()
            if base is not None:
                # Templates, known phrases and the residue of a sentence are common words: only recovered tokens are
                # reset (the residue's flagged token is among them on its own).
                tokens = sorted(
                    {
                        t
                        for c in recovered
                        if c.get("position") != "start" and "residue" not in c.get("sources", ())
                        for t in c["token_ids"]
                    }
                )
                with torch.no_grad():
                    target = model.get_input_embeddings().weight
                    target[tokens] = base.get_input_embeddings().weight[tokens].to(target.device, target.dtype)
                account["embedding_rows_reset"] = len(tokens)
            dataset = triggered_copies(trainer.train_dataset, triggers, trainer.args.seed, starts)
            account["unlearning_rows"] = len(dataset)
        model = trainer.finetune(model, train_dataset=dataset, adversary=adversary)
        account["regularizer"] = trainer.args.finetune_regularizer
        return model, account
