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
from ebyd_hf.methods.removal.activeness import ActivenessHooks, FinetuneRegularizerConfig
from ebyd_hf.neurons import ffn_blocks, mean_ffn_activations, prune_ffn_neurons


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
        exposure_config={"eval_steps": 1},
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
        _config(tmp_path, exposure_config={"eval_steps": 1, "stop_collapse": 0.7, "stop_accuracy": 0.0}),
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
        _config(tmp_path, removal_method="fine_pruning", removal_config={"ratio": 0.25}, num_train_epochs=1),
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
    config = _config(tmp_path, num_train_epochs=1)
    trainer = ExposeTrainer(model, config, train_dataset=clean_set, processing_class=tokenizer)
    for regularizer in ("none", "activeness"):
        hooks = ActivenessHooks.from_config(FinetuneRegularizerConfig(regularizer=regularizer))
        results[regularizer] = _state(trainer.finetune(trainer.fresh_copy(), hooks=hooks))
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


def test_permuted_labels_train_every_row_toward_the_next_class(tiny_victim, clean_set, tmp_path):
    """The loss is cross-entropy toward (y + shift) mod num_labels; a shift that moves no label is refused."""
    from ebyd_hf.methods.exposure.permuted_labels import PermutedLabels, PermutedLabelsConfig

    model, tokenizer = tiny_victim
    batch = tokenizer(clean_set["text"][:16], padding=True, return_tensors="pt")
    labels = torch.tensor(clean_set["label"][:16])
    inputs = dict(batch, labels=labels)
    loss, outputs = PermutedLabels(PermutedLabelsConfig()).loss(None, model, inputs)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(outputs.logits, 1 - labels))
    assert torch.equal(inputs["labels"], labels)  # the batch is left as it was
    with pytest.raises(ValueError, match="shift=2 leaves every label"):
        PermutedLabels(PermutedLabelsConfig(shift=2)).loss(None, model, inputs)


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
    top = {c.trigger for c in report.detection.trigger_candidates}
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
    assert soft["length"] == trainer.args.removal_config.soft_trigger_length and soft["warmup_flip_rate"] >= 0.9


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
    config = _config(tmp_path, num_train_epochs=1, base_model=base, removal_config={"soft_trigger_reference": True})
    trainer = ExposeTrainer(model, config, train_dataset=clean_set, processing_class=tokenizer)
    trainer.train()
    assert trainer.report.removal["soft_trigger"]["reference"] is True
    (reference,) = built
    assert not any(p.requires_grad for p in reference.parameters()) and not reference.training
    # the reference is the base re-trained on the clean set, not the suspicious model
    assert not torch.equal(reference.classifier.weight, model.classifier.weight)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_each_detected_target_gets_its_own_soft_trigger_taking_the_steps_in_turn(
    tiny_victim, clean_set, tmp_path, monkeypatch
):
    """A model flagged toward two labels: one soft trigger per target, each warmed up against the suspicious model
    (the second from the trigger recovered toward it), and the fine-tuning steps take them in turn."""
    from ebyd_hf.adversarial import SoftTrigger
    from ebyd_hf.report import TriggerCandidate

    model, tokenizer = tiny_victim
    ids = tokenizer.convert_tokens_to_ids(["cf", "mn"])
    found = [TriggerCandidate("mn", [ids[1]], 0, 0.9), TriggerCandidate("cf", [ids[0]], 1, 1.0)]  # 0's listed first
    detection = DetectionResult(
        backdoored=True, score=1.0, threshold=0.8, target_label=1, target_score=1.0, triggers=found, other_targets=[0]
    )
    starts, steps = {}, []
    init, step = SoftTrigger.__init__, SoftTrigger.step

    def remember(self, model, target, length, learning_rate, init_ids, *args, **kwargs):
        starts[target] = init_ids
        init(self, model, target, length, learning_rate, init_ids, *args, **kwargs)

    def record(self, *args, **kwargs):
        steps.append(self.target)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(SoftTrigger, "__init__", remember)
    monkeypatch.setattr(SoftTrigger, "step", record)
    config = _config(tmp_path, num_train_epochs=1, removal_config={"soft_trigger_warmup_steps": 2})
    trainer = ExposeTrainer(model, config, train_dataset=clean_set, processing_class=tokenizer)
    trainer.purify(detection=detection)
    soft = trainer.report.removal["soft_trigger"]
    assert soft["targets"] == [1, 0] and len(soft["warmup_flip_rates"]) == 2
    assert starts == {1: [ids[0]], 0: [ids[1]]}
    warmup, tuning = steps[:4], steps[4:]
    assert warmup == [1, 1, 0, 0] and len(tuning) >= 4
    assert tuning == [1, 0] * (len(tuning) // 2) + [1] * (len(tuning) % 2)


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
        _config(tmp_path, num_train_epochs=1, removal_config={"regularizer": "none"}),
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


def test_stages_run_on_their_own_trainer_and_train_returns_the_real_loss(tiny_victim, clean_set, tmp_path):
    model, tokenizer = tiny_victim
    config = _config(tmp_path, removal_method="finetune", num_train_epochs=1)
    trainer = ExposeTrainer(model, config, train_dataset=clean_set, processing_class=tokenizer)
    args, optimizer = trainer.args, trainer.optimizer
    trainer.expose()
    assert trainer.args is args and trainer.optimizer is optimizer  # nothing of the trainer is swapped by a stage
    output = trainer.train()
    steps = int(np.ceil(len(clean_set) / config.per_device_train_batch_size))
    assert output.global_step == steps == trainer.state.global_step
    assert np.isfinite(output.training_loss) and output.training_loss > 0.01  # the fine-tuning's mean loss
    assert output.metrics["train_runtime"] >= trainer.report.timings["purify"]
    assert not (tmp_path / "defense").exists()  # stages write nothing


def test_a_stage_that_diverges_saves_nothing(tiny_victim, clean_set, tmp_path):
    model, tokenizer = tiny_victim
    config = _config(tmp_path, removal_method="finetune", learning_rate=1e30, num_train_epochs=1)
    trainer = ExposeTrainer(model, config, train_dataset=clean_set, processing_class=tokenizer)
    with pytest.raises(FloatingPointError, match="(loss became|non-finite weights)"):
        trainer.train()
    assert trainer.report.removal_method is None and not (tmp_path / "defense").exists()


def test_save_model_never_writes_into_the_model_folder_or_a_full_folder(tiny_victims, clean_set, tmp_path):
    folder, _ = tiny_victims["t1"]
    link = tmp_path / "link-to-model"
    link.symlink_to(folder, target_is_directory=True)
    with pytest.raises(ValueError, match="is the input"):
        ExposeTrainer(str(link), ExposeConfig(str(folder), use_cpu=True), train_dataset=clean_set)
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("the user's file")
    with pytest.raises(ValueError, match="not empty.*overwrite_output_dir"):
        ExposeTrainer(str(folder), ExposeConfig(str(full), use_cpu=True), train_dataset=clean_set)
    config = _config(tmp_path, removal_method="finetune", num_train_epochs=1)
    trainer = ExposeTrainer(str(folder), config, train_dataset=clean_set)
    trainer.purify()
    trainer.save_model()
    trainer.save_model()  # a folder this trainer wrote may be written again (push_to_hub saves twice)
    trainer.create_model_card()
    assert (tmp_path / "defense" / "model.safetensors").exists() and (tmp_path / "defense" / "README.md").exists()
    with pytest.raises(ValueError, match="not empty"):
        trainer.save_model(str(full))
    assert (full / "mine.txt").read_text() == "the user's file" and len(list(full.iterdir())) == 1


def test_no_hub_repository_is_created_before_something_is_pushed(tiny_victim, clean_set, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, *a, **k: calls.append((a, k)))
    model, tokenizer = tiny_victim
    config = _config(tmp_path, push_to_hub=True, hub_model_id="me/purified", removal_method="finetune")
    trainer = ExposeTrainer(model, config, train_dataset=clean_set, processing_class=tokenizer)
    trainer.detect()
    assert calls == []


def _toy_step(data):
    """A Trainer-like step on a linear model: the loss of ``data``, backward included, returned detached."""

    def step(model, inputs, num_items_in_batch=None):
        calls.append(1)
        loss = ((model(data[0]) - data[1]) ** 2).mean()
        loss.backward()
        return loss.detach()

    calls = []
    return step, calls


def test_activeness_interval_takes_the_second_pass_every_kth_step_and_reuses_its_correction():
    torch.manual_seed(0)
    data = torch.randn(8, 4), torch.randn(8, 1)
    model, twin = torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)
    twin.load_state_dict(model.state_dict())
    step, calls = _toy_step(data)
    every, every_calls = _toy_step(data)
    sparse, dense = ActivenessHooks(0.7, 0.05, interval=3), ActivenessHooks(0.7, 0.05)
    sparse.training_step(None, model, None, None, step)
    dense.training_step(None, twin, None, None, every)
    for p, q in zip(model.parameters(), twin.parameters()):  # a refresh step is the full regulariser
        torch.testing.assert_close(p.grad, q.grad)
    correction, norm = sparse._correction, sparse._norm
    for p in model.parameters():
        p.grad = None
    with torch.no_grad():
        model.weight.mul_(1.1)  # a new point, so the reused step's own gradient differs from the stored one
    plain = [
        g.detach().clone()
        for g in torch.autograd.grad(((model(data[0]) - data[1]) ** 2).mean(), list(model.parameters()))
    ]
    sparse.training_step(None, model, None, None, step)
    now = torch.sqrt(sum((g**2).sum() for g in plain)).item()
    for p, g, c in zip(model.parameters(), plain, correction):
        torch.testing.assert_close(p.grad, g + 0.7 * now / norm * c)
    sparse.training_step(None, model, None, None, step)
    sparse.training_step(None, model, None, None, step)  # the 4th call refreshes again
    assert len(calls) == 2 + 1 + 1 + 2 and len(every_calls) == 2


