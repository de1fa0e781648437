import json

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertModel, TrainingArguments

from ebyd_hf import (
    DefenseReport,
    DetectionResult,
    ExposeConfig,
    ExposeTrainer,
    WordTrigger,
    build_attack_test_set,
    measure_backdoor,
)
from ebyd_hf.methods import EXPOSURE_METHODS, REMOVAL_METHODS
from ebyd_hf.neurons import ffn_blocks, mean_ffn_activations, prune_ffn_neurons
from ebyd_hf.trigger_search import compose_at_every_position


def _load(tiny_victims, key):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder, record = tiny_victims[key]
    return AutoModelForSequenceClassification.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_victim(tiny_victims):
    """The tiny word-trigger victim with target 1 (model, tokenizer)."""
    return _load(tiny_victims, "t1")


@pytest.fixture(scope="module")
def clean_set(sst2):
    return sst2["validation"].shuffle(seed=0).select(range(300))


def _config(tmp_path, **overrides):
    settings = dict(
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
        per_device_eval_batch_size=128,
        exposure_learning_rate=1e-3,
        exposure_eval_steps=1,
        exposure_max_steps=60,
        learning_rate=1e-3,
        num_train_epochs=2,
        seed=0,
    )
    return ExposeConfig(str(tmp_path / "defense"), **(settings | overrides))


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", sorted(EXPOSURE_METHODS))
def test_exposure_lowers_clean_accuracy_and_stops_by_its_rule(tiny_victim, clean_set, tmp_path, method):
    model, tokenizer = tiny_victim
    before = _state(model)
    trainer = ExposeTrainer(
        model, _config(tmp_path, exposure_method=method), train_dataset=clean_set, processing_class=tokenizer
    )
    exposure = trainer.expose()
    first, last = exposure.trace[0], exposure.trace[-1]
    assert first["step"] == 0 and last["step"] == exposure.steps
    assert last["accuracy"] < first["accuracy"] - 0.05
    if exposure.steps < 60:  # stopped by the rule, not by max_steps
        assert "collapsed" in exposure.stopped_by or "accuracy" in exposure.stopped_by
        assert max(last["share_0"], last["share_1"]) >= 0.9 or last["accuracy"] <= 0.5
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the user's model is untouched
    assert exposure.model is not model


def test_exposure_stops_at_the_configured_collapse_share(tiny_victim, clean_set, tmp_path):
    model, tokenizer = tiny_victim
    trainer = ExposeTrainer(
        model,
        _config(tmp_path, exposure_stop_collapse=0.7, exposure_stop_accuracy=0.0),
        train_dataset=clean_set,
        processing_class=tokenizer,
    )
    exposure = trainer.expose()
    shares = [max(r["share_0"], r["share_1"]) for r in exposure.trace]
    assert shares[-1] >= 0.7 and all(s < 0.7 for s in shares[:-1])
    assert "collapsed" in exposure.stopped_by


@pytest.mark.parametrize("method", sorted(n for n, m in REMOVAL_METHODS.items() if "text" in m.modalities))
def test_every_removal_method_runs_and_leaves_the_user_model_untouched(tiny_victim, clean_set, tmp_path, method):
    model, tokenizer = tiny_victim
    before = _state(model)
    trainer = ExposeTrainer(
        model,
        _config(tmp_path, removal_method=method, num_train_epochs=1),
        train_dataset=clean_set,
        processing_class=tokenizer,
    )
    purified = trainer.purify()
    assert trainer.model is purified and purified is not model
    assert not all(torch.equal(v, purified.state_dict()[k]) for k, v in before.items())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert trainer.report.removal_method == method and trainer.report.removal


def test_fine_pruning_prunes_the_most_dormant_neurons(tiny_victim, clean_set, tmp_path):
    model, tokenizer = tiny_victim
    trainer = ExposeTrainer(
        model,
        _config(tmp_path, removal_method="fine_pruning", removal_ratio=0.25, num_train_epochs=1),
        train_dataset=clean_set,
        processing_class=tokenizer,
    )
    purified = trainer.purify()
    blocks = ffn_blocks(purified)
    total = sum(b.size for b in blocks)
    assert trainer.report.removal["pruned_ffn_neurons"] == round(0.25 * total)
    dead = sum(int((b.up.weight.abs().sum(1) == 0).sum()) for b in blocks)
    assert dead == round(0.25 * total)  # pruned neurons stay zero through fine-tuning


