"""Trainer callbacks: the wall-clock budget, when to evaluate, and keeping the best model."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from crossrank.training.schedule import BudgetClock

__all__ = ["BestCheckpointCallback", "BudgetCallback", "EvaluationScheduleCallback"]

logger = logging.getLogger(__name__)


class BudgetCallback(TrainerCallback):  # type: ignore[misc]
    """Stops training once the clock's budget is spent, after the step in progress.

    The stop also asks for an evaluation (when ``evaluate`` is true) so the last weights
    compete for the best checkpoint. The clock starts when training begins.
    """

    def __init__(self, clock: BudgetClock, *, evaluate: bool = False) -> None:
        self.clock = clock
        self.evaluate = evaluate
        self.stopped_at_step: int | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Start the budget clock with the first step."""
        self.clock.start()
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Stop training (and evaluate once more, if asked) when the budget is spent."""
        if self.clock.expired() and not control.should_training_stop:
            logger.info(
                "time budget of %.1f min spent after %d steps; stopping",
                (self.clock.budget_seconds or 0.0) / 60.0,
                state.global_step,
            )
            self.stopped_at_step = int(state.global_step)
            control.should_training_stop = True
            if self.evaluate:
                control.should_evaluate = True
        return control

    @property
    def stopped(self) -> bool:
        """Whether the budget stopped the run."""
        return self.stopped_at_step is not None


class EvaluationScheduleCallback(TrainerCallback):  # type: ignore[misc]
    """Asks for an evaluation every ``every_steps`` steps and/or ``every_seconds`` seconds
    of training, and after the last step."""

    def __init__(
        self, clock: BudgetClock, *, every_steps: int | None, every_seconds: float | None
    ) -> None:
        self.clock = clock
        self.every_steps = every_steps
        self.every_seconds = every_seconds
        self._last_time = 0.0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Ask for an evaluation when one is due or training ends."""
        step = int(state.global_step)
        now = self.clock.elapsed()
        due = (self.every_steps is not None and step % self.every_steps == 0) or (
            self.every_seconds is not None and now - self._last_time >= self.every_seconds
        )
        last = step >= int(state.max_steps) or control.should_training_stop
        if due or last:
            control.should_evaluate = True
        return control

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Remember when the last evaluation ran."""
        self._last_time = self.clock.elapsed()
        return control


class BestCheckpointCallback(TrainerCallback):  # type: ignore[misc]
    """Saves the model to ``folder`` whenever ``metric`` reaches a new best (higher wins; on
    a tie the later, longer-trained checkpoint is kept)."""

    def __init__(self, folder: Path, metric: str) -> None:
        self.folder = folder
        self.metric = metric
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.best_metrics: dict[str, float] = {}

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: dict[str, float] | None = None,
        model: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Save the model when the metric reached a new best."""
        value = None if metrics is None else metrics.get(self.metric)
        if value is None or model is None:
            logger.warning("evaluation did not report %s; no checkpoint kept", self.metric)
            return control
        if self.best_value is None or float(value) >= self.best_value:
            self.best_value = float(value)
            self.best_step = int(state.global_step)
            self.best_metrics = dict(metrics or {})
            shutil.rmtree(self.folder, ignore_errors=True)
            model.save(str(self.folder), create_model_card=False)
            logger.info("new best %s = %.4f at step %d", self.metric, value, state.global_step)
        return control
