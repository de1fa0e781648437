"""Clean accuracy (CA): share of clean examples classified correctly."""

import datasets
import evaluate

from ebyd_hf.metrics import clean_accuracy

_DESCRIPTION = "Clean accuracy (CA) of a possibly backdoored classifier: share of clean examples predicted correctly."
_KWARGS = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): true labels.
Returns:
    clean_accuracy (float): in [0, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class CleanAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        return {"clean_accuracy": clean_accuracy(predictions, references)}