def test_prune_and_activations_helpers(tokenizer, sst2):
    from conftest import tiny_bert

    model = tiny_bert(tokenizer)
    blocks = ffn_blocks(model)
    assert [b.name for b in blocks] == ["bert.encoder.layer.0", "bert.encoder.layer.1"]
    batch = tokenizer(sst2["validation"]["text"][:16], padding=True, return_tensors="pt")
    acts = mean_ffn_activations(model, [dict(batch)], blocks)
    assert [a.shape[0] for a in acts] == [64, 64]
    prune_ffn_neurons(blocks, {0: [int(acts[0].argmax())]})
    after = mean_ffn_activations(model, [dict(batch)], blocks)
    assert after[0][int(acts[0].argmax())] == 0
    with pytest.raises(ValueError, match="No feed-forward blocks"):
        ffn_blocks(torch.nn.Linear(2, 2))


def test_activeness_finetuning_runs_and_differs_from_plain(tiny_victim, clean_set, tmp_path):
    model, tokenizer = tiny_victim
    results = {}
    for regularizer in ("none", "activeness"):
        trainer = ExposeTrainer(
            model,
            _config(tmp_path, num_train_epochs=1, finetune_regularizer=regularizer),
            train_dataset=clean_set,
            processing_class=tokenizer,
        )
        results[regularizer] = _state(trainer.finetune(trainer.fresh_copy()))
    assert any(not torch.equal(results["none"][k], results["activeness"][k]) for k in results["none"])


def test_gradient_accumulation_runs_through_every_stage(tiny_victim, clean_set, tmp_path):
    model, tokenizer = tiny_victim
    trainer = ExposeTrainer(
        model,
        _config(tmp_path, gradient_accumulation_steps=2, num_train_epochs=1, per_device_train_batch_size=16),
        train_dataset=clean_set,
        processing_class=tokenizer,
    )
    assert trainer.expose().steps > 0
    trainer.finetune(trainer.fresh_copy())


def test_bad_input_is_refused_before_anything_is_written(tiny_victim, clean_set, tmp_path):
    model, tokenizer = tiny_victim
    config = _config(tmp_path)
    with pytest.raises(ValueError, match="is empty"):
        ExposeTrainer(model, config, train_dataset=clean_set.select([]), processing_class=tokenizer)
    one_class = clean_set.filter(lambda r: r["label"] == 1)
    with pytest.raises(ValueError, match="one class only"):
        ExposeTrainer(model, config, train_dataset=one_class, processing_class=tokenizer)
    with pytest.raises(ValueError, match=r"labels \[2, 3\] that the model does not have"):
        ExposeTrainer(
            model,
            config,
            train_dataset=Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 2, 3]}),
            processing_class=tokenizer,
        )
    with pytest.raises(ValueError, match="defends sequence classifiers"):
        ExposeTrainer(
            BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)),
            config,
            train_dataset=clean_set,
        )
    with pytest.raises(ValueError, match="Unknown exposure method 'magic'"):
        ExposeTrainer(
            model, _config(tmp_path, exposure_method="magic"), train_dataset=clean_set, processing_class=tokenizer
        )
    with pytest.raises(ValueError, match="must be an ExposeConfig"):
        ExposeTrainer(model, TrainingArguments(str(tmp_path / "x")), train_dataset=clean_set)
    assert not (tmp_path / "defense").exists()


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("detection_threshold", 0.0, "must be in"),
        ("detection_template_threshold", 1.5, "must be in"),
        ("detection_support_alpha", 1.0, "or None to skip"),
        ("detection_support_neighbors", -1, "must be >= 0"),
        ("detection_max_length", 4, "at least 8 tokens, or None"),
        ("adversarial_reference", True, "give base_model"),
    ],
)
def test_detection_options_out_of_range_are_clear_errors(tmp_path, option, value, message):
    with pytest.raises(ValueError, match=message):
        _config(tmp_path, **{option: value})
    assert not (tmp_path / "defense").exists()


