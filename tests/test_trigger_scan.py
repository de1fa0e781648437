"""The trigger scan (``detection_method="trigger_scan"``): its config, each verdict rule on a hand-built
:class:`ScanContext`, and the whole scan on the tiny victims (word-trigger victims and a clean model)."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch
from conftest import tiny_bert
from datasets import Dataset

from ebyd_hf import ExposeConfig, ExposeTrainer
from ebyd_hf.methods import DETECTION_METHODS
from ebyd_hf.methods.detection.trigger_scan import (
    ContextRule,
    PhraseRule,
    ScanContext,
    TemplateRule,
    TokenRule,
    TriggerScan,
    TriggerScanConfig,
    candidates,
)
from ebyd_hf.report import TriggerCandidate
from ebyd_hf.trigger_search import compose_at_every_position

TRIGGER_WORDS = {"cf", "mn", "bb", "tq"}
SETTINGS = dict(
    use_cpu=True,
    disable_tqdm=True,
    logging_strategy="no",
    per_device_eval_batch_size=128,
    learning_rate=1e-3,
    num_train_epochs=1,
    seed=0,
)


def _load(tiny_victims, key):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder, _ = tiny_victims[key]
    return AutoModelForSequenceClassification.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def clean_set(sst2):
    return sst2["validation"].shuffle(seed=0).select(range(300))


_CONFIG_FIELD = "detection_config" in {f.name for f in dataclasses.fields(ExposeConfig)}


def _trainer(model, tokenizer, dataset, tmp_path, detection=None, **overrides):
    """A trainer whose detection method is the scan with ``detection`` (a dict of TriggerScanConfig options)."""
    settings = SETTINGS | overrides
    if _CONFIG_FIELD:
        settings["detection_config"] = detection
    trainer = ExposeTrainer(
        model, ExposeConfig(str(tmp_path / "defense"), **settings), train_dataset=dataset, processing_class=tokenizer
    )
    trainer.scan_options = detection
    return trainer


def _detect(trainer):
    if _CONFIG_FIELD:
        return trainer.detect()
    trainer.detection = trainer.report.detection = TriggerScan(trainer.scan_options).detect(trainer, None)
    return trainer.detection


def _weaken_insertions(monkeypatch, longest: int):
    """Make the tiny word victim's trigger fire only in part: the measured flip rate of every insertion of at most
    ``longest`` tokens into the scan's probe rows is halved (longer phrases are measured as they are)."""
    from ebyd_hf import trigger_search

    measure = trigger_search.insertion_effects

    def weak(model, sequences, labels, candidates, pad_id, **kwargs):
        effects = measure(model, sequences, labels, candidates, pad_id, **kwargs)
        for candidate, effect in zip(candidates, effects):
            if len(candidate) <= longest:
                effect.flip_rate = effect.flip_rate * 0.5
        return effects

    for name, module in list(sys.modules.items()):
        if name.startswith("ebyd_hf.methods.detection.trigger_scan") and hasattr(module, "insertion_effects"):
            monkeypatch.setattr(module, "insertion_effects", weak)


# ----------------------------------------------------------------------------------------------------- config


def test_the_scan_is_registered_with_its_config():
    assert DETECTION_METHODS["trigger_scan"] is TriggerScan and TriggerScan.config_class is TriggerScanConfig
    assert not TriggerScan.uses_exposure and TriggerScan.modalities == ("text",)
    assert TriggerScan().insertion_room() == 16 and TriggerScan({"num_candidates": 24}).insertion_room() == 24
    assert [rule.name for rule in TriggerScan.rules] == ["token", "template", "context", "phrase"]


def test_nested_options_from_a_dict_or_json_keep_the_other_defaults():
    config = TriggerScanConfig.from_value('{"phrase": {"pool": 0}, "residue": {"length": 0}, "contexts": "{} ."}')
    assert config.phrase.pool == 0 and config.phrase.threshold == 0.9 and config.residue.pool == 32
    assert config.contexts == ["{} ."] and config.threshold == 0.8
    assert TriggerScanConfig(phrase={"beam": 2}).phrase.beam == 2
    if _CONFIG_FIELD:
        args = ExposeConfig("x", detection_config={"phrase": {"pool": 0}})
        assert isinstance(args.detection_config, TriggerScanConfig) and args.detection_config.phrase.pool == 0


