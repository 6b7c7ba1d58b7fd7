"""Combining cross-encoder scores with first-stage retrieval scores, per query."""

from __future__ import annotations

import math
from collections.abc import Sequence

from crossrank.errors import InvalidInputError
from crossrank.types import FusionMethod

__all__ = ["fuse", "mean_minmax", "minmax", "rank_positions", "rrf"]

RRF_K = 60


def minmax(scores: Sequence[float]) -> list[float]:
    """Scale to [0, 1]; all-equal scores map to 1.0 (no information, no penalty)."""
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return [1.0] * len(scores)
    return [(s - lo) / (hi - lo) for s in scores]


def mean_minmax(*runs: Sequence[float]) -> list[float]:
    """The mean of the runs, each min-max scaled first: a convex combination of first stages.

    E.g. a hybrid hit list's dense and BM25 scores as one retrieval score to fuse with the
    cross-encoder: ``mean_minmax([h.scores["dense"] ...], [h.scores["bm25"] ...])``.
    """
    if not runs:
        msg = "mean_minmax needs at least one run of scores"
        raise InvalidInputError(msg)
    if len({len(run) for run in runs}) > 1:
        msg = f"the runs must score the same documents; got lengths {[len(r) for r in runs]}"
        raise InvalidInputError(msg)
    if len(runs[0]) == 0:
        return []
    try:
        values = [[float(s) for s in run] for run in runs]
    except (TypeError, ValueError) as exc:
        msg = f"mean_minmax takes numbers (first-stage scores); {exc}"
        raise InvalidInputError(msg) from None
    if any(not math.isfinite(s) for run in values for s in run):
        msg = "mean_minmax got NaN or infinite scores; pass finite first-stage scores"
        raise InvalidInputError(msg)
    scaled = [minmax(run) for run in values]
    return [sum(column) / len(runs) for column in zip(*scaled, strict=True)]


def rank_positions(scores: Sequence[float]) -> list[int]:
    """1-based rank of each score (highest first, ties broken by input order)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    ranks = [0] * len(scores)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


def rrf(*runs: Sequence[float], k: int = RRF_K) -> list[float]:
    """Reciprocal-rank fusion: sum of ``1 / (k + rank)`` over the runs."""
    ranked = [rank_positions(run) for run in runs]
    return [sum(1.0 / (k + r[i]) for r in ranked) for i in range(len(runs[0]))]


def fuse(
    rerank_scores: Sequence[float],
    retrieval_scores: Sequence[float],
    method: FusionMethod,
    alpha: float,
) -> list[float]:
    """Fused scores for one query.

    ``"weighted"``: ``alpha * minmax(rerank) + (1 - alpha) * minmax(retrieval)``
    (``alpha=1`` is the cross-encoder alone). ``"rrf"``: reciprocal-rank fusion of both.
    """
    if len(rerank_scores) != len(retrieval_scores):
        msg = (
            f"retrieval_scores has {len(retrieval_scores)} values for "
            f"{len(rerank_scores)} documents; pass one score per document"
        )
        raise InvalidInputError(msg)
    if not rerank_scores:
        return []
    if any(not math.isfinite(s) for s in retrieval_scores):
        msg = "retrieval_scores contains NaN or infinite values; pass finite scores"
        raise InvalidInputError(msg)
    if method == "rrf":
        return rrf(rerank_scores, retrieval_scores)
    if method == "weighted":
        if not 0.0 <= alpha <= 1.0:
            msg = f"alpha must be between 0 and 1 (weight of the cross-encoder), got {alpha}"
            raise InvalidInputError(msg)
        ce, dense = minmax(rerank_scores), minmax(retrieval_scores)
        return [alpha * c + (1.0 - alpha) * d for c, d in zip(ce, dense, strict=True)]
    msg = f"unknown fusion {method!r}; use 'weighted' or 'rrf'"
    raise InvalidInputError(msg)
