"""Callbacks of the defense stages: the exposure stop rule and the exposure trace."""

from __future__ import annotations

import math

from transformers import TrainerCallback


class ExposureStopCallback(TrainerCallback):
    """Stops exposure (``control.should_training_stop``) once clean accuracy falls to ``stop_accuracy`` or the
    predictions collapse (one class takes at least ``stop_collapse`` of them), read from the stage's
    evaluation on the clean set."""

    def __init__(self, stop_accuracy: float, stop_collapse: float):
        self.stop_accuracy = stop_accuracy
        self.stop_collapse = stop_collapse
        self.reason: str | None = None

    def should_stop(self, metrics: dict[str, float]) -> bool:
        accuracy, collapse = metrics.get("eval_accuracy"), metrics.get("eval_max_class_share")
        if accuracy is not None and accuracy <= self.stop_accuracy:
            self.reason = f"clean accuracy {accuracy:.3f} <= {self.stop_accuracy:.3f}"
        elif collapse is not None and collapse >= self.stop_collapse:
            self.reason = f"predictions collapsed ({collapse:.3f} in one class)"
        return self.reason is not None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not metrics:
            return
        loss = metrics.get("eval_loss")
        if loss is not None and not math.isfinite(loss):
            raise FloatingPointError(
                f"The exposure loss became {loss} at step {state.global_step}. Lower exposure_learning_rate "
                f"(now {args.learning_rate}) or exposure_max_grad_norm, and check the model's weights are finite."
            )
        if self.should_stop(metrics):
            control.should_training_stop = True


class ExposureTraceCallback(TrainerCallback):
    """Records the exposure curve: clean accuracy, clean loss and per-class prediction shares per check."""

    def __init__(self):
        self.records: list[dict[str, float]] = []

    def record(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, "accuracy": metrics["eval_accuracy"], "loss": metrics["eval_loss"]}
        row.update({k[5:]: v for k, v in metrics.items() if k.startswith("eval_share_")})
        self.records.append(row)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_accuracy" in metrics:
            self.record(state.global_step, metrics)
