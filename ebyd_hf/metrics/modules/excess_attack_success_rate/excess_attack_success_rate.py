"""Excess attack success rate: a model's ASR above a never-poisoned reference model's ASR on the same rows."""

import datasets
import evaluate

from ebyd_hf.metrics import excess_attack_success_rate

_DESCRIPTION = (
    "Excess attack success rate of a backdoor: on an attack-test set (non-target examples with the trigger inserted), "
    "the share the model predicts as the target label, minus the share a never-poisoned model of the same task "
    "predicts as the target on the same rows (the floor: its own errors, and rows whose meaning the trigger changed)."
)
_KWARGS = """
Args:
    predictions (list of int): the model's labels on the attack-test set.
    reference_predictions (list of int): a never-poisoned model's labels on the same rows.
    target_label (int): the attacker's target label.
Returns:
    asr (float), floor (float): each in [0, 1].
    excess (float): asr - floor, in [-1, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class ExcessAttackSuccessRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "reference_predictions": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, reference_predictions, target_label):
        return excess_attack_success_rate(predictions, reference_predictions, target_label)
