import numpy as np
import pytest

from ebyd_hf import (
    attack_success_rate,
    clean_accuracy,
    compute_accuracy_metrics,
    defense_effectiveness_rating,
    excess_attack_success_rate,
    load_metric,
)


def test_plain_metrics():
    assert clean_accuracy([1, 0, 1, 1], [1, 0, 0, 1]) == 0.75
    assert clean_accuracy(np.array([[0.1, 0.9], [2.0, -1.0]]), [1, 1]) == 0.5  # logits are argmaxed
    assert attack_success_rate([1, 1, 0, 1, 1], target_label=1) == 0.8
    # DER: full removal at no CA cost is 1; no change is 0.5; CA gains are not rewarded
    assert defense_effectiveness_rating(0.9, 1.0, 0.9, 0.0) == 1.0
    assert defense_effectiveness_rating(0.9, 1.0, 0.9, 1.0) == 0.5
    assert defense_effectiveness_rating(0.9, 1.0, 0.95, 1.0) == 0.5
    assert defense_effectiveness_rating(0.9, 1.0, 0.8, 0.2) == pytest.approx((0.8 - 0.1 + 1) / 2)
    assert compute_accuracy_metrics((np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([1, 1]))) == {"accuracy": 0.5}
    with pytest.raises(ValueError, match="as many predictions"):
        clean_accuracy([1], [1, 0])
    with pytest.raises(ValueError, match="empty"):
        attack_success_rate([], 1)


def test_evaluate_modules_load_locally_and_agree():
    preds, refs = [1, 0, 1, 1, 0], [1, 0, 0, 1, 1]
    assert load_metric("clean_accuracy").compute(predictions=preds, references=refs) == {
        "clean_accuracy": clean_accuracy(preds, refs)
    }
    assert load_metric("asr").compute(predictions=preds, target_label=0) == {"attack_success_rate": 0.4}
    der = load_metric("der").compute(ca_before=[0.9], asr_before=[1.0], ca_after=[0.88], asr_after=[0.05])
    assert der["der"] == pytest.approx(defense_effectiveness_rating(0.9, 1.0, 0.88, 0.05))
    with pytest.raises(ValueError, match="Unknown metric 'f1'"):
        load_metric("f1")


def test_excess_asr_is_the_asr_above_a_never_poisoned_models_on_the_same_rows():
    suspect, reference = [1, 1, 1, 1, 0], [0, 1, 0, 0, 0]
    assert excess_attack_success_rate(suspect, reference, target_label=1) == pytest.approx(
        {"asr": 0.8, "floor": 0.2, "excess": 0.6}
    )
    logits = np.eye(2)[suspect]  # logits are read as labels, as by the other metrics
    assert excess_attack_success_rate(logits, reference, 1)["excess"] == pytest.approx(0.6)
    assert excess_attack_success_rate(reference, suspect, 1)["excess"] == pytest.approx(-0.6)  # below the floor
    module = load_metric("excess_asr").compute(predictions=suspect, reference_predictions=reference, target_label=1)
    assert module == pytest.approx({"asr": 0.8, "floor": 0.2, "excess": 0.6})
    with pytest.raises(ValueError, match="same rows"):
        excess_attack_success_rate([1, 1], [1], 1)