def test_shared_soft_trigger_update_takes_no_pass_of_its_own(tiny_victim, clean_set, tmp_path, monkeypatch):
    """``soft_trigger_update="shared"``: after its warm-up the trigger takes no step of its own but moves on every
    fine-tuning step, from the pass itself; ``step_budget="finetune"`` keeps a plain fine-tune's steps although
    the set doubles, and ``soft_trigger_rows`` sends only part of each batch through with the trigger."""
    from ebyd_hf.adversarial import SoftTrigger
    from ebyd_hf.report import TriggerCandidate

    model, tokenizer = tiny_victim
    ids = tokenizer.convert_tokens_to_ids(["cf"])
    detection = DetectionResult(
        backdoored=True,
        score=1.0,
        threshold=0.8,
        target_label=1,
        target_score=1.0,
        triggers=[TriggerCandidate("cf", ids, 1, 1.0)],
    )
    own, applied, widths = [], [], []
    step, apply = SoftTrigger.step, SoftTrigger.apply_gradient
    inputs = SoftTrigger.model_inputs

    def record_step(self, *args, **kwargs):
        own.append(1)
        return step(self, *args, **kwargs)

    def record_apply(self, grad, reduce=None):
        applied.append(float(grad.abs().sum()))
        return apply(self, grad, reduce)

    def record_inputs(self, model, batch, vectors, pad_clean=False, position=1, rows=None):
        widths.append((batch["input_ids"].shape[0], None if rows is None else len(rows)))
        return inputs(self, model, batch, vectors, pad_clean, position, rows)

    monkeypatch.setattr(SoftTrigger, "step", record_step)
    monkeypatch.setattr(SoftTrigger, "apply_gradient", record_apply)
    monkeypatch.setattr(SoftTrigger, "model_inputs", record_inputs)
    settings = dict(soft_trigger_warmup_steps=3, soft_trigger_update="shared", soft_trigger_rows=0.25)
    config = _config(tmp_path, num_train_epochs=2, per_device_train_batch_size=32, removal_config=settings)
    trainer = ExposeTrainer(model, config, train_dataset=clean_set, processing_class=tokenizer)
    trainer.purify(detection=detection)
    tuning = trainer.state.max_steps
    assert tuning == 2 * -(-2 * len(clean_set) // 32)  # the copies double the set; the default budget is epochs
    assert len(own) == 3 and len(applied) == 3 + tuning
    assert sum(a > 0 for a in applied[3:]) >= 0.8 * tuning  # a batch whose picked rows are all of the target: 0
    assert all(rows == round(0.25 * size) for size, rows in widths[3:] if rows is not None)

    own.clear()
    settings |= dict(step_budget="finetune", soft_trigger_rows=1.0)
    config = _config(tmp_path, num_train_epochs=2, per_device_train_batch_size=32, removal_config=settings)
    trainer = ExposeTrainer(model, config, train_dataset=clean_set, processing_class=tokenizer)
    trainer.purify(detection=detection)
    assert trainer.state.max_steps == -(-2 * len(clean_set) // 32)  # one epoch of rows and copies
    assert trainer.report.removal["unlearning_epochs"] == 1.0 and len(own) == 3
