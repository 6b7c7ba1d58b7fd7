"""Training cross-encoder rerankers: ``crossrank train`` and :func:`train`.

One concept per module: ``config`` (:class:`TrainConfig`, data specs, presets), ``data``
(training groups and hard-negative mining), ``prepare`` (splits → groups and dev sets),
``losses``, ``schedule`` (the budget-aware learning rate), ``callbacks`` (budget, evaluation
schedule, best checkpoint), ``evaluator`` (dev evaluation with crossrank's evaluation),
``trainer`` (:func:`train`) and ``card`` (the model card). torch, transformers and
``datasets`` load when training starts, not on import.
"""

from __future__ import annotations

from crossrank.training.config import LOSSES, PRESETS, DataSpec, TrainConfig, preset_config
from crossrank.training.data import TrainingGroup, mine_groups, pick_negatives, title_groups
from crossrank.training.result import TrainResult
from crossrank.training.trainer import output_dir, train

__all__ = [
    "LOSSES",
    "PRESETS",
    "DataSpec",
    "TrainConfig",
    "TrainResult",
    "TrainingGroup",
    "mine_groups",
    "output_dir",
    "pick_negatives",
    "preset_config",
    "title_groups",
    "train",
]