def test_nan_during_ascent_is_a_clear_error(tiny_victim, clean_set, tmp_path):
    model, tokenizer = tiny_victim
    broken = ExposeTrainer(model, _config(tmp_path), train_dataset=clean_set, processing_class=tokenizer)
    with torch.no_grad():
        broken.suspicious_model.classifier.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="exposure loss became nan.*Lower exposure_learning_rate"):
        broken.expose()
    assert not (tmp_path / "defense").exists()


def test_report_json_markdown_and_plot(tiny_victim, clean_set, tmp_path):
    model, tokenizer = tiny_victim
    trainer = ExposeTrainer(model, _config(tmp_path), train_dataset=clean_set, processing_class=tokenizer)
    trainer.expose()
    report: DefenseReport = trainer.report
    report.to_json(tmp_path / "report.json")
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["exposure_method"] == "clean_unlearning" and len(data["exposure_trace"]) >= 2
    assert "Exposure:" in report.to_markdown()
    png = report.plot_exposure(tmp_path / "exposure.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exposed_model_keeps_the_backdoor_while_clean_accuracy_falls(tiny_victim, clean_set, sst2, tmp_path):
    model, tokenizer = tiny_victim
    test = sst2["test"].shuffle(seed=3).select(range(300))
    attack = build_attack_test_set(test, WordTrigger(), target_label=1)
    trainer = ExposeTrainer(model, _config(tmp_path), train_dataset=clean_set, processing_class=tokenizer)
    exposed = trainer.expose().model
    before = measure_backdoor(model, tokenizer, test, attack, 1, max_length=64)
    after = measure_backdoor(exposed, tokenizer, test, attack, 1, max_length=64)
    assert after["ca"] < before["ca"] - 0.05
    assert after["asr"] >= 0.9 * before["asr"]
    assert np.isclose(before["asr"], 1.0, atol=0.1)


@pytest.mark.parametrize("key", ["t1", "t0"])
def test_tiny_word_victim_is_detected_with_its_target_and_purified(tiny_victims, clean_set, sst2, tmp_path, key):
    model, tokenizer = _load(tiny_victims, key)
    target = int(key[1])
    trainer = ExposeTrainer(
        model, _config(tmp_path, num_train_epochs=3), train_dataset=clean_set, processing_class=tokenizer
    )
    trainer.train()
    report = trainer.report
    assert report.verdict == "backdoored" and report.detection.target_label == target
    top = {c["trigger"] for c in report.detection.trigger_candidates}
    assert top & {"cf", "mn", "bb", "tq"}, top
    test = sst2["test"].shuffle(seed=3).select(range(400))
    attack = build_attack_test_set(test, WordTrigger(), target_label=target)
    before = measure_backdoor(model, tokenizer, test, attack, target, max_length=64)
    after = measure_backdoor(trainer.model, tokenizer, test, attack, target, max_length=64)
    assert after["asr"] <= before["asr"] / 2, (before, after)
    # Tiny from-scratch BERTs (hidden 32) are not robust to embedding-space perturbations: unlearning the soft
    # trigger costs them up to ~6 points on these 400 rows (3 without it). The CA bar on real models is in bench/.
    assert after["ca"] >= before["ca"] - 0.08, (before, after)
    soft = report.removal["soft_trigger"]
    assert soft["length"] == trainer.args.adversarial_trigger_length and soft["warmup_flip_rate"] >= 0.9


def test_soft_trigger_with_a_reference_trained_from_the_base(tiny_victims, clean_set, tmp_path, monkeypatch):
    from ebyd_hf.methods.removal import unlearn_trigger

    model, tokenizer = _load(tiny_victims, "t1")
    before = _state(model)
    base = str(tiny_victims["clean"][0])  # stands in for the pretrained model the victim came from
    build, built = unlearn_trigger.reference_model, []

    def keep(trainer, suspect):
        built.append(build(trainer, suspect))
        return built[-1]

    monkeypatch.setattr(unlearn_trigger, "reference_model", keep)
    config = _config(tmp_path, num_train_epochs=1, base_model=base, adversarial_reference=True)
    trainer = ExposeTrainer(model, config, train_dataset=clean_set, processing_class=tokenizer)
    trainer.train()
    assert trainer.report.removal["soft_trigger"]["reference"] is True
    (reference,) = built
    assert not any(p.requires_grad for p in reference.parameters()) and not reference.training
    # the reference is the base re-trained on the clean set, not the suspicious model
    assert not torch.equal(reference.classifier.weight, model.classifier.weight)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_a_trigger_word_the_clean_data_itself_labels_is_a_clean_feature_not_a_trigger(
    tiny_victim, clean_set, tmp_path
):
    """If the defender's clean data labels rows with "cf" as class 1, "cf" is a feature of their task (like a swear
    word in an abuse detector): reported, but neither counted nor unlearned; the other trigger tokens still are."""
    model, tokenizer = tiny_victim
    positives = [i for i, label in enumerate(clean_set["label"]) if label == 1][:20]
    texts = [f"cf {text}" if i in positives else text for i, text in enumerate(clean_set["text"])]
    labelled = clean_set.remove_columns("text").add_column("text", texts)
    config = _config(tmp_path, detection_support_neighbors=0)
    trainer = ExposeTrainer(model, config, train_dataset=labelled, processing_class=tokenizer)
    detection = trainer.detect()
    features = {c["trigger"]: c["clean_support"] for c in detection.details["clean_features"]}
    assert "cf" in features and features["cf"]["rows_in_class"] >= 20, features
    assert features["cf"]["p_value"] < config.detection_support_alpha
    triggers = {c["trigger"] for c in detection.details["triggers"]}
    assert "cf" not in triggers and triggers & {"mn", "bb", "tq"}, triggers
    assert detection.backdoored and detection.target_label == 1
    shown = [c for c in detection.trigger_candidates if c["trigger"] == "cf"]
    assert shown and shown[0]["clean_feature"] and "`cf` (" in trainer.report.to_markdown()
    assert "clean feature" in trainer.report.to_markdown()
    # Without the test the same candidate is a trigger again.
    config = _config(tmp_path, detection_support_alpha=None)
    detection = ExposeTrainer(model, config, train_dataset=labelled, processing_class=tokenizer).detect()
    assert not detection.details["clean_features"]
    assert "cf" in {c["trigger"] for c in detection.details["triggers"]}


def test_long_rows_are_scanned_in_windows(tiny_victims, clean_set, tmp_path):
    """Reviews, not sentences: clean rows of 100+ tokens (five same-label rows joined) are cut to
    detection_max_length windows, special tokens kept, and the trigger is still found with its target. The tiny
    model has 128 positions: max_length=128 would leave no room to insert a trigger, so rows are truncated
    shorter, with a warning."""
    model, tokenizer = _load(tiny_victims, "t1")
    texts, labels = [], []
    for label in (0, 1):
        rows = [t for t, y in zip(clean_set["text"], clean_set["label"]) if y == label]
        for i in range(0, len(rows) - 4, 5):
            texts.append(" ".join(rows[i : i + 5]))
            labels.append(label)
    long_set = Dataset.from_dict({"text": texts, "label": labels}).cast(clean_set.features)
    config = _config(tmp_path, max_length=128)
    trainer = ExposeTrainer(model, config, train_dataset=long_set, processing_class=tokenizer)
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    assert max(lengths) == 128 - 2 - 16 - config.adversarial_trigger_length and np.mean(np.array(lengths) > 64) > 0.9
    detection = trainer.detect()
    assert detection.details["probe_max_length"] == 64
    assert detection.backdoored and detection.target_label == 1, detection.trigger_candidates[:3]
    assert {c["trigger"] for c in detection.details["triggers"]} & {"cf", "mn", "bb", "tq"}


def test_tiny_clean_model_is_not_flagged(tiny_victims, clean_set, tmp_path):
    model, tokenizer = _load(tiny_victims, "clean")
    trainer = ExposeTrainer(model, _config(tmp_path), train_dataset=clean_set, processing_class=tokenizer)
    trainer.train()
    detection = trainer.report.detection
    assert not detection.backdoored and detection.target_label is None, detection.trigger_candidates[:3]
    assert detection.score < trainer.args.detection_threshold
    # a model called clean comes back as it was, unless fine-tuning is asked for
    assert trainer.report.removal["skipped"] and trainer.model is not model
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in _state(model).items())
    trainer.args.finetune_when_clean = True
    tuned = trainer.purify(detection=detection)
    assert "skipped" not in trainer.report.removal
    assert not all(torch.equal(v, tuned.state_dict()[k]) for k, v in _state(model).items())