@pytest.mark.parametrize(
    "options,named",
    [
        ({"threshold": float("nan")}, "threshold=nan"),
        ({"threshold": 0.0}, "threshold=0.0"),
        ({"template_threshold": 1.5}, "template_threshold"),
        ({"context_threshold": 0.0}, "context_threshold"),
        ({"support_alpha": 1.0}, "support_alpha"),
        ({"support_neighbors": -1}, "support_neighbors"),
        ({"max_length": 4}, "max_length"),
        ({"rows": 0}, "rows"),
        ({"num_candidates": 0}, "num_candidates"),
        ({"context_candidates": -1}, "context_candidates"),
        ({"phrase": {"threshold": 0.0}}, "PhraseConfig.threshold"),
        ({"phrase": {"pool": -1}}, "PhraseConfig.pool"),
        ({"phrase": {"length": 1}}, "PhraseConfig.length"),
        ({"phrase": {"z": float("inf")}}, "PhraseConfig.z"),
        ({"residue": {"length": 1}}, "ResidueConfig.length"),
        ({"residue": {"pool": 1}}, "ResidueConfig.pool"),
        ({"residue": {"threshold": 0.0}}, "ResidueConfig.threshold"),
        ({"contexts": ["this"]}, "exactly once"),
        ({"contexts": ["{} and {}"]}, "exactly once"),
        ({"treshold": 0.8}, "no option 'treshold'"),
        ({"phrase": {"pol": 4}}, "no option 'pol'"),
    ],
)
def test_bad_options_are_clear_errors_naming_the_field(options, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        TriggerScanConfig.from_value(options)
    if _CONFIG_FIELD:
        with pytest.raises(ValueError, match="detection_config"):
            ExposeConfig("x", detection_config=options)


def test_off_switches_are_valid():
    config = TriggerScanConfig(
        contexts=[], templates=[], context_candidates=0, support_alpha=None, max_length=None, phrase={"pool": 0}
    )
    assert config.phrase.pool == 0 and TriggerScanConfig(residue={"length": 0, "pool": 0}).residue.length == 0


# ----------------------------------------------------------------------------------------------------- rules


def _candidate(tokens, score, target, **fields):
    return TriggerCandidate(f"t{tokens}", list(tokens), target, score, **fields)


def _context(**fields) -> ScanContext:
    """A scan context with no model: the rules read only its candidates and config."""
    base = dict(
        config=TriggerScanConfig(),
        model=None,
        tokenizer=None,
        sequences=[],
        labels=np.array([]),
        probe=[],
        probe_labels=np.array([]),
        pad_id=0,
        excluded=torch.zeros(1, dtype=torch.bool),
        num_labels=2,
    )
    return ScanContext(**(base | fields))


def _tokens():
    """Best first: a joint candidate, a clean feature (stronger than any trigger, other class), a trigger token, and
    a weak token of the other class."""
    return [
        _candidate([1, 2], 1.0, 1, sources=["joint"]),
        _candidate([3], 0.95, 0, clean_feature=True),
        _candidate([1], 0.85, 1),
        _candidate([4], 0.3, 0),
    ]


@pytest.mark.parametrize("threshold,fires", [(0.8, True), (0.85, True), (0.9, False)])
def test_token_rule_reads_the_best_single_token_that_is_not_a_clean_feature(threshold, fires):
    found = _tokens()
    reading = TokenRule().read(_context(config=TriggerScanConfig(threshold=threshold), found=found))
    outcome = reading.outcome
    assert (outcome.rule, outcome.score, outcome.target, outcome.fired) == ("token", 0.85, 1, fires)
    assert reading.evidence is found[2] and reading.details["best_token"]["score"] == 0.85
    # its triggers: every confirmed candidate toward the target, the joint one included, never the clean feature
    assert reading.triggers == ([found[0], found[2]] if fires else [])


def test_token_rule_with_only_joint_or_clean_candidates_reads_nothing():
    only = [_candidate([1, 2], 1.0, 1, sources=["joint"]), _candidate([3], 1.0, 0, clean_feature=True)]
    outcome = TokenRule().read(_context(found=only)).outcome
    assert (outcome.score, outcome.target, outcome.fired) == (0.0, None, False)


@pytest.mark.parametrize("threshold,fires", [(0.5, True), (0.55, True), (0.6, False)])
def test_template_rule_reads_the_templates_mean(threshold, fires):
    templates = [_candidate([7, 8], 0.7, 0, position="start"), _candidate([9], 0.4, 0, position="start")]
    ctx = _context(
        config=TriggerScanConfig(template_threshold=threshold),
        templates=templates,
        template_score=0.55,
        template_target=0,
    )
    reading = TemplateRule().read(ctx)
    assert (reading.outcome.score, reading.outcome.target, reading.outcome.fired) == (0.55, 0, fires)
    assert reading.triggers == ([templates[0]] if fires else [])
    assert reading.leads == (templates if fires else [])


def test_template_rule_unlearns_the_best_template_when_none_reaches_the_threshold_alone():
    templates = [_candidate([7], 0.45, 1), _candidate([9], 0.4, 1)]
    reading = TemplateRule().read(_context(templates=templates, template_score=0.6, template_target=1))
    assert reading.outcome.fired and reading.triggers == templates[:1]
    assert TemplateRule().read(_context()) is None  # no templates: not read


@pytest.mark.parametrize("threshold,fires", [(0.7, True), (0.75, True), (0.8, False)])
def test_context_rule_reads_the_best_context_score(threshold, fires):
    found = [
        _candidate([5], 0.6, 0, context_score=0.95, clean_feature=True),
        _candidate([1], 0.5, 1, context_score=0.75),
        _candidate([2], 0.45, 1, context_score=0.72),
        _candidate([3], 0.4, 0, context_score=0.2),
        _candidate([4], 0.3, 1),
    ]
    ctx = _context(config=TriggerScanConfig(context_threshold=threshold), found=found, contexts_measured=True)
    reading = ContextRule().read(ctx)
    assert (reading.outcome.score, reading.outcome.target, reading.outcome.fired) == (0.75, 1, fires)
    assert reading.evidence is found[1] and reading.details["best_in_context"]["trigger"] == "t[1]"
    # its triggers: the candidates toward the target confirmed alone or in context
    assert reading.triggers == ([c for c in found[1:3] if c.context_score >= threshold] if fires else [])


def test_context_rule_without_frames_is_not_read():
    assert ContextRule().read(_context(found=_tokens())) is None  # no tokenizer to build the frames
    unmeasured = _context(found=[_candidate([1], 0.5, 1)], contexts_measured=True)
    assert ContextRule().read(unmeasured).outcome.target is None


# ----------------------------------------------------------------------------------------------------- the scan


def test_a_word_victim_is_flagged_by_the_token_rule_and_no_other_label_is_flagged(tiny_victims, clean_set, tmp_path):
    model, tokenizer = _load(tiny_victims, "t1")
    trainer = _trainer(model, tokenizer, clean_set, tmp_path)
    found = _detect(trainer)
    assert found.backdoored and found.target_label == 1 and found.decided_by == "token"
    assert [(r.rule, r.fired) for r in found.rules] == [("token", True)]
    assert found.threshold == TriggerScanConfig().threshold
    assert {c.trigger for c in found.triggers} & TRIGGER_WORDS and all(c.target == 1 for c in found.triggers)
    assert all(c.reset_embeddings and c.position == "anywhere" for c in found.triggers)
    # read again toward label 0 (the context scores measured for it), no rule fires: one backdoor, one target
    assert found.other_targets == [] and found.details["other_targets"] == []
    assert "- Decided by: the `token` rule" in trainer.report.to_markdown()


def test_tiny_clean_model_is_not_flagged(tiny_victims, clean_set, tmp_path):
    """No rule fires; the verdict carries the token rule's reading, every rule read is recorded, and removal
    returns the model unchanged (fine-tuned only when asked)."""
    model, tokenizer = _load(tiny_victims, "clean")
    trainer = _trainer(model, tokenizer, clean_set, tmp_path)
    trainer.train()
    detection = trainer.report.detection
    assert not detection.backdoored and detection.target_label is None, detection.trigger_candidates[:3]
    assert detection.decided_by is None and not detection.triggers
    assert [r.rule for r in detection.rules] == ["token", "template", "context"]  # no base_model: no phrase rule
    assert detection.score == detection.rules[0].score < detection.threshold == TriggerScanConfig().threshold
    assert "- No rule fired: token" in trainer.report.to_markdown()
    state = model.state_dict()
    assert trainer.report.removal["skipped"] and trainer.model is not model
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in state.items())
    trainer.args.removal_config.finetune_when_clean = True
    tuned = trainer.purify(detection=detection)
    assert "skipped" not in trainer.report.removal
    assert not all(torch.equal(v, tuned.state_dict()[k]) for k, v in state.items())


