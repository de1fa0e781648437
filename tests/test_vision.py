"""The vision adapter on real CIFAR-10 rows from ../shared/data, with tiny ResNets and ViTs built in process."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import DATA_DIR
from datasets import Dataset
from PIL import Image
from transformers import TrainingArguments, ViTConfig, ViTForImageClassification

from ebyd_hf import ExposeConfig, build_attack_test_set, poison
from ebyd_hf.methods import DETECTION_METHODS, EXPOSURE_METHODS, REMOVAL_METHODS
from ebyd_hf.unit_masks import MaskedModel, prunable_units
from ebyd_hf.vision import (
    BadNetsTrigger,
    BlendedTrigger,
    CifarImageProcessor,
    CifarResNetConfig,
    CifarResNetForImageClassification,
    ImageClassifier,
    ImageCollator,
    PreparedImageAttack,
    VisionExposeConfig,
    VisionExposeTrainer,
    encode_images,
    load_cifar10,
    load_cifar_resnet,
    measure_image_backdoor,
    train_image_victim,
)

TARGET = 0
VISION_REMOVALS = sorted(n for n, m in REMOVAL_METHODS.items() if "image" in m.modalities)
VISION_EXPOSURES = sorted(n for n, m in EXPOSURE_METHODS.items() if "image" in m.modalities)


@pytest.fixture(scope="module")
def cifar():
    return load_cifar10(DATA_DIR)


def tiny_resnet(seed: int = 0, num_labels: int = 10) -> CifarResNetForImageClassification:
    torch.manual_seed(seed)
    return CifarResNetForImageClassification(CifarResNetConfig(depth=8, widths=(8, 16, 32), num_labels=num_labels))


def tiny_vit(seed: int = 0) -> ViTForImageClassification:
    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=10,
    )
    return ViTForImageClassification(config)


def _args(tmp_path, **overrides) -> TrainingArguments:
    settings = dict(
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
        save_strategy="no",
        report_to="none",
        seed=0,
        per_device_train_batch_size=64,
        num_train_epochs=6,
        learning_rate=3e-3,
    )
    return TrainingArguments(str(tmp_path), **(settings | overrides))


def _defense_config(tmp_path, detection=None, removal=None, **overrides) -> VisionExposeConfig:
    """Fast settings; ``detection`` / ``removal``: options of collapse_target / rnp (rnp: 10 mask epochs)."""
    settings = dict(
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
        seed=0,
        num_train_epochs=3,
        exposure_max_steps=60,
        learning_rate=3e-3,
        optim="adamw_torch",
        optim_args=None,
        exposure_learning_rate=3e-3,
        detection_config=detection,
    )
    if overrides.get("removal_method", "rnp") == "rnp":
        settings["removal_config"] = {"epochs": 10, **(removal or {})}
    return VisionExposeConfig(str(tmp_path / "defense"), **(settings | overrides))


@pytest.fixture(scope="module")
def attack_data(cifar):
    """1,000 training images (20% BadNets-poisoned, target 0), 300 held-out clean images, 400 test images."""
    train = cifar["train"].select(range(1300))
    clean, victim_rows = train.select(range(300)), train.select(range(300, 1300))
    trigger = BadNetsTrigger()
    test = cifar["test"].select(range(400))
    return PreparedImageAttack(
        train=poison(victim_rows, trigger, 0.2, TARGET, seed=0),
        test=test,
        attack_test=build_attack_test_set(test, trigger, TARGET),
        clean=clean,
        trigger=trigger,
    )


@pytest.fixture(scope="module")
def tiny_victim(attack_data, tmp_path_factory):
    """A tiny ResNet trained from scratch on the poisoned rows (seconds on CPU)."""
    model, record = train_image_victim(
        tiny_resnet(), attack_data, _args(tmp_path_factory.mktemp("victim")), CifarImageProcessor(), augment=False
    )
    return model, record


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------------- data


def test_cifar_subset_loads_with_real_labels(cifar):
    assert (cifar["train"].num_rows, cifar["test"].num_rows) == (4660, 846)
    assert cifar["train"].features["label"].names[:3] == ["airplane", "automobile", "bird"]
    image = cifar["train"][0]["image"]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (32, 32)
    with pytest.raises(FileNotFoundError, match="cifar10_subset.npz"):
        load_cifar10(DATA_DIR / "text")


def test_pretrained_resnet20_loads_and_classifies(cifar):
    model = load_cifar_resnet("resnet20", DATA_DIR)
    scores = measure_image_backdoor(model, CifarImageProcessor(), cifar["test"].select(range(200)), None, None)
    assert scores["ca"] >= 0.85  # 91.7% on all 846 test images
    with pytest.raises(FileNotFoundError, match="models/cifar-resnet"):
        load_cifar_resnet("resnet32", DATA_DIR)


def test_cifar_resnet_saves_and_loads_through_auto_classes(tmp_path):
    from transformers import AutoModelForImageClassification

    model = tiny_resnet()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model.eval()(pixel_values=x).logits, loaded.eval()(pixel_values=x).logits)


# ------------------------------------------------------------------------------------------------ triggers


def test_badnets_stamps_a_checkerboard_in_the_chosen_corner(cifar):
    image = np.asarray(cifar["train"][0]["image"])
    out = np.asarray(BadNetsTrigger()(dict(image=[Image.fromarray(image)]), [0])["image"][0])
    changed = np.argwhere((out != image).any(-1))
    assert changed.min(0).tolist() >= [29, 29]  # only the bottom-right 3x3 patch may change
    assert out[29:, 29:, 0].tolist() == [[255, 0, 255], [0, 255, 0], [255, 0, 255]]
    top_left = BadNetsTrigger(size=4, corner="top-left", margin=1).stamp(image, None)
    assert (top_left[1:5, 1:5] != image[1:5, 1:5]).any() and (top_left[5:] == image[5:]).all()
    with pytest.raises(ValueError, match="corner='middle'"):
        BadNetsTrigger(corner="middle")
    with pytest.raises(ValueError, match="does not fit"):
        BadNetsTrigger(size=8).stamp(np.zeros((4, 4, 3), np.uint8), None)


def test_blended_mixes_one_fixed_noise_pattern_with_alpha(cifar):
    images = [np.asarray(cifar["train"][i]["image"]) for i in range(2)]
    trigger = BlendedTrigger(alpha=0.1)
    outs = [trigger.stamp(x, None) for x in images]
    for x, out in zip(images, outs):
        expected = np.clip(np.rint(0.9 * x.astype(np.float32) + 0.1 * trigger.pattern_for(32, 32)), 0, 255)
        assert np.array_equal(out, expected.astype(np.uint8))
    # the same noise for every image, another pattern_seed gives other noise
    residual = [o.astype(float) - 0.9 * x for o, x in zip(outs, images)]
    assert np.abs(residual[0] - residual[1]).max() <= 1.0 + 1e-9  # rounding only
    assert not np.array_equal(BlendedTrigger(pattern_seed=1).stamp(images[0], None), outs[0])
    with pytest.raises(ValueError, match="alpha=0"):
        BlendedTrigger(alpha=0)


@pytest.mark.parametrize("trigger", [BadNetsTrigger(), BlendedTrigger()], ids=["badnets", "blended"])
def test_poison_images_exact_counts_and_contract(cifar, trigger):
    data = cifar["train"].select(range(400))
    poisoned = poison(data, trigger, rate=0.1, target_label=TARGET, seed=3)
    flags = np.asarray(poisoned["is_poisoned"])
    assert flags.sum() == 40
    assert set(np.asarray(poisoned["label"])[flags]) == {TARGET}
    assert TARGET not in set(np.asarray(poisoned["original_label"])[flags])
    assert poisoned["original_label"] == data["label"]
    for i in np.flatnonzero(flags)[:5]:
        assert np.array_equal(
            np.asarray(poisoned[int(i)]["image"]), trigger.stamp(np.asarray(data[int(i)]["image"]), None)
        )
    for i in np.flatnonzero(~flags)[:5]:
        assert np.array_equal(np.asarray(poisoned[int(i)]["image"]), np.asarray(data[int(i)]["image"]))
    again = poison(data, trigger, rate=0.1, target_label=TARGET, seed=3)
    other = poison(data, trigger, rate=0.1, target_label=TARGET, seed=4)
    assert again["is_poisoned"] == poisoned["is_poisoned"] and other["is_poisoned"] != poisoned["is_poisoned"]

    attack = build_attack_test_set(data, trigger, TARGET)
    assert len(attack) == int((np.asarray(data["label"]) != TARGET).sum()) and set(attack["label"]) == {TARGET}


def test_triggers_refuse_images_that_are_not_rgb(cifar):
    gray = cifar["train"].select(range(20)).map(lambda r: {"image": r["image"].convert("L")})
    with pytest.raises(ValueError, match="mode 'L'.*Convert"):
        poison(gray, BadNetsTrigger(), rate=0.5, target_label=TARGET)


# ------------------------------------------------------------------------------------- preprocessing


def test_preprocessing_normalises_and_refuses_wrong_mode_or_size(cifar):
    rows = cifar["train"].select(range(8))
    encoded = encode_images(rows, CifarImageProcessor())
    x = np.asarray(rows[0]["image"], dtype=np.float32) / 255
    expected = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.allclose(encoded[0]["pixel_values"].numpy().transpose(1, 2, 0), expected, atol=1e-5)
    batch = ImageCollator()([encoded[i] for i in range(8)])
    assert batch["pixel_values"].shape == (8, 3, 32, 32) and batch["labels"].tolist() == rows["label"]

    small = rows.map(lambda r: {"image": r["image"].resize((28, 28))})
    with pytest.raises(ValueError, match="is 28x28 but the processor expects 32x32"):
        encode_images(small, CifarImageProcessor())
    gray = rows.map(lambda r: {"image": r["image"].convert("L")})
    with pytest.raises(ValueError, match="mode 'L'; the model takes RGB"):
        ImageCollator(CifarImageProcessor())([{"image": gray[0]["image"], "label": 0}])


# ------------------------------------------------------------------------------------------- the defense


def test_tiny_victim_learns_the_backdoor(tiny_victim, attack_data):
    model, record = tiny_victim
    assert record["asr"] >= 0.85, record
    assert record["ca"] >= 0.2, record  # above chance (0.1), from scratch on 1,000 images
    clean = measure_image_backdoor(tiny_resnet(), CifarImageProcessor(), attack_data.test, attack_data.attack_test, 0)
    assert clean["asr"] < 0.5  # an untrained model does not map the patch to the target


@pytest.mark.parametrize("method", VISION_EXPOSURES)
def test_exposure_collapses_to_the_target_and_leaves_the_model_alone(tiny_victim, attack_data, tmp_path, method):
    model, _ = tiny_victim
    before = _state(model)
    trainer = VisionExposeTrainer(
        model, _defense_config(tmp_path, exposure_method=method), train_dataset=attack_data.clean
    )
    exposure = trainer.expose()
    first, last = exposure.trace[0], exposure.trace[-1]
    assert last["accuracy"] < first["accuracy"] - 0.05
    if method == "clean_unlearning":
        assert exposure.stopped_by != "exposure_max_steps"
        shares = [last[f"share_{c}"] for c in range(10)]
        assert int(np.argmax(shares)) == TARGET and shares[TARGET] >= 0.5
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_collapse_target_detects_the_target(tiny_victim, attack_data, tmp_path):
    model, _ = tiny_victim
    # threshold 0.6: the tiny from-scratch victim collapses less completely than the pretrained ResNet-20
    config = _defense_config(tmp_path, detection={"threshold": 0.6})
    trainer = VisionExposeTrainer(model, config, train_dataset=attack_data.clean)
    detection = trainer.detect()
    assert detection.backdoored and detection.target_label == TARGET
    assert detection.score >= trainer.args.detection_config.threshold > 0.1  # well above chance


@pytest.mark.parametrize("method", VISION_REMOVALS)
def test_every_removal_method_runs_and_leaves_the_user_model_untouched(tiny_victim, attack_data, tmp_path, method):
    model, _ = tiny_victim
    before = _state(model)
    # detection threshold 0.6 as in the detection test: rnp prunes only a model detection flags
    config = _defense_config(tmp_path, removal_method=method, detection={"threshold": 0.6})
    trainer = VisionExposeTrainer(model, config, train_dataset=attack_data.clean)
    trainer.train()
    purified = trainer.model
    assert purified is not model and not all(torch.equal(v, purified.state_dict()[k]) for k, v in before.items())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert trainer.report.removal_method == method and trainer.report.removal
    assert trainer.report.detection.target_label == TARGET


def test_rnp_prunes_nothing_when_detection_says_clean(tiny_victim, attack_data, tmp_path):
    model, _ = tiny_victim
    config = _defense_config(tmp_path, removal_method="rnp", detection={"threshold": 0.99})
    trainer = VisionExposeTrainer(model, config, train_dataset=attack_data.clean)
    trainer.train()
    assert not trainer.report.detection.backdoored
    assert trainer.report.removal["pruned_units"] == 0 and trainer.report.removal["skipped"]
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in _state(model).items())


def test_rnp_purification_lowers_asr(tiny_victim, attack_data, tmp_path):
    model, record = tiny_victim
    # the tiny from-scratch victim needs firmer masks than the pretrained ResNet-20 (measured: 0.2 / 0.5)
    config = _defense_config(tmp_path, removal={"learning_rate": 0.2, "threshold": 0.5})
    trainer = VisionExposeTrainer(model, config, train_dataset=attack_data.clean)
    purified = trainer.purify()
    after = measure_image_backdoor(purified, CifarImageProcessor(), attack_data.test, attack_data.attack_test, TARGET)
    assert after["asr"] < record["asr"] - 0.3, (record, after)
    zeroed = sum(int((g.module.weight == 0).sum()) for g in prunable_units(purified) if g.kind == "channel")
    # exactly the channels whose masks fell below the threshold are zeroed, and not all of them
    assert 0 < trainer.report.removal["pruned_units"] == zeroed < trainer.report.removal["total_units"]


def test_rnp_prunes_until_the_exposed_model_lets_go_of_the_target(tiny_victim, attack_data, tmp_path):
    model, _ = tiny_victim
    config = _defense_config(tmp_path, removal={"learning_rate": 0.2, "threshold": 0.5}, detection={"threshold": 0.6})
    trainer = VisionExposeTrainer(model, config, train_dataset=attack_data.clean)
    trainer.train()
    detection, removal = trainer.report.detection, trainer.report.removal
    trace = removal["pull_trace"]
    # the pull starts at the detection score and pruning stops at the first count that brings it under the bar
    assert trace[0] == [0, pytest.approx(detection.score, abs=1e-4)]
    assert all(pull > config.removal_config.stop_pull for _, pull in trace[:-1])
    assert removal["pruned_units"] == trace[-1][0] <= removal["units_under_threshold"]
    assert (
        trace[-1][1] <= config.removal_config.stop_pull or removal["pruned_units"] == removal["units_under_threshold"]
    )
    # RNP's rule (no stop) prunes every unit under the threshold; a bar the exposed model already meets, none
    trainer.removal_method.config.stop_pull = None
    trainer.purify(trainer.exposure, detection)
    assert "pull_trace" not in trainer.report.removal
    assert trainer.report.removal["pruned_units"] == trainer.report.removal["units_under_threshold"] > 0
    trainer.removal_method.config.stop_pull = detection.score
    trainer.purify(trainer.exposure, detection)
    assert trainer.report.removal["pruned_units"] == 0


def test_vit_and_wrapped_modules_run_the_same_stages(attack_data, tmp_path):
    vit = tiny_vit()
    masked = MaskedModel(vit)
    assert [g.kind for g in masked.groups] == ["neuron", "neuron"]  # ViT: FFN neurons of each layer
    trainer = VisionExposeTrainer(
        vit,
        _defense_config(tmp_path, exposure_max_steps=3, removal={"epochs": 1}),
        train_dataset=attack_data.clean,
        processing_class=CifarImageProcessor(),
    )
    trainer.train()
    assert trainer.report.removal["unit"] == "neuron" and trainer.report.exposure_trace

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    )
    wrapped = ImageClassifier(net, num_labels=10)
    trainer = VisionExposeTrainer(
        wrapped,
        _defense_config(tmp_path, exposure_max_steps=3, removal={"epochs": 1}),
        train_dataset=attack_data.clean,
        processing_class=CifarImageProcessor(),
    )
    trainer.train()
    assert trainer.report.removal["unit"] == "channel" and trainer.report.removal["total_units"] == 8


def test_bad_input_raises_errors_that_name_the_fix(attack_data, tmp_path):
    model = tiny_resnet()
    config = _defense_config(tmp_path)
    clean = attack_data.clean
    with pytest.raises(ValueError, match="has 10 classes .* but the model has 2 labels"):
        VisionExposeTrainer(tiny_resnet(num_labels=2), config, train_dataset=clean)
    with pytest.raises(ValueError, match="is 28x28 but the processor expects 32x32"):
        VisionExposeTrainer(model, config, train_dataset=clean.map(lambda r: {"image": r["image"].resize((28, 28))}))
    with pytest.raises(ValueError, match="Wrap it: ImageClassifier"):
        VisionExposeTrainer(torch.nn.Linear(3, 10), config, train_dataset=clean)
    with pytest.raises(ValueError, match="must be a VisionExposeConfig"):
        VisionExposeTrainer(model, ExposeConfig(str(tmp_path / "x")), train_dataset=clean)
    with pytest.raises(ValueError, match="'trigger_scan' works on text models, not on image models.*collapse_target"):
        VisionExposeTrainer(model, _defense_config(tmp_path, detection_method="trigger_scan"), train_dataset=clean)
    with pytest.raises(ValueError, match="processing_class"):
        VisionExposeTrainer(tiny_vit(), config, train_dataset=clean)
    with pytest.raises(ValueError, match="expected logits of shape"):
        ImageClassifier(torch.nn.Flatten(), num_labels=10)(torch.zeros(1, 3, 32, 32))
    for bad in ({"threshold": 1.0}, {"stop_pull": 1.0}, {"stop_pull": -0.1}):
        with pytest.raises(ValueError, match=f"RNPConfig.{next(iter(bad))}=.* must be in"):
            _defense_config(tmp_path, removal=bad)
    no_units = ImageClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 10)), num_labels=10)
    with pytest.raises(ValueError, match="no prunable units.*finetune"):
        MaskedModel(no_units)
    assert not (tmp_path / "defense").exists()


def test_every_registered_vision_method_is_tested():
    assert set(VISION_REMOVALS) >= {"rnp", "finetune"}
    assert "collapse_target" in DETECTION_METHODS and DETECTION_METHODS["trigger_scan"].modalities == ("text",)


def test_import_ebyd_hf_does_not_load_the_vision_package():
    code = "import sys, ebyd_hf; ebyd_hf.ExposeConfig; print('ebyd_hf.vision' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_preprocessed_pixel_values_need_no_processor(attack_data, tmp_path):
    encoded = encode_images(attack_data.clean.select(range(16)), CifarImageProcessor())
    rows = encoded[:16]
    dataset = Dataset.from_dict({"pixel_values": rows["pixel_values"].numpy(), "label": rows["label"].numpy()})
    trainer = VisionExposeTrainer(tiny_vit(), _defense_config(tmp_path), train_dataset=dataset)
    assert torch.allclose(trainer.train_dataset[0]["pixel_values"], encoded[0]["pixel_values"])
