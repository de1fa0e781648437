"""Exploration: how many units should `rnp` prune? Sweep k on a cached ResNet-20 victim of bench/vision.py.

Learns the unit masks on the exposed model once (the default settings), then for k = 0..30 prunes the k units with
the lowest masks from the victim and from the exposed model, and prints the victim's CA / ASR on the test split,
its accuracy on the defender's 500 images, and the exposed model's accuracy and pull (the share of the defender's
images of other classes it sends to the target). The pull is what `mask_stop_pull` reads.

    EBYD_DATA_DIR=../shared/data python bench/explore/rnp_sweep.py blended [KEY=VALUE ...]
"""

import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vision as bench  # noqa: E402

from ebyd_hf.methods.removal.rnp import ReconstructiveNeuronPruning  # noqa: E402
from ebyd_hf.unit_masks import MaskedModel, prunable_units, prune_units, same_units  # noqa: E402
from ebyd_hf.vision import (  # noqa: E402
    ImageAttackConfig,
    VisionExposeTrainer,
    measure_image_backdoor,
    prepare_image_attack,
)
from ebyd_hf.vision.evaluation import predict_images  # noqa: E402


def main(trigger: str, overrides: list[str]) -> None:
    torch.set_num_threads(1)
    processor = bench.CifarImageProcessor()
    data = prepare_image_attack(ImageAttackConfig(trigger=trigger, target_label=bench.TARGET, clean_rows=500))
    model, _ = bench.victim("resnet20", trigger, data, processor)
    config = bench.defense_args("resnet20", "rnp", False, bench.parse_overrides(bench.VisionExposeConfig, overrides))
    trainer = VisionExposeTrainer(model, args=config, train_dataset=data.clean, processing_class=processor)

    captured = {}
    learned = MaskedModel.mask_values

    def keep(self):  # the masks rnp learns, before it prunes
        values = learned(self)
        captured["masks"] = [m.detach().clone() for m in values]
        return values

    MaskedModel.mask_values = keep
    exposure = trainer.expose()
    detection = trainer.detect()
    print("detection", detection.backdoored, detection.target_label, round(detection.score, 3), flush=True)
    ReconstructiveNeuronPruning().purify(trainer, exposure, detection)
    masks = captured["masks"]
    groups = prunable_units(trainer.fresh_copy())
    order = sorted((float(v), g, u) for g, m in enumerate(masks) for u, v in enumerate(m.tolist()))
    print("lowest masks", [(round(v, 3), groups[g].name, u) for v, g, u in order[:30]], flush=True)

    labels = np.array(data.clean["label"])
    for k in range(31):
        chosen: dict[int, list[int]] = {}
        for _, g, u in order[:k]:
            chosen.setdefault(g, []).append(u)
        victim = trainer.fresh_copy().eval()
        prune_units(same_units(victim, groups), chosen)
        exposed = copy.deepcopy(exposure.model).eval()
        prune_units(same_units(exposed, groups), chosen)
        test = measure_image_backdoor(victim, processor, data.test, data.attack_test, bench.TARGET)
        defender = measure_image_backdoor(victim, processor, data.clean, None, None)
        preds = predict_images(exposed, data.clean, processor)
        others = labels != bench.TARGET
        row = dict(
            k=k,
            mask=round(order[k - 1][0], 3) if k else None,
            ca=round(test["ca"], 3),
            asr=round(test["asr"], 3),
            defender_acc=round(defender["ca"], 3),
            exposed_acc=round(float((preds == labels).mean()), 3),
            exposed_pull=round(float((preds[others] == bench.TARGET).mean()), 3),
        )
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