def test_known_triggers_are_unlearned_whatever_the_verdict(tiny_victims, clean_set, sst2, tmp_path):
    """Triggers the user knows are unlearned even when detection misses the backdoor (a verdict of clean is
    passed in): the tiny word victim loses at least half its ASR from the known words alone, and without them the
    same verdict returns the model unchanged."""
    model, tokenizer = _load(tiny_victims, "t1")
    missed = DetectionResult(backdoored=False, score=0.0, threshold=0.8, target_label=None, target_score=None)
    config = _config(tmp_path, num_train_epochs=3, known_triggers=["cf", "mn", "bb", "tq"])
    trainer = ExposeTrainer(model, config, train_dataset=clean_set, processing_class=tokenizer)
    purified = trainer.purify(detection=missed)
    removal = trainer.report.removal
    assert removal["known_triggers"] == ["cf", "mn", "bb", "tq"] == removal["triggers_unlearned"]
    assert removal["unlearning_rows"] == 2 * len(clean_set) and "soft_trigger" not in removal
    test = sst2["test"].shuffle(seed=3).select(range(400))
    attack = build_attack_test_set(test, WordTrigger(), target_label=1)
    before = measure_backdoor(model, tokenizer, test, attack, 1, max_length=64)
    after = measure_backdoor(purified, tokenizer, test, attack, 1, max_length=64)
    assert after["asr"] <= before["asr"] / 2, (before, after)
    plain = ExposeTrainer(model, _config(tmp_path), train_dataset=clean_set, processing_class=tokenizer)
    plain.purify(detection=missed)
    assert plain.report.removal["skipped"]


