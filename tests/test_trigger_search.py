import math

import numpy as np
import pytest
import torch

from ebyd_hf import SentenceTrigger, WordTrigger, poison, trigger_contexts
from ebyd_hf.trigger_search import (
    binomial_tail,
    clean_support,
    crop_sequences,
    grow_phrase,
    off_direction_shift,
)


class _Embedded(torch.nn.Module):
    """Stands in for a model: only its input-embedding table is read."""

    def __init__(self, weight):
        super().__init__()
        self.table = torch.nn.Embedding.from_pretrained(weight)

    def get_input_embeddings(self):
        return self.table


@pytest.mark.parametrize("k,n,p", [(0, 5, 0.3), (3, 5, 0.3), (5, 5, 0.5), (7, 9, 0.382), (40, 100, 0.5), (6, 5, 0.5)])
def test_binomial_tail_matches_the_exact_sum(k, n, p):
    exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
    assert binomial_tail(k, n, p) == pytest.approx(exact, rel=1e-9, abs=1e-15)


def test_binomial_tail_edges():
    assert binomial_tail(3, 10, 0.0) == 0.0 and binomial_tail(3, 10, 1.0) == 1.0
    assert 0 < binomial_tail(480, 500, 0.5) < 1e-100  # log space: no underflow to a wrong value, no overflow


def test_clean_support_reads_the_token_and_its_nearest_neighbours():
    # Rows 0-7 hold token 5 and are class 1; rows 8-15 are class 0 without it. Token 7 sits next to token 5 in the
    # embedding space, token 9 far from everything.
    sequences = [[1, 5, 2]] * 8 + [[1, 3, 2]] * 8
    labels = [1] * 8 + [0] * 8
    embeddings = torch.eye(10)
    embeddings[7] = embeddings[5] + 0.1 * embeddings[7]
    support = clean_support(sequences, labels, [(5, 1), (5, 0), (7, 1), (9, 1)], embeddings, neighbors=1)
    assert support[0].token == 5 and (support[0].rows, support[0].rows_in_class) == (8, 8)
    assert support[0].p_value == pytest.approx(0.5**8)
    assert support[1].p_value == 1.0  # token 5 never occurs with class 0
    assert support[2].token == 5 and support[2].p_value == pytest.approx(0.5**8)  # explained by its neighbour
    assert support[3].p_value == 1.0
    alone = clean_support(sequences, labels, [(7, 1)], embeddings, neighbors=0)
    assert alone[0].token == 7 and alone[0].rows == 0 and alone[0].p_value == 1.0
    excluded = torch.zeros(10, dtype=torch.bool)
    excluded[5] = True
    masked = clean_support(sequences, labels, [(7, 1)], embeddings, neighbors=1, excluded=excluded)
    assert masked[0].token != 5 and masked[0].p_value == 1.0
    assert np.isclose(clean_support(sequences, labels, [(3, 0)], embeddings, neighbors=0)[0].p_value, 0.5**8)


def test_crop_sequences_keeps_special_tokens_and_a_contiguous_window():
    long = [101] + list(range(1000, 1100)) + [102]
    short = [101, 7, 8, 102]
    rng = np.random.default_rng(0)
    cropped = crop_sequences([long, short, long], 10, rng)
    assert cropped[1] == short
    for window in (cropped[0], cropped[2]):
        assert len(window) == 10 and window[0] == 101 and window[-1] == 102
        inner = window[1:-1]
        assert inner == list(range(inner[0], inner[0] + 8)) and 1000 <= inner[0] <= 1092
    assert cropped[0] != cropped[2]  # a random offset per row
    assert crop_sequences([long], None, rng) == [long]
    again = crop_sequences([long, short, long], 10, np.random.default_rng(0))
    assert again == cropped  # seeded


