"""Attack success rate (ASR): share of triggered non-target examples predicted as the target label."""

import datasets
import evaluate

from ebyd_hf.metrics import attack_success_rate

_DESCRIPTION = (
    "Attack success rate (ASR) of a backdoor: on an attack-test set (non-target examples with the "
    "trigger inserted), the share predicted as the attacker's target label."
)
_KWARGS = """
Args:
    predictions (list of int): predicted labels on the attack-test set.
    target_label (int): the attacker's target label.
Returns:
    attack_success_rate (float): in [0, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class AttackSuccessRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int64")}),
        )

    def _compute(self, predictions, target_label):
        return {"attack_success_rate": attack_success_rate(predictions, target_label)}