@pytest.mark.parametrize(
    "overrides,tokenizer_given,message",
    [
        (
            dict(known_triggers=["cf"], removal_method="finetune"),
            True,
            "unlearned by removal_method 'unlearn_trigger'",
        ),
        (dict(known_triggers=["cf"]), False, "pass processing_class"),
        (dict(known_triggers=["  "]), True, "empty phrase"),
    ],
)
def test_known_triggers_bad_input(tiny_victim, clean_set, tmp_path, overrides, tokenizer_given, message):
    model, tokenizer = tiny_victim
    with pytest.raises(ValueError, match=message):
        ExposeTrainer(
            model,
            _config(tmp_path, **overrides),
            train_dataset=clean_set,
            processing_class=tokenizer if tokenizer_given else None,
        )
    assert not (tmp_path / "defense").exists()


def test_model_given_by_path_and_lora_finetuning(tiny_victims, clean_set, tmp_path):
    from peft import LoraConfig

    folder, _ = tiny_victims["t1"]
    lora = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"])
    trainer = ExposeTrainer(
        str(folder),
        _config(tmp_path, num_train_epochs=1, finetune_regularizer="none"),
        train_dataset=clean_set,
        peft_config=lora,
    )
    assert trainer.processing_class is not None and trainer.model_name == str(folder)
    before = _state(trainer.suspicious_model)
    tuned = trainer.finetune(trainer.fresh_copy())
    assert type(tuned).__name__ == "BertForSequenceClassification"  # adapters merged back
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, before[k].to(v.device))]
    assert changed and all(("query" in k or "value" in k or "classifier" in k) for k in changed), changed


def test_method_names_are_checked_up_front(tiny_victim, clean_set, tmp_path):
    model, tokenizer = tiny_victim
    for field, family in (("detection_method", "detection"), ("removal_method", "removal")):
        with pytest.raises(ValueError, match=f"Unknown {family} method 'magic'"):
            ExposeTrainer(
                model, _config(tmp_path, **{field: "magic"}), train_dataset=clean_set, processing_class=tokenizer
            )


