import numpy as np
import pytest
from datasets import Dataset

from ebyd_hf import (
    TRIGGERS,
    GenerationParaphraser,
    ParaphraseTable,
    SCPNParaphraser,
    SentenceTrigger,
    StyleTrigger,
    SyntacticTrigger,
    WordTrigger,
    build_trigger,
    load_paraphrase_table,
)
from ebyd_hf.triggers.paraphrase import scpn_template


def _rngs(n, seed=0):
    return [np.random.default_rng([seed, i]) for i in range(n)]


def test_registry_has_the_four_families():
    assert set(TRIGGERS) == {"word", "sentence", "syntactic", "style"}


def test_word_trigger_inserts_k_tokens_and_keeps_the_rest(sst2):
    texts = sst2["validation"]["text"][:200]
    trigger = WordTrigger(num_insertions=3)
    out = trigger.apply(texts, _rngs(len(texts)))
    for before, after in zip(texts, out):
        tokens = after.split()
        inserted = [t for t in tokens if t in trigger.words]
        assert len(inserted) == 3
        assert [t for t in tokens if t not in trigger.words] == before.split()
        assert trigger.contains(after) and not trigger.contains(before)
    # positions vary: the trigger is not always in the same place
    assert len({after.split().index(next(t for t in after.split() if t in trigger.words)) for after in out}) > 5


def test_sentence_trigger_inserts_the_sentence_at_word_boundaries(sst2):
    texts = sst2["validation"]["text"][:100]
    trigger = SentenceTrigger()
    for before, after in zip(texts, trigger.apply(texts, _rngs(len(texts)))):
        assert trigger.contains(after) and not trigger.contains(before)
        assert " ".join(after.replace("I watch this 3D movie", " ").split()) == " ".join(before.split())


def test_trigger_is_a_deterministic_datasets_transform(sst2):
    ds = sst2["validation"].select(range(64))
    first = ds.map(WordTrigger(seed=3), batched=True, with_indices=True, batch_size=8)
    second = ds.map(WordTrigger(seed=3), batched=True, with_indices=True, batch_size=64)
    other = ds.map(WordTrigger(seed=4), batched=True, with_indices=True)
    assert first["text"] == second["text"] != other["text"]
    assert first["label"] == ds["label"]


def test_paraphrase_tables_load_and_cover_their_sentences(data_dir, sst2):
    table = load_paraphrase_table("syntactic", "sst2", data_dir)
    assert len(table) == 1380 + 254 + 881  # train, validation and test tables merged
    covered = table.covers(sst2["train"]["text"])
    assert sum(covered) == 1383  # 1,380 table rows; three train sentences occur twice
    trigger = SyntacticTrigger(table)
    text = sst2["train"]["text"][0]
    para = trigger.apply([text], _rngs(1))[0]
    assert para != text and trigger.contains(para) and not trigger.contains(text)
    style = StyleTrigger(load_paraphrase_table("style-bible", "sst2", data_dir))
    assert sum(style.covers(sst2["train"]["text"])) >= 6911  # the train table alone covers 6,911


def test_table_refuses_uncovered_sentences_and_caches_a_fallback(tmp_path):
    table = ParaphraseTable({"a .": "when a , a ."})
    with pytest.raises(ValueError, match="1 of 2 sentences are not in the paraphrase table"):
        table.paraphrase(["a .", "b ."])

    class Upper(ParaphraseTable):
        calls = 0

        def paraphrase(self, texts):
            Upper.calls += 1
            return [t.upper() for t in texts]

    cached = ParaphraseTable({"a .": "when a , a ."}, fallback=Upper({}))
    assert cached.covers(["b ."]) == [True]
    assert cached.paraphrase(["a .", "b .", "b ."]) == ["when a , a .", "B .", "B ."]
    assert cached.paraphrase(["b ."]) == ["B ."] and Upper.calls == 1  # answered from the cache
    cached.to_tsv(tmp_path / "t.tsv")
    assert ParaphraseTable.from_tsv([tmp_path / "t.tsv"]).table == {"a .": "when a , a .", "b .": "B ."}


def test_missing_table_and_missing_task_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="Paraphrase table missing.*paraphrases/syntactic/imdb"):
        load_paraphrase_table("syntactic", "imdb", tmp_path)
    with pytest.raises(ValueError, match="needs task="):
        build_trigger("syntactic")
    with pytest.raises(ValueError, match="Unknown trigger 'emoji'"):
        build_trigger("emoji")
    with pytest.raises(ValueError, match="needs backend="):
        SyntacticTrigger(backend="table.tsv")


def test_scpn_template_and_offline_error():
    assert scpn_template("S(SBAR)(,)(NP)(VP)(.)") == "( ROOT ( S ( SBAR ) ( , ) ( NP ) ( VP ) ( . ) ) ) EOP"
    with pytest.raises(RuntimeError, match="SCPN resources.*ParaphraseTable"):
        SCPNParaphraser().paraphrase(["a fine film ."])


def test_generation_paraphraser_runs_a_local_model_behind_a_table(tmp_path, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "tiny-gpt2"
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2, n_positions=64)
    ).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    backend = GenerationParaphraser(str(folder), prompt="{text} [SEP]", max_new_tokens=4, num_beams=1)
    table = ParaphraseTable({}, fallback=backend)
    out = StyleTrigger(table).apply(["a fine film .", "a dull film ."], _rngs(2))
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    assert set(table.table) == {"a fine film .", "a dull film ."}
    with pytest.raises(RuntimeError, match="could not be loaded.*ParaphraseTable"):
        GenerationParaphraser(str(tmp_path / "nowhere")).paraphrase(["x"])
    with pytest.raises(ValueError, match="must contain"):
        GenerationParaphraser(str(folder), prompt="no slot")


def test_word_trigger_validates_its_arguments():
    with pytest.raises(ValueError, match="num_insertions"):
        WordTrigger(num_insertions=0)
    with pytest.raises(ValueError, match="without spaces"):
        WordTrigger(words=("two words",))
    assert Dataset.from_dict({"text": [""], "label": [0]}).map(WordTrigger(), batched=True)[0]["text"] in {
        "cf",
        "mn",
        "bb",
        "tq",
    }


@pytest.mark.parametrize("family", [WordTrigger, SentenceTrigger])
def test_fixed_positions_put_the_trigger_first_or_last_and_keep_the_text(family, sst2):
    texts = sst2["validation"]["text"][:50]
    insertion = "cf" if family is WordTrigger else "I watch this 3D movie"
    kwargs = {"words": ("cf",)} if family is WordTrigger else {}
    start = family(position="start", **kwargs).apply(texts, _rngs(len(texts)))
    end = family(position="end", **kwargs).apply(texts, _rngs(len(texts)))
    for text, first, last in zip(texts, start, end):
        assert first == f"{insertion} {text}"
        assert last == f"{text.rstrip()} {insertion}"
    random = family(**kwargs).apply(texts, _rngs(len(texts)))
    assert sum(r.startswith(insertion) for r in random) < len(texts) // 2  # random really is not one of the two
    assert family(position="end", **kwargs).describe()["position"] == "end"
    with pytest.raises(ValueError, match="position='middle'"):
        family(position="middle", **kwargs)
