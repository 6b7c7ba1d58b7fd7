"""What a training run produced and measured: :class:`TrainResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossrank.training.config import TrainConfig

__all__ = ["TrainResult"]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced and measured (also written to the model card).

    ``dev_history`` holds ``(step, metrics)`` for every dev evaluation, step 0 being the
    untrained model; ``test`` maps each test split to its ``{run: {metric: value}}`` with
    ``n_queries``, ``top_k`` and ``top_n``.
    """

    output: Path
    config: TrainConfig
    backbone: str
    retriever: str
    device: str
    bf16: bool
    sources: dict[str, int]
    dev_queries: dict[str, int]
    steps: int
    max_steps: int
    epochs: float
    prepare_seconds: float
    train_seconds: float
    stopped_by_budget: bool
    best_step: int | None
    loss_history: tuple[tuple[int, float], ...]
    dev_history: tuple[tuple[int, dict[str, float]], ...]
    test: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def best_dev(self) -> dict[str, float] | None:
        """The dev metrics of the kept checkpoint (``None`` without dev sets)."""
        for step, metrics in self.dev_history:
            if step == self.best_step:
                return metrics
        return None