def test_a_trigger_word_the_clean_data_itself_labels_is_a_clean_feature_not_a_trigger(
    tiny_victims, clean_set, tmp_path
):
    """If the defender's clean data labels rows with "cf" as class 1, "cf" is a feature of their task (like a swear
    word in an abuse detector): reported, but neither counted nor unlearned; the other trigger tokens still are."""
    model, tokenizer = _load(tiny_victims, "t1")
    positives = [i for i, label in enumerate(clean_set["label"]) if label == 1][:20]
    texts = [f"cf {text}" if i in positives else text for i, text in enumerate(clean_set["text"])]
    labelled = clean_set.remove_columns("text").add_column("text", texts)
    trainer = _trainer(model, tokenizer, labelled, tmp_path, detection={"support_neighbors": 0})
    detection = _detect(trainer)
    features = {c["trigger"]: c["clean_support"] for c in detection.details["clean_features"]}
    assert "cf" in features and features["cf"]["rows_in_class"] >= 20, features
    assert features["cf"]["p_value"] < TriggerScanConfig().support_alpha
    triggers = {c.trigger for c in detection.triggers}
    assert "cf" not in triggers and triggers & {"mn", "bb", "tq"}, triggers
    assert detection.backdoored and detection.target_label == 1
    shown = [c for c in detection.trigger_candidates if c.trigger == "cf"]
    assert shown and shown[0].clean_feature and "`cf` (" in trainer.report.to_markdown()
    assert "clean feature" in trainer.report.to_markdown()
    # Without the test the same candidate is a trigger again.
    detection = _detect(_trainer(model, tokenizer, labelled, tmp_path, detection={"support_alpha": None}))
    assert not detection.details["clean_features"]
    assert "cf" in {c.trigger for c in detection.triggers}


