"""Attack -> victim -> defend -> report for CIFAR-10 image classifiers, the image counterpart of recipes/sst2.py.

Benchmark (BadNets 10%, target 0, on the pretrained CIFAR ResNet-20 from the shared data; 500 held-out clean
training images for the defender):

    accelerate launch recipes/cifar10.py --config recipes/configs/cifar10.yaml --output_dir cifar10-badnets

Defend a suspicious image classifier (a folder saved with save_pretrained, or a Hub id):

    python recipes/cifar10.py --config recipes/configs/cifar10.yaml --mode defend \\
        --model_name_or_path path/to/suspicious --output_dir cifar10-purified

``--trigger blended`` for the Blended attack; ``--push_to_hub --hub_model_id <user>/<repo>`` uploads the purified
model with its report and model card. Options: ``python recipes/cifar10.py --help`` (``--help-all`` for all).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ebyd_hf.vision import VisionExposeConfig


@dataclass
class ImageDefenseArguments:
    """What to attack or defend, on the CIFAR-10 subset"""

    mode: str = field(
        default="benchmark",
        metadata={
            "help": "benchmark (attack a clean model, then defend) or defend.",
            "choices": ["benchmark", "defend"],
        },
    )
    model_name_or_path: str = field(
        default="resnet20",
        metadata={
            "help": "benchmark: resnet20 / resnet56 (pretrained, from the shared data) or a folder/Hub id of an image "
            "classifier to fine-tune. defend: the suspicious image classifier (folder or Hub id)."
        },
    )
    trigger: str = field(
        default="badnets",
        metadata={
            "help": "The attack (defend: only to measure ASR); none for no attack.",
            "choices": ["badnets", "blended", "none"],
        },
    )
    rate: float = field(default=0.1, metadata={"help": "benchmark: share of the training images poisoned."})
    target_label: int = field(default=0, metadata={"help": "The attack's target label."})
    clean_rows: int = field(default=500, metadata={"help": "Clean training images held out for the defender."})
    victim_epochs: float = field(default=10.0, metadata={"help": "benchmark: victim training epochs."})
    victim_learning_rate: float = field(default=0.01, metadata={"help": "benchmark: victim learning rate (SGD)."})

    def __post_init__(self):
        if not 0 < self.rate <= 1:
            raise ValueError(f"rate={self.rate} must be in (0, 1].")
        if self.victim_epochs <= 0 or self.victim_learning_rate <= 0:
            raise ValueError("victim_epochs and victim_learning_rate must be positive.")


def main(script_args: ImageDefenseArguments, training_args: VisionExposeConfig):
    from transformers import AutoModelForImageClassification, TrainingArguments

    from ebyd_hf.files import check_output_dir
    from ebyd_hf.pipeline import publish
    from ebyd_hf.vision import (
        CifarImageProcessor,
        ImageAttackConfig,
        VisionExposeTrainer,
        load_cifar_resnet,
        measure_image_backdoor,
        prepare_image_attack,
        train_image_victim,
    )

    source = script_args.model_name_or_path
    inputs = [source, training_args.data_dir]
    check_output_dir(training_args.output_dir, inputs=inputs, overwrite=training_args.overwrite_output_dir)
    attack = ImageAttackConfig(
        trigger=script_args.trigger,
        rate=script_args.rate,
        target_label=script_args.target_label,
        seed=training_args.seed,
        data_dir=training_args.data_dir,
        clean_rows=script_args.clean_rows,
    )
    data = prepare_image_attack(attack)
    if source in ("resnet20", "resnet56"):
        model = load_cifar_resnet(source, training_args.data_dir)
    else:
        model = AutoModelForImageClassification.from_pretrained(
            source, trust_remote_code=training_args.trust_remote_code
        )
    processor = CifarImageProcessor()
    if script_args.mode == "benchmark":
        victim_args = TrainingArguments(
            os.path.join(training_args.output_dir, "_victim"),
            num_train_epochs=script_args.victim_epochs,
            learning_rate=script_args.victim_learning_rate,
            optim="sgd",
            optim_args="momentum=0.9",
            weight_decay=5e-4,
            per_device_train_batch_size=training_args.per_device_train_batch_size,
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            seed=training_args.seed,
            use_cpu=training_args.use_cpu,
            disable_tqdm=training_args.disable_tqdm,
        )
        model, _ = train_image_victim(model, data, victim_args, processor)
        training_args.overwrite_output_dir = True  # checked above; it now holds only the victim this run trained
    target = script_args.target_label if data.attack_test is not None else None
    before = measure_image_backdoor(model, processor, data.test, data.attack_test, target)
    trainer = VisionExposeTrainer(model, training_args, train_dataset=data.clean, processing_class=processor)
    trainer.train()
    after = measure_image_backdoor(trainer.model, processor, data.test, data.attack_test, target)
    rows = {"ca_rows": len(data.test), "asr_rows": None if data.attack_test is None else len(data.attack_test)}
    rows["data"] = "CIFAR-10 subset test split"
    if target is not None:
        rows["trigger"], rows["target_label"] = script_args.trigger, target
    trainer.report.before, trainer.report.after = {**before, **rows}, {**after, **rows}
    publish(trainer, dataset="cifar10")
    return trainer.report


def make_parser():
    from ebyd_hf.parser import EbydParser

    return EbydParser((ImageDefenseArguments, VisionExposeConfig), prog="recipes/cifar10.py")


if __name__ == "__main__":
    from ebyd_hf.pipeline import run_recipe

    run_recipe(main, make_parser())