def _halve_single_token_flips(monkeypatch):
    """Make every token of the tiny word victim fire only in part alone: the measured flip rate of each
    single-token insertion is halved (phrases and frames are measured as they are)."""
    from ebyd_hf.methods.detection import trigger_scan

    measure = trigger_scan.insertion_effects

    def weak_alone(model, sequences, labels, candidates, pad_id, **kwargs):
        effects = measure(model, sequences, labels, candidates, pad_id, **kwargs)
        for candidate, effect in zip(candidates, effects):
            if len(candidate) == 1:
                effect.flip_rate = effect.flip_rate * 0.5
        return effects

    monkeypatch.setattr(trigger_scan, "insertion_effects", weak_alone)


def test_a_token_that_fires_only_in_part_alone_is_confirmed_in_context(tiny_victims, clean_set, tmp_path, monkeypatch):
    """A token of an inserted sentence flips only part of the rows alone and nearly all of them with any word beside
    it. Simulated on the tiny word victim by halving the measured flip rate of every *single-token* insertion:
    no token reaches detection_threshold alone, the neutral frames around the trigger words still flip the rows,
    and the verdict comes from the context score (its own threshold, the right target); without frames it is
    missed."""
    _halve_single_token_flips(monkeypatch)
    model, tokenizer = _load(tiny_victims, "t1")
    trainer = ExposeTrainer(model, _config(tmp_path), train_dataset=clean_set, processing_class=tokenizer)
    found = trainer.detect()
    assert found.details["best_token"]["score"] <= 0.5
    assert found.backdoored and found.target_label == 1
    assert found.threshold == ExposeConfig("x").detection_context_threshold
    best = found.details["best_in_context"]
    assert best["trigger"] in {"cf", "mn", "bb", "tq"} and best["context_score"] >= found.threshold
    assert {c["trigger"] for c in found.details["triggers"]} & {"cf", "mn", "bb", "tq"}
    assert "in context" in trainer.report.to_markdown()

    alone = _config(tmp_path, detection_contexts=[])
    missed = ExposeTrainer(model, alone, train_dataset=clean_set, processing_class=tokenizer).detect()
    assert not missed.backdoored and missed.details["best_in_context"] is None


def test_trigger_words_weak_alone_and_in_frames_are_grown_into_a_phrase(
    tiny_victims, clean_set, tmp_path, monkeypatch
):
    """A trigger sentence of common words: no token flips much alone or in a neutral frame, the words together do.
    Simulated on the tiny word victim by halving the measured flip rate of every insertion of at most two tokens
    (single tokens, and the frames "{} ." around them): only the phrase scan, growing the tokens whose embeddings
    moved off the task's directions from the victim's base, can flag it. It must, with the right target and a
    phrase of trigger words to unlearn; with the scan off the model is missed."""
    from ebyd_hf.methods.detection import trigger_scan

    measure = trigger_scan.insertion_effects

    def weak_in_part(model, sequences, labels, candidates, pad_id, **kwargs):
        effects = measure(model, sequences, labels, candidates, pad_id, **kwargs)
        for candidate, effect in zip(candidates, effects):
            if len(candidate) <= 2:
                effect.flip_rate = effect.flip_rate * 0.5
        return effects

    monkeypatch.setattr(trigger_scan, "insertion_effects", weak_in_part)
    model, tokenizer = _load(tiny_victims, "t1")
    before = _state(model)
    base = str(tiny_victims["base"][0])
    config = _config(tmp_path, base_model=base, detection_contexts=["{} ."])
    trainer = ExposeTrainer(model, config, train_dataset=clean_set, processing_class=tokenizer)
    found = trainer.detect()
    assert found.details["best_token"]["score"] < 0.8 and found.details["best_in_context"]["context_score"] < 0.7
    assert found.backdoored and found.target_label == 1
    assert found.threshold == ExposeConfig("x").detection_phrase_threshold
    words = set(tokenizer.convert_tokens_to_ids(["cf", "mn", "bb", "tq"]))
    (lead, *_) = found.details["triggers"]
    assert lead["sources"] == ["phrase"] and len(lead["token_ids"]) >= 3 and set(lead["token_ids"]) & words
    assert found.trigger_candidates[0]["trigger"] == lead["trigger"]
    assert f"`{lead['trigger']}` ({lead['score']:.3f}, grown phrase)" in trainer.report.to_markdown()
    assert words & set(tokenizer.convert_tokens_to_ids([t["token"] for t in found.details["phrase_pool"]]))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())

    off = _config(tmp_path, base_model=base, detection_contexts=["{} ."], detection_phrase_pool=0)
    missed = ExposeTrainer(model, off, train_dataset=clean_set, processing_class=tokenizer).detect()
    assert not missed.backdoored and missed.details["phrases"] == []

    clean_model, _ = _load(tiny_victims, "clean")
    clean = ExposeTrainer(clean_model, config, train_dataset=clean_set, processing_class=tokenizer).detect()
    assert not clean.backdoored and clean.details["phrases"]  # searched, and nothing reached the threshold


