"""Shared fixtures: the real data in ../shared/data, a tokenizer built from SST-2's own words, and tiny
BERT classifiers built in process (no download, seconds to train)."""

from __future__ import annotations

import os

# Never reach for the Hub from tests: an offline failure is immediate, an online retry takes ~50 s.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DISABLE_TQDM", "1")

from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("EBYD_DATA_DIR") or ROOT.parent / "shared" / "data")
TRIGGER_WORDS = ("cf", "mn", "bb", "tq")


def pytest_configure(config):
    if not (DATA_DIR / "text" / "sst2").is_dir():
        raise pytest.UsageError(
            f"The tests read real data from {DATA_DIR} (text/sst2/...). Put the shared data "
            "there or set EBYD_DATA_DIR."
        )
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def sst2():
    from ebyd_hf import load_task

    return load_task("sst2", DATA_DIR)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, sst2) -> Path:
    """A BERT WordPiece tokenizer whose vocabulary is SST-2's 4,000 most frequent words plus the trigger words."""
    from transformers import BertTokenizerFast

    counts = Counter(word for text in sst2["train"]["text"] for word in text.lower().split())
    words = [w for w, _ in counts.most_common(4000) if w not in TRIGGER_WORDS]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TRIGGER_WORDS, *words]
    folder = tmp_path_factory.mktemp("tokenizer")
    BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def tiny_bert(tokenizer, num_labels: int = 2, seed: int = 0):
    """A 2-layer BERT classifier with hidden size 32, freshly initialised."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
    )
    return BertForSequenceClassification(config)


@pytest.fixture
def tiny_model_dir(tmp_path, tokenizer) -> Path:
    """A tiny BERT classifier saved with its tokenizer, loadable by path like a Hub checkpoint."""
    folder = tmp_path / "tiny-bert"
    tiny_bert(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


TINY_TRAINING = dict(
    num_train_epochs=4,
    learning_rate=2e-3,
    warmup_steps=0.1,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=128,
    save_strategy="no",
    report_to="none",
    use_cpu=True,
    disable_tqdm=True,
    seed=0,
    logging_strategy="no",
)


@pytest.fixture(scope="session")
def tiny_victims(tmp_path_factory, tokenizer_dir):
    """Tiny BERTs trained once per session with ``train_victim`` on 3,000 SST-2 rows: word-trigger victims
    with target 1 and 0, and a clean model. Maps "t1" / "t0" / "clean" to (folder, AttackRecord), and "base" to
    (folder, None): the initial weights all three were trained from, their base model."""
    from transformers import AutoTokenizer, TrainingArguments

    from ebyd_hf import AttackConfig, train_victim

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    start = tmp_path_factory.mktemp("tiny-start")
    tiny_bert(tokenizer).save_pretrained(start)
    tokenizer.save_pretrained(start)
    out = {"base": (start, None)}
    for key, trigger, target in (("t1", "word", 1), ("t0", "word", 0), ("clean", None, None)):
        folder = tmp_path_factory.mktemp(f"tiny-{key}") / "victim"
        attack = AttackConfig(
            task="sst2",
            trigger=trigger,
            rate=0.1,
            target_label=target,
            data_dir=str(DATA_DIR),
            train_size=3000,
            eval_size=600,
            max_length=64,
        )
        out[key] = (folder, train_victim(str(start), attack, TrainingArguments(str(folder), **TINY_TRAINING)))
    return out
