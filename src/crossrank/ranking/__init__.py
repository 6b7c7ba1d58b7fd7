"""From scores to what the caller uses: ranked results, fusion with first-stage scores, and
the context string packed from them for an LLM's prompt."""

from __future__ import annotations

from crossrank.ranking.context import (
    ContextPacker,
    DroppedResult,
    PackedContext,
    PackedPassage,
)
from crossrank.ranking.fusion import fuse, mean_minmax, minmax, rank_positions, rrf
from crossrank.ranking.results import (
    RankOptions,
    check_choice,
    check_positive_int,
    check_real,
    check_retrieval_scores,
    rank_results,
)
from crossrank.types import RankArgs

__all__ = [
    "ContextPacker",
    "DroppedResult",
    "PackedContext",
    "PackedPassage",
    "RankArgs",
    "RankOptions",
    "check_choice",
    "check_positive_int",
    "check_real",
    "check_retrieval_scores",
    "fuse",
    "mean_minmax",
    "minmax",
    "rank_positions",
    "rank_results",
    "rrf",
]