def test_long_rows_are_scanned_in_windows(tiny_victims, clean_set, tmp_path):
    """Reviews, not sentences: clean rows of 100+ tokens (five same-label rows joined) are cut to ``max_length``
    windows, special tokens kept, and the trigger is still found with its target. The tiny model has 128 positions:
    max_length=128 would leave no room to insert a trigger, so rows are truncated shorter, with a warning."""
    model, tokenizer = _load(tiny_victims, "t1")
    texts, labels = [], []
    for label in (0, 1):
        rows = [t for t, y in zip(clean_set["text"], clean_set["label"]) if y == label]
        for i in range(0, len(rows) - 4, 5):
            texts.append(" ".join(rows[i : i + 5]))
            labels.append(label)
    long_set = Dataset.from_dict({"text": texts, "label": labels}).cast(clean_set.features)
    trainer = _trainer(model, tokenizer, long_set, tmp_path, max_length=128)
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    assert max(lengths) <= 128 - 2 - TriggerScan().insertion_room() and np.mean(np.array(lengths) > 64) > 0.9
    detection = _detect(trainer)
    assert detection.details["probe_max_length"] == 64
    assert detection.backdoored and detection.target_label == 1, detection.trigger_candidates[:3]
    assert {c.trigger for c in detection.triggers} & TRIGGER_WORDS


def test_a_token_that_fires_only_in_part_alone_is_confirmed_in_context(tiny_victims, clean_set, tmp_path, monkeypatch):
    """A token of an inserted sentence flips only part of the rows alone and nearly all of them with any word beside
    it. Simulated on the tiny word victim by halving the measured flip rate of every *single-token* insertion:
    no token reaches the token rule's threshold, the neutral frames around the trigger words still flip the rows,
    and the context rule decides (its own threshold, the right target); without frames it is missed."""
    _weaken_insertions(monkeypatch, longest=1)
    model, tokenizer = _load(tiny_victims, "t1")
    trainer = _trainer(model, tokenizer, clean_set, tmp_path)
    found = _detect(trainer)
    assert found.details["best_token"]["score"] <= 0.5
    assert found.backdoored and found.target_label == 1 and found.decided_by == "context"
    assert [r.rule for r in found.rules] == ["token", "template", "context"]
    assert found.threshold == TriggerScanConfig().context_threshold
    best = found.details["best_in_context"]
    assert best["trigger"] in TRIGGER_WORDS and best["context_score"] >= found.threshold
    assert {c.trigger for c in found.triggers} & TRIGGER_WORDS
    assert "in context" in trainer.report.to_markdown()

    missed = _detect(_trainer(model, tokenizer, clean_set, tmp_path, detection={"contexts": []}))
    assert not missed.backdoored and missed.details["best_in_context"] is None
    assert [r.rule for r in missed.rules] == ["token", "template"]


