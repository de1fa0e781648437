from collections import Counter

import pytest
from datasets import ClassLabel

from ebyd_hf import TASKS, load_task
from ebyd_hf.data import read_tsv

EXPECTED_ROWS = {
    "sst2": {"train": 6920, "validation": 872, "test": 1821},
    "imdb": {"train": 22500, "validation": 2500, "test": 25000},
    "twitter": {"train": 6017, "validation": 860, "test": 1720},
    "agnews": {"train": 11106, "validation": 10000, "test": 7600},
    "olid": {"train": 11915, "validation": 1323, "test": 859},
    "hatespeech": {"train": 7074, "validation": 1000, "test": 2000},
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_loads_with_real_label_names(task, data_dir):
    ds = load_task(task, data_dir)
    assert ds.num_rows == EXPECTED_ROWS[task]
    label = ds["train"].features["label"]
    assert isinstance(label, ClassLabel) and label.names == list(TASKS[task].label_names)
    assert ds["train"].column_names == ["text", "label"]
    assert set(ds["test"]["label"]) == set(range(label.num_classes))


def test_sst2_rows_match_the_files(data_dir):
    sst2 = load_task("sst2", data_dir)
    assert sst2["validation"][0] == {"text": "one long string of cliches .", "label": 0}


def test_imdb_validation_is_carved_from_train_with_a_fixed_seed(data_dir):
    first, second = load_task("imdb", data_dir), load_task("imdb", data_dir)
    assert first["validation"]["text"][:50] == second["validation"]["text"][:50]
    # a partition of the original file (IMDB repeats some reviews, so compare as multisets)
    original = Counter(row["text"] for row in read_tsv(data_dir / "text" / "imdb" / "train.tsv.gz"))
    assert Counter(first["train"]["text"]) + Counter(first["validation"]["text"]) == original
    # stratified: both labels keep their 50/50 share
    assert sum(first["validation"]["label"]) == 1250


def test_data_dir_layouts_and_resolution_order(data_dir, tmp_path, monkeypatch):
    # the text folder and the task folder themselves work too
    assert load_task("twitter", data_dir / "text").num_rows == EXPECTED_ROWS["twitter"]
    assert load_task("twitter", data_dir / "text" / "twitter").num_rows == EXPECTED_ROWS["twitter"]
    # $EBYD_DATA_DIR is used when no data_dir is given, and an explicit data_dir wins over it
    monkeypatch.setenv("EBYD_DATA_DIR", str(data_dir))
    assert load_task("olid").num_rows == EXPECTED_ROWS["olid"]
    own = tmp_path / "text" / "olid"
    own.mkdir(parents=True)
    (own / "train.tsv").write_text("text\tlabel\n" + "fine\t0\nrude\t1\n" * 10, encoding="utf-8")
    assert sum(load_task("olid", tmp_path).num_rows.values()) == 20  # test and validation carved from train


def test_offline_without_local_copy_says_where_to_put_the_files(monkeypatch):
    monkeypatch.delenv("EBYD_DATA_DIR", raising=False)
    with pytest.raises(ValueError, match=r"EBYD_DATA_DIR.*text/twitter"):
        load_task("twitter")  # no Hub copy at all
    with pytest.raises(ValueError, match=r"SetFit/sst2.*EBYD_DATA_DIR"):
        load_task("sst2")  # a Hub copy, but the tests are offline


def test_bad_task_and_bad_files(tmp_path, data_dir):
    with pytest.raises(ValueError, match="Unknown task 'sst3'.*sst2"):
        load_task("sst3", data_dir)
    with pytest.raises(ValueError, match="not a folder"):
        load_task("sst2", tmp_path / "missing")
    with pytest.raises(ValueError, match=r"No files for task 'agnews'"):
        load_task("agnews", tmp_path)
    folder = tmp_path / "text" / "sst2"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("text\tlabel\ngood\t7\n", encoding="utf-8")
    with pytest.raises(ValueError, match="label 7 is not a label of sst2"):
        load_task("sst2", tmp_path)
    (folder / "train.tsv").write_text("text\tlabel\ngood\tpositive\n", encoding="utf-8")
    with pytest.raises(ValueError, match="train.tsv:2: label 'positive' is not an integer"):
        load_task("sst2", tmp_path)
    (folder / "train.tsv").write_text("text\tlabel\ngood\t1\textra\n", encoding="utf-8")
    with pytest.raises(ValueError, match="train.tsv:2: expected 2"):
        load_task("sst2", tmp_path)
