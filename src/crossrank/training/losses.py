"""The training loss for each ``--loss`` choice, and the optional ``datasets`` import."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from crossrank.errors import MissingExtraError

if TYPE_CHECKING:
    from crossrank.training.config import TrainConfig

__all__ = ["build_loss", "head_parameter_pattern", "import_datasets"]

# Parameters created fresh when a backbone becomes a cross-encoder (or barely trained in it).
_HEAD_NAMES = ("classifier", "pooler", "score")


def import_datasets() -> Any:
    """The ``datasets`` module, or a :class:`MissingExtraError` naming the ``train`` extra."""
    try:
        import datasets
    except ImportError as exc:
        package, extra, purpose = "datasets", "train", "Training a reranker"
        raise MissingExtraError(package, extra, purpose) from exc
    return datasets


def build_loss(model: Any, config: TrainConfig) -> Any:
    """The sentence-transformers cross-encoder loss for ``config.loss``.

    ``"mnrl"``: softmax cross-entropy of the positive against its hard negatives and
    ``in_batch_negatives`` other queries' documents; ``"bce"``: binary cross-entropy per pair,
    positives weighted by the number of negatives so both classes count alike;
    ``"listnet"`` / ``"lambda"``: listwise losses over the positive and its negatives.
    """
    import torch
    from sentence_transformers.cross_encoder import losses

    if config.loss == "mnrl":
        return losses.MultipleNegativesRankingLoss(model, num_negatives=config.in_batch_negatives)
    if config.loss == "bce":
        weight = torch.tensor(float(max(config.negatives, 1)))
        return losses.BinaryCrossEntropyLoss(model, pos_weight=weight)
    if config.loss == "listnet":
        return losses.ListNetLoss(model)
    return losses.LambdaLoss(model)


def head_parameter_pattern(parameter_names: list[str]) -> str | None:
    """A regex matching the classification head's parameters, ``None`` when there is none."""
    found = [
        name
        for name in _HEAD_NAMES
        if any(re.search(rf"(^|\.){name}\.", p) for p in parameter_names)
    ]
    if not found:
        return None
    return rf"(^|\.)({'|'.join(found)})\."