def test_trigger_words_weak_alone_and_in_frames_are_grown_into_a_phrase(
    tiny_victims, clean_set, tmp_path, monkeypatch
):
    """A trigger sentence of common words: no token flips much alone or in a neutral frame, the words together do.
    Simulated on the tiny word victim by halving the measured flip rate of every insertion of at most two tokens
    (single tokens, and the frames "{} ." around them): only the phrase rule, growing the tokens whose embeddings
    moved off the task's directions from the victim's base, can flag it. It must, with the right target and a
    phrase of trigger words to unlearn; with the phrase rule off the model is missed."""
    _weaken_insertions(monkeypatch, longest=2)
    model, tokenizer = _load(tiny_victims, "t1")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    base = str(tiny_victims["base"][0])
    frames = {"contexts": ["{} ."]}
    trainer = _trainer(model, tokenizer, clean_set, tmp_path, detection=frames, base_model=base)
    found = _detect(trainer)
    assert found.details["best_token"]["score"] < 0.8 and found.details["best_in_context"]["context_score"] < 0.7
    assert found.backdoored and found.target_label == 1 and found.decided_by == "phrase"
    assert found.threshold == TriggerScanConfig().phrase.threshold
    words = set(tokenizer.convert_tokens_to_ids(sorted(TRIGGER_WORDS)))
    (lead, *_) = found.triggers
    assert lead.sources == ["phrase"] and len(lead.token_ids) >= 3 and set(lead.token_ids) & words
    assert lead.reset_embeddings and found.trigger_candidates[0] == lead
    assert f"`{lead.trigger}` ({lead.score:.3f}, grown phrase)" in trainer.report.to_markdown()
    assert words & set(tokenizer.convert_tokens_to_ids([t["token"] for t in found.details["phrase_pool"]]))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())

    off = frames | {"phrase": {"pool": 0}}
    missed = _detect(_trainer(model, tokenizer, clean_set, tmp_path, detection=off, base_model=base))
    assert not missed.backdoored and missed.details["phrases"] == [] and missed.rules[-1].rule == "context"

    clean_model, _ = _load(tiny_victims, "clean")
    clean = _detect(_trainer(clean_model, tokenizer, clean_set, tmp_path, detection=frames, base_model=base))
    assert not clean.backdoored and clean.details["phrases"]  # searched, and nothing reached the threshold
    assert clean.rules[-1].rule == "phrase" and not clean.rules[-1].fired


@pytest.mark.parametrize("probe_rows", [64, 24])
def test_grown_phrases_are_verified_on_the_probe_rows_the_beam_did_not_score(
    tiny_victims, clean_set, tmp_path, monkeypatch, probe_rows
):
    """A phrase picked for its flips on the beam's rows would be scored too high on them: each phrase's score is its
    flip rate on the other probe rows (all of them when the probe has no others)."""
    from ebyd_hf.methods.detection.trigger_scan import phrase as phrase_module

    calls = []
    measure = phrase_module.insertion_effects

    def spy(model, sequences, labels, candidates, pad_id, **kwargs):
        effects = measure(model, sequences, labels, candidates, pad_id, **kwargs)
        calls.append((list(sequences), [list(c) for c in candidates], effects))
        return effects

    monkeypatch.setattr(phrase_module, "insertion_effects", spy)
    model, tokenizer = _load(tiny_victims, "t1")
    trainer = _trainer(model, tokenizer, clean_set, tmp_path, base_model=str(tiny_victims["base"][0]))
    config = TriggerScanConfig(rows=probe_rows, phrase={"rows": 32})
    ctx = ScanContext.from_trainer(trainer, config)
    phrases, _ = phrase_module.grow_phrases(ctx)
    ((rows, candidates, effects),) = calls
    assert phrases and len(ctx.probe) == probe_rows
    assert rows == (ctx.probe[32:] if probe_rows > 32 else ctx.probe)
    scores = {tuple(c): e.flip_rate for c, e in zip(candidates, effects)}
    assert all(p.score == float(scores[tuple(p.token_ids)][p.target]) for p in phrases)


