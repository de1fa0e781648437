"""The soft (embedding-space) trigger used by `unlearn_trigger`."""

import pytest
import torch
from conftest import tiny_bert

from ebyd_hf.adversarial import SoftTrigger


@pytest.fixture
def batch(tokenizer, sst2):
    rows = sst2["validation"].select(range(16))
    encoded = tokenizer(list(rows["text"]), padding=True, truncation=True, max_length=32, return_tensors="pt")
    return dict(encoded) | {"labels": torch.tensor(list(rows["label"]))}


def test_vectors_are_inserted_after_the_first_token_and_padding_keeps_clean_logits(tokenizer, batch):
    model = tiny_bert(tokenizer).eval()
    trigger = SoftTrigger(model, target=1, length=3, init_ids=[5, 6, 7])
    inputs = trigger.model_inputs(model, batch, trigger.vectors.detach())
    table = model.get_input_embeddings().weight
    width = batch["input_ids"].shape[1]
    assert inputs["inputs_embeds"].shape[1] == width + 3
    assert torch.equal(inputs["inputs_embeds"][0, 1:4], table[[5, 6, 7]])
    assert torch.equal(inputs["inputs_embeds"][:, 4:], table[batch["input_ids"][:, 1:]])
    assert torch.equal(inputs["attention_mask"][:, 1:4], torch.ones(16, 3, dtype=inputs["attention_mask"].dtype))
    both = trigger.model_inputs(model, batch, trigger.vectors.detach(), pad_clean=True)
    assert both["inputs_embeds"].shape[0] == 32
    with torch.no_grad():
        plain = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        padded = model(**both).logits
        triggered = model(**inputs).logits
    torch.testing.assert_close(padded[:16], plain, atol=1e-5, rtol=1e-4)  # the padding is masked out
    torch.testing.assert_close(padded[16:], triggered, atol=1e-5, rtol=1e-4)


def test_steps_push_rows_to_the_target_within_the_norm_bound(tiny_victims, batch):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_victims["clean"][0]).eval()
    trigger = SoftTrigger(model, target=0, length=4, learning_rate=0.1, seed=0)
    before = model.state_dict()["bert.embeddings.word_embeddings.weight"].clone()

    def target_probability():
        with torch.no_grad():
            logits = model(**trigger.model_inputs(model, batch, trigger.vectors.detach())).logits
        return logits.softmax(-1)[batch["labels"] != 0, 0].mean().item()

    start = target_probability()
    for _ in range(30):
        trigger.step(model, batch)
    assert target_probability() > start + 0.2
    assert trigger.vectors.norm(dim=-1).max() <= trigger.max_norm + 1e-5
    assert torch.equal(model.state_dict()["bert.embeddings.word_embeddings.weight"], before)
    assert all(p.grad is None for p in model.parameters())  # the model gets no gradient


def test_a_reference_that_must_keep_the_true_labels_holds_the_trigger_back(tiny_victims, batch):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_victims["clean"][0]).eval()
    # the reference is the model itself: any direction that flips it is penalised twice as hard as it is rewarded
    free = SoftTrigger(model, target=0, length=4, learning_rate=0.1, seed=0)
    held = SoftTrigger(model, target=0, length=4, learning_rate=0.1, seed=0, reference=model, reference_weight=2.0)
    rates = {}
    for name, trigger in (("free", free), ("held", held)):
        for _ in range(30):
            trigger.step(model, batch)
        with torch.no_grad():
            logits = model(**trigger.model_inputs(model, batch, trigger.vectors.detach())).logits
        rates[name] = logits.softmax(-1)[batch["labels"] != 0, 0].mean().item()
    assert rates["held"] < rates["free"] - 0.2, rates
    assert all(p.grad is None for p in model.parameters())


def test_a_batch_without_rows_of_other_classes_takes_no_step(tokenizer, batch):
    model = tiny_bert(tokenizer)
    trigger = SoftTrigger(model, target=1, length=2)
    only_target = {k: v[batch["labels"] == 1] for k, v in batch.items()}
    start = trigger.vectors.detach().clone()
    assert trigger.step(model, only_target) is None
    assert torch.equal(trigger.vectors.detach(), start)
    with pytest.raises(ValueError, match="at least one vector"):
        SoftTrigger(model, target=1, length=0)


def test_random_positions_stay_inside_every_row(tokenizer, batch):
    model = tiny_bert(tokenizer).eval()
    trigger = SoftTrigger(model, target=1, length=2, init_ids=[5, 6])
    shortest = int(batch["attention_mask"].sum(dim=1).min())
    generator = torch.Generator().manual_seed(0)
    positions = {trigger.random_position(batch, generator) for _ in range(200)}
    assert min(positions) >= 1 and max(positions) <= shortest - 1 and len(positions) > 1
    inputs = trigger.model_inputs(model, batch, trigger.vectors.detach(), position=3)
    table = model.get_input_embeddings().weight
    assert torch.equal(inputs["inputs_embeds"][:, 3:5], table[[5, 6]].expand(16, -1, -1))
    assert torch.equal(inputs["inputs_embeds"][:, 5:], table[batch["input_ids"][:, 3:]])


def test_rows_picks_which_rows_also_go_through_with_the_trigger(tokenizer, batch):
    """``rows``: every row clean (padded), then only the picked rows with the trigger, each the same as when the
    whole batch is triggered; a per-row block of vectors goes to its own row."""
    model = tiny_bert(tokenizer).eval()
    trigger = SoftTrigger(model, target=1, length=3, init_ids=[5, 6, 7])
    vectors = trigger.vectors.detach()
    rows = torch.tensor([2, 9, 11])
    some = trigger.model_inputs(model, batch, vectors, pad_clean=True, rows=rows)
    every = trigger.model_inputs(model, batch, vectors, pad_clean=True)
    assert some["inputs_embeds"].shape[0] == 16 + 3
    for key in some:
        assert torch.equal(some[key][:16], every[key][:16])
        assert torch.equal(some[key][16:], every[key][16 + rows])
    own = torch.stack([vectors, vectors + 1, vectors + 2])
    per_row = trigger.model_inputs(model, batch, own, rows=rows)
    assert torch.equal(per_row["inputs_embeds"][1, 1:4], vectors + 1)


def test_apply_gradient_steps_down_the_given_gradient_within_the_norm_bound(tokenizer):
    model = tiny_bert(tokenizer)
    trigger = SoftTrigger(model, target=1, length=2, learning_rate=0.1, init_ids=[5, 6])
    start = trigger.vectors.detach().clone()
    grad = torch.zeros_like(start)
    grad[0, 0] = 1.0
    trigger.apply_gradient(grad)
    moved = trigger.vectors.detach() - start
    assert moved[0, 0] < 0 and torch.count_nonzero(moved[1]) == 0  # Adam's first step: -lr along the gradient
    for _ in range(200):
        trigger.apply_gradient(-start)  # straight up the vectors' own direction, which the bound stops
    assert float(trigger.vectors.norm(dim=-1).max()) <= trigger.max_norm + 1e-5
    held = trigger.vectors.detach().clone()
    trigger.apply_gradient(torch.full_like(start, float("inf")))  # an overflowing fp16 pass: no step
    assert torch.equal(trigger.vectors.detach(), held)