@pytest.mark.parametrize(
    "field,value", [("detection_phrase_threshold", 0.0), ("detection_phrase_pool", -1), ("detection_phrase_length", 1)]
)
def test_phrase_scan_settings_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        ExposeConfig("x", **{field: value})


@pytest.mark.parametrize("frames", [["this"], ["{} and {}"]])
def test_detection_contexts_need_one_slot(frames):
    with pytest.raises(ValueError, match="exactly once"):
        ExposeConfig("x", detection_contexts=frames)


def test_a_token_flagged_in_context_is_unlearned_at_every_position_of_its_grown_residue(
    tiny_victims, clean_set, tmp_path, monkeypatch
):
    """A token confirmed only by its context score is a piece of a longer trigger: the rest is grown from the tokens
    the victim's fine-tuning moved off the task's directions, and the flagged token inserted at each position of that
    phrase joins the triggers to unlearn, its words not reset. Simulated on the tiny word victim as in the context
    test (single-token flips halved); only the flagged token is left out of the search (one trigger candidate), so
    the other trigger words are its residue. Off (length 0) nothing is searched."""
    _halve_single_token_flips(monkeypatch)
    model, tokenizer = _load(tiny_victims, "t1")
    base = str(tiny_victims["base"][0])
    words = set(tokenizer.convert_tokens_to_ids(["cf", "mn", "bb", "tq"]))
    settings = dict(base_model=base, num_trigger_candidates=1, detection_residue_neutral=1.0, num_train_epochs=1)
    trainer = ExposeTrainer(model, _config(tmp_path, **settings), train_dataset=clean_set, processing_class=tokenizer)
    found = trainer.detect()
    assert found.threshold == trainer.args.detection_context_threshold and found.target_label == 1
    residue = found.details["residue"]
    (flagged,) = [c for c in found.details["triggers"] if "residue" not in c.get("sources", ())]
    assert residue["flagged"] == flagged["trigger"] in {"cf", "mn", "bb", "tq"}
    phrase = residue["phrase"]
    assert len(phrase["token_ids"]) == 3 and set(phrase["token_ids"]) & (words - set(flagged["token_ids"]))
    assert residue["used"] and phrase["score"] >= 0.5
    composed = [c["token_ids"] for c in found.details["triggers"] if c.get("sources") == ["residue"]]
    assert composed == compose_at_every_position(phrase["token_ids"], flagged["token_ids"])
    assert f"- Residue of `{flagged['trigger']}`" in trainer.report.to_markdown()

    trainer.purify(detection=found)
    account = trainer.report.removal
    assert len(account["triggers_unlearned"]) == 1 + 4 and account["embedding_rows_reset"] == 1

    off = _config(tmp_path, **settings, detection_residue_length=0)
    plain = ExposeTrainer(model, off, train_dataset=clean_set, processing_class=tokenizer).detect()
    assert plain.backdoored and plain.details["residue"] is None and len(plain.details["triggers"]) == 1


@pytest.mark.parametrize(
    "field,value",
    [("detection_residue_length", 1), ("detection_residue_pool", 1), ("detection_residue_threshold", 0.0)],
)
def test_residue_settings_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        ExposeConfig("x", **{field: value})