@pytest.mark.parametrize("threshold,fires", [(0.9, False), (0.2, True)])
def test_phrase_rule_on_the_clean_model_fires_only_above_its_threshold(
    tiny_victims, clean_set, tmp_path, threshold, fires
):
    """The phrase rule alone, on the scan context of the clean model: its weak sentiment words grown into a phrase
    flip some rows (well under the default threshold); over a threshold that low, it fires, with the phrases toward
    its target as triggers."""
    model, tokenizer = _load(tiny_victims, "clean")
    trainer = _trainer(model, tokenizer, clean_set, tmp_path, base_model=str(tiny_victims["base"][0]))
    config = TriggerScanConfig(phrase={"threshold": threshold, "regrow_pool": 0})
    reading = PhraseRule().read(ScanContext.from_trainer(trainer, config))
    outcome = reading.outcome
    assert outcome.rule == "phrase" and outcome.fired == fires and 0.2 <= outcome.score < 0.9
    assert reading.evidence.score == outcome.score and reading.evidence.target == outcome.target
    if fires:
        assert reading.triggers and all(c.score >= threshold and c.target == outcome.target for c in reading.triggers)
        assert reading.leads == [c for c in reading.triggers][:2]
    else:
        assert reading.triggers == []


def test_a_token_flagged_in_context_is_unlearned_at_every_position_of_its_grown_residue(
    tiny_victims, clean_set, tmp_path, monkeypatch
):
    """A token confirmed only by its context score is a piece of a longer trigger: the rest is grown from the tokens
    the victim's fine-tuning moved off the task's directions, and the flagged token inserted at each position of that
    phrase joins the triggers to unlearn, its words not reset. Simulated on the tiny word victim as in the context
    test (single-token flips halved); only the flagged token is left out of the search (one trigger candidate), so
    the other trigger words are its residue. Off (length 0) nothing is searched."""
    _weaken_insertions(monkeypatch, longest=1)
    model, tokenizer = _load(tiny_victims, "t1")
    base = str(tiny_victims["base"][0])
    words = set(tokenizer.convert_tokens_to_ids(sorted(TRIGGER_WORDS)))
    options = {"num_candidates": 1, "residue": {"neutral": 1.0}}
    trainer = _trainer(model, tokenizer, clean_set, tmp_path, detection=options, base_model=base)
    found = _detect(trainer)
    assert found.decided_by == "context" and found.target_label == 1
    residue = found.details["residue"]
    (flagged,) = [c for c in found.triggers if "residue" not in c.sources]
    assert residue["flagged"] == flagged.trigger in TRIGGER_WORDS and flagged.reset_embeddings
    phrase = residue["phrase"]
    assert len(phrase["token_ids"]) == 3 and set(phrase["token_ids"]) & (words - set(flagged.token_ids))
    assert residue["used"] and phrase["score"] >= 0.5
    composed = [c for c in found.triggers if c.sources == ["residue"]]
    assert [c.token_ids for c in composed] == compose_at_every_position(phrase["token_ids"], flagged.token_ids)
    assert not any(c.reset_embeddings for c in composed)
    assert found.notes == [
        f'Residue of `{flagged.trigger}`: "{phrase["trigger"]}" ({phrase["score"]:.3f}); '
        f"`{flagged.trigger}` unlearned at each of its 4 positions"
    ]
    assert f"- Residue of `{flagged.trigger}`" in trainer.report.to_markdown()

    trainer.purify(detection=found)
    account = trainer.report.removal
    assert len(account["triggers_unlearned"]) == 1 + 4 and account["embedding_rows_reset"] == 1

    off = options | {"residue": {"length": 0}}
    plain = _detect(_trainer(model, tokenizer, clean_set, tmp_path, detection=off, base_model=base))
    assert plain.backdoored and plain.details["residue"] is None and len(plain.triggers) == 1 and not plain.notes


@pytest.mark.parametrize("key", ["t1", "clean"])
def test_probes_in_bfloat16_give_the_float32_verdict(tiny_victims, clean_set, tmp_path, key):
    """``precision`` only changes how fast the probes run: the same verdict, target and best candidates."""
    model, tokenizer = _load(tiny_victims, key)
    found = {}
    for precision in ("fp32", "bf16"):
        trainer = _trainer(model, tokenizer, clean_set, tmp_path / precision, detection={"precision": precision})
        found[precision] = _detect(trainer)
    full, half = found["fp32"], found["bf16"]
    assert (half.backdoored, half.target_label, half.decided_by) == (
        full.backdoored,
        full.target_label,
        full.decided_by,
    )
    assert abs(half.score - full.score) <= 0.05, (half.score, full.score)

    # A grown phrase's word order can swap between near-tied words (seen on a machine with native bf16): compare words.
    def words(found):
        return [sorted(c.trigger.split()) for c in found.trigger_candidates[:2]]

    assert words(half) == words(full)