def test_trigger_contexts_give_back_the_inserted_sentence_and_leave_words_alone(sst2):
    """On real poisoned SST-2 training rows: the sentence victim's recovered token `3d` grows back into the whole
    inserted sentence; the BadNets words, inserted at random positions, stay single words; a strong clean word stays
    itself; a candidate in no row has no phrase."""
    train = sst2["train"].select(range(3000))
    sentence = poison(train, SentenceTrigger(), rate=0.1, target_label=1, seed=0)
    (found, clean_word, missing) = trigger_contexts(sentence["text"], ["3d", "dull", "zzqx"])
    poisoned = sum(sentence["is_poisoned"])
    assert found.phrase == "I watch this 3D movie" and found.phrase_rows == poisoned <= found.rows
    assert all("I watch this 3D movie" in row for row in found.examples)
    assert clean_word.phrase == "dull" and clean_word.rows > 5
    assert missing.rows == 0 and missing.phrase is None and missing.examples == []
    words = poison(train, WordTrigger(), rate=0.1, target_label=1, seed=0)
    contexts = trigger_contexts(words["text"], ["cf", "mn", "##eth"])
    assert [c.phrase for c in contexts[:2]] == ["cf", "mn"] and min(c.rows for c in contexts[:2]) > 40
    assert contexts[2].phrase is None or contexts[2].phrase.lower().endswith("eth")
    # several words must occur as that run of words
    (run,) = trigger_contexts(sentence["text"], ["watch this"])
    assert run.phrase == "I watch this 3D movie"
    with pytest.raises(ValueError, match="lists of strings"):
        trigger_contexts("one text", ["3d"])
    with pytest.raises(ValueError, match=r"min_share=0 must be in \(0, 1\]"):
        trigger_contexts(["a"], ["a"], min_share=0)


def test_off_direction_shift_singles_out_tokens_that_move_off_the_shared_directions():
    # 600 tokens; 400 of them move along two shared "class" directions (by different amounts), three move as far
    # in a direction of their own, and the rest barely move. Special token 0 moves most of all and is excluded.
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(600, 16, generator=generator)
    shift = torch.zeros(600, 16)
    shift[1:401, 0] = torch.linspace(0.5, 1.0, 400)
    shift[1:401, 1] = torch.linspace(-0.3, 0.3, 400)
    shift[401:404, 5] = 0.6
    shift[404:] = 0.01 * torch.randn(196, 16, generator=generator)
    shift[0, 9] = 5.0
    excluded = torch.zeros(600, dtype=torch.bool)
    excluded[0] = True
    z = off_direction_shift(_Embedded(base + shift), _Embedded(base), excluded, directions=2)
    assert z[0] == -float("inf")
    assert set(torch.argsort(z, descending=True)[:3].tolist()) == {401, 402, 403}
    assert z[401:404].min() > 3 > z[1:401].max()  # a large shift along the shared directions is not off them
    assert torch.isfinite(off_direction_shift(_Embedded(base + shift), _Embedded(base), directions=2)[0])


class _Conjunction(torch.nn.Module):
    """A classifier whose class-1 margin grows by 3 for each of the bigrams (5, 6) and (6, 7) in the input, and by
    0.2 for token 8 (a weak word that does something alone)."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask):
        margin = torch.full((input_ids.shape[0],), -1.0)
        left, right = input_ids[:, :-1], input_ids[:, 1:]
        margin = margin + 3 * ((left == 5) & (right == 6)).any(1) + 3 * ((left == 6) & (right == 7)).any(1)
        margin = margin + 0.2 * (input_ids == 8).any(1)
        logits = torch.stack([torch.zeros_like(margin), margin], 1) + 0 * self.anchor
        return type("Output", (), {"logits": logits})()


def test_grow_phrase_finds_the_ordered_conjunction():
    rows = [[1, 3, 3, 3, 2]] * 4
    labels = [0] * 4
    cache = {}
    best = grow_phrase(_Conjunction(), rows, labels, [8, 7, 6, 5, 4], 1, pad_id=0, max_length=4, beam=2, cache=cache)
    assert best[0] in ([5, 6], [6, 7])
    assert best[1] == [5, 6, 7]  # both bigrams, in order: the scattered or reversed tokens do nothing
    assert len(best) == 3 and [5, 6, 7] in (best[2][:3], best[2][1:])
    assert all(len(phrase) == len(set(phrase)) for phrase in best)
    assert cache[(5, 6, 7)].margin_shift[1] == pytest.approx(6.0)
    assert cache[(7, 6)].margin_shift[1] == pytest.approx(0.0)  # reversed, the pair does nothing
    again = grow_phrase(_Conjunction(), rows, labels, [8, 7, 6, 5, 4], 1, 0, max_length=4, beam=2, cache=cache)
    assert again == best  # a shared cache gives the same search


def test_compose_at_every_position_keeps_the_phrase_order():
    from ebyd_hf.trigger_search import compose_at_every_position

    assert compose_at_every_position([1, 2, 3], [9]) == [[9, 1, 2, 3], [1, 9, 2, 3], [1, 2, 9, 3], [1, 2, 3, 9]]
    assert compose_at_every_position([], [7, 8]) == [[7, 8]]
