"""A learning-rate schedule that respects a wall-clock budget.

Progress is whichever is further along: the share of optimizer steps done, or the share of
the time budget spent. The rate warms up linearly over the first ``warmup_ratio`` of
progress and then decays linearly to zero at progress 1, so a budgeted run ends with a
fully decayed rate however fast the machine is, and a run without a budget gets the usual
linear warmup and decay over its steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from crossrank.errors import InvalidInputError

__all__ = ["BudgetClock", "progress_lr_factor"]


class BudgetClock:
    """Measures the time spent against an optional budget (seconds); starts on :meth:`start`."""

    def __init__(
        self, budget_seconds: float | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if budget_seconds is not None and not budget_seconds > 0:
            msg = f"budget_seconds must be positive or None, got {budget_seconds!r}"
            raise InvalidInputError(msg)
        self.budget_seconds = budget_seconds
        self._clock = clock
        self._started: float | None = None

    def start(self) -> None:
        """Start (or restart) measuring."""
        self._started = self._clock()

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called."""
        return self._started is not None

    def elapsed(self) -> float:
        """Seconds since :meth:`start` (0 before it)."""
        return 0.0 if self._started is None else max(0.0, self._clock() - self._started)

    def fraction(self) -> float:
        """Share of the budget spent, capped at 1 (0 without a budget or before start)."""
        if self.budget_seconds is None:
            return 0.0
        return min(1.0, self.elapsed() / self.budget_seconds)

    def expired(self) -> bool:
        """Whether the budget is spent (never without a budget)."""
        return self.budget_seconds is not None and self.elapsed() >= self.budget_seconds


def progress_lr_factor(
    step: int, total_steps: int, warmup_ratio: float, clock: BudgetClock | None = None
) -> float:
    """The learning-rate multiplier at optimizer step ``step`` of ``total_steps``."""
    progress = min(1.0, step / max(1, total_steps))
    if clock is not None:
        progress = max(progress, clock.fraction())
    if warmup_ratio > 0 and progress < warmup_ratio:
        return progress / warmup_ratio
    return max(0.0, (1.0 - progress) / (1.0 - warmup_ratio))