def test_probe_precision_is_bfloat16_only_where_asked_or_native(tokenizer, monkeypatch):
    from ebyd_hf import trigger_search

    model = tiny_bert(tokenizer)
    x = torch.ones(1, 32)
    with trigger_search.probe_autocast(model, "fp32"):
        assert model.classifier(x).dtype == torch.float32
    with trigger_search.probe_autocast(model, "bf16"):
        assert model.classifier(x).dtype == torch.bfloat16
    for native, dtype in ((False, torch.float32), (True, torch.bfloat16)):
        monkeypatch.setattr(trigger_search, "_native_cpu_bf16", lambda native=native: native)
        with trigger_search.probe_autocast(model, "auto"):
            assert model.classifier(x).dtype == dtype


@pytest.mark.parametrize(
    "num_labels,others,flagged",
    [(2, [(0, 0.9)], [0]), (2, [(0, 0.5)], []), (3, [(0, 0.9), (2, 0.85)], [0, 2]), (3, [(2, 0.95)], [2])],
)
def test_a_backdoor_toward_another_label_is_read_after_the_first(num_labels, others, flagged):
    """A model with two backdoors: once the token rule flags label 1, the rules are read again toward the labels not
    flagged yet; each one that fires adds its target and its triggers."""
    found = [_candidate([1], 1.0, 1)] + [_candidate([10 + t], score, t) for t, score in others]
    ctx = _context(found=sorted(found, key=lambda c: -c.score), num_labels=num_labels)
    scan = TriggerScan()
    readings, decided = scan.read_rules(ctx)
    result = scan.result(ctx, readings, decided, scan.read_other_targets(ctx, decided))
    assert result.backdoored and result.target_label == 1 and result.decided_by == "token"
    assert result.other_targets == flagged
    assert [c.target for c in result.triggers] == [1, *flagged]
    assert [r.target for r in result.rules if r.fired] == [1, *flagged]


def test_a_clean_verdict_is_never_read_again_toward_other_labels():
    ctx = _context(found=[_candidate([1], 0.6, 1), _candidate([2], 0.5, 0)])
    scan = TriggerScan()
    readings, decided = scan.read_rules(ctx)
    result = scan.result(ctx, readings, decided)
    assert decided is None and not result.backdoored and result.other_targets == []


def test_template_rule_reads_toward_the_labels_asked():
    from ebyd_hf.trigger_search import InsertionEffect

    effects = [
        ("when it is ,", [7, 8], InsertionEffect(np.array([0.7, 0.95]), np.array([1.0, 2.0]))),
        ("as it is ,", [9], InsertionEffect(np.array([0.5, 0.9]), np.array([0.5, 1.5]))),
    ]
    ctx = _context(template_effects=effects, template_flips=np.array([0.6, 0.925]), template_target=1)
    ctx.templates = candidates.templates_toward(ctx, 1)
    ctx.template_score = 0.925
    assert TemplateRule().read(ctx).outcome.target == 1
    reading = TemplateRule().read(ctx, targets=[0])
    assert (reading.outcome.target, reading.outcome.score, reading.outcome.fired) == (0, 0.6, True)
    assert [(c.trigger, c.target, c.score) for c in reading.triggers] == [
        ("when it is ,", 0, 0.7),
        ("as it is ,", 0, 0.5),
    ]


def test_the_report_names_each_other_target_with_the_rule_that_flagged_it():
    from ebyd_hf.report import DefenseReport

    ctx = _context(found=[_candidate([1], 1.0, 1), _candidate([2], 0.9, 0)])
    scan = TriggerScan()
    readings, decided = scan.read_rules(ctx)
    result = scan.result(ctx, readings, decided, scan.read_other_targets(ctx, decided))
    lines = DefenseReport(model="m", clean_rows=1, detection=result).to_markdown().splitlines()
    assert [line for line in lines if line.startswith("- Also targeted")] == [
        "- Also targeted: 0 (the `token` rule, score 0.900, read again toward the labels not flagged yet)"
    ]
