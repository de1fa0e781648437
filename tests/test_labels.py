"""Labels are read by name against the model's id2label (ebyd_hf/labels.py) in every dataset the trainer takes."""

import pytest
from datasets import ClassLabel, Dataset, Features, Value
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

from ebyd_hf import ExposeConfig, ExposeTrainer
from ebyd_hf.labels import align_labels, check_same_labels, model_label_names

NAMED = BertConfig(id2label={0: "negative", 1: "positive"})


def _data(labels, names=None, dtype="int64"):
    label = ClassLabel(names=names) if names else Value(dtype)
    features = Features({"text": Value("string"), "label": label})
    return Dataset.from_dict({"text": [f"row {i}" for i in range(len(labels))], "label": labels}, features=features)


def _reverse_names(dataset: Dataset) -> Dataset:
    """The same rows with the class names in the opposite order (each row's id swapped to keep its class)."""
    names = dataset.features["label"].names
    swapped = dataset.map(lambda row: {"label": len(names) - 1 - row["label"]})
    return swapped.cast_column("label", ClassLabel(names=names[::-1]))


def test_placeholder_names_are_no_names():
    assert model_label_names(BertConfig(num_labels=3)) is None
    assert model_label_names(NAMED) == ["negative", "positive"]


def test_names_in_the_models_order_are_kept_and_another_order_is_aligned():
    same = _data([0, 1, 1], ["negative", "positive"])
    assert align_labels(same, NAMED, "x")["label"] == [0, 1, 1]
    reordered = _data([0, 1, 1], ["Positive", "negative"])  # case does not matter
    assert align_labels(reordered, NAMED, "x")["label"] == [1, 0, 0]


def test_names_the_model_does_not_have_are_refused_naming_both_lists():
    with pytest.raises(ValueError, match=r"label names \['bad', 'good'\] are not the model's.*cast_column"):
        align_labels(_data([0, 1], ["bad", "good"]), NAMED, "train_dataset")


def test_string_labels_are_mapped_through_id2label():
    assert align_labels(_data(["positive", "NEGATIVE"], dtype="string"), NAMED, "x")["label"] == [1, 0]
    with pytest.raises(ValueError, match=r"labels \['neutral'\] the model does not have"):
        align_labels(_data(["positive", "neutral"], dtype="string"), NAMED, "x")
    with pytest.raises(ValueError, match="id2label has no names"):
        align_labels(_data(["positive"], dtype="string"), BertConfig(), "x")


@pytest.mark.parametrize("labels", [[0, 2], [0, -1]])
def test_ids_outside_the_model_are_refused(labels):
    with pytest.raises(ValueError, match=r"has labels \[-?\d\] that the model does not have \(it has 2 labels"):
        align_labels(_data(labels), NAMED, "test_dataset")


def test_class_names_in_reverse_order_give_the_same_defense(tiny_victims, sst2, tmp_path):
    """The label-order bar of the safety issue: the clean set with the model's label names in the opposite order
    is aligned, so detection reads the same classes and gives the same verdict, target and score."""
    folder, _ = tiny_victims["t1"]
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model_label_names(model.config) == sst2["validation"].features["label"].names
    clean = sst2["validation"].shuffle(seed=0).select(range(200))
    found = []
    for i, data in enumerate((clean, _reverse_names(clean))):
        args = ExposeConfig(str(tmp_path / f"out{i}"), use_cpu=True, disable_tqdm=True, report_to="none", seed=0)
        trainer = ExposeTrainer(model, args, train_dataset=data, processing_class=tokenizer)
        assert trainer.train_dataset["label"] == clean["label"]
        found.append(trainer.detect())
    assert found[0].backdoored and found[0].target_label == 1
    assert (found[1].backdoored, found[1].target_label, found[1].score) == (
        found[0].backdoored,
        found[0].target_label,
        found[0].score,
    )


def test_unlabelled_rows_and_mixed_cells_are_refused_not_misread():
    config = BertConfig(id2label={0: "negative", 1: "positive"})
    features = Features({"text": Value("string"), "label": ClassLabel(names=["positive", "negative"])})
    unlabelled = Dataset.from_dict({"text": ["a", "b"], "label": [-1, -1]}, features=features)  # a GLUE test split
    with pytest.raises(ValueError, match=r"labels \[-1\]"):
        align_labels(unlabelled, config, "test_dataset")
    mixed = Dataset.from_dict({"text": ["a", "b", "c"], "label": ["positive", None, "meh"]})
    with pytest.raises(ValueError, match="labels \\[None, 'meh'\\] the model does not have"):
        align_labels(mixed, config, "train_dataset")


def test_a_reference_model_must_have_the_models_labels():
    model = BertConfig(id2label={0: "negative", 1: "positive"})
    check_same_labels(model, BertConfig(id2label={0: "NEGATIVE", 1: "POSITIVE"}), "ref")  # case is not a label
    check_same_labels(model, BertConfig(id2label={0: "LABEL_0", 1: "LABEL_1"}), "ref")  # placeholders: ids only
    with pytest.raises(ValueError, match="ref's labels"):
        check_same_labels(model, BertConfig(id2label={0: "positive", 1: "negative"}), "ref")
    with pytest.raises(ValueError, match="ref has 3 labels"):
        check_same_labels(model, BertConfig(num_labels=3), "ref")
    with pytest.raises(ValueError, match="sequence classifier"):
        check_same_labels(model, None, "ref")
