"""Timing a reranker: percentiles, and per-query vs one-pass latency on the same pairs."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crossrank.errors import InvalidInputError

if TYPE_CHECKING:
    from crossrank.engine.reranker import Reranker

__all__ = ["LatencyReport", "percentile", "time_reranker"]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default method); ``nan`` for no values."""
    if not 0 <= q <= 100:
        msg = f"q must be between 0 and 100, got {q}"
        raise InvalidInputError(msg)
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class LatencyReport:
    """How fast one engine reranked the same pairs query by query and in one pass.

    Attributes:
        n_pairs: (query, document) pairs per run.
        per_query_p50_ms / per_query_p95_ms: latency of one ``rerank`` call.
        per_query_pairs_per_second: pairs over the summed ``rerank`` time.
        per_query_padding_efficiency: real over padded tokens, all ``rerank`` calls.
        many_ms_per_query: one ``rerank_many`` pass, divided by the number of queries.
        many_pairs_per_second / many_padding_efficiency: the same for that pass.
    """

    n_pairs: int
    per_query_p50_ms: float
    per_query_p95_ms: float
    per_query_pairs_per_second: float
    per_query_padding_efficiency: float
    many_ms_per_query: float
    many_pairs_per_second: float
    many_padding_efficiency: float


def time_reranker(
    engine: Reranker, queries: Sequence[str], candidates: Sequence[Sequence[str]]
) -> LatencyReport:
    """Rerank every query alone, then all in one ``rerank_many`` pass, and time both."""
    if not queries or len(queries) != len(candidates):
        msg = "pass one list of candidates per query, and at least one query"
        raise InvalidInputError(msg)
    n_pairs = sum(len(c) for c in candidates)
    latencies: list[float] = []
    real = padded = 0
    for query, docs in zip(queries, candidates, strict=True):
        started = time.perf_counter()
        engine.rerank(query, docs)
        latencies.append(time.perf_counter() - started)
        real += engine.last_stats.real_tokens
        padded += engine.last_stats.padded_tokens
    started = time.perf_counter()
    engine.rerank_many(queries, candidates)
    many = time.perf_counter() - started
    return LatencyReport(
        n_pairs=n_pairs,
        per_query_p50_ms=statistics.median(latencies) * 1000,
        per_query_p95_ms=percentile(latencies, 95) * 1000,
        per_query_pairs_per_second=n_pairs / sum(latencies),
        per_query_padding_efficiency=real / padded if padded else 1.0,
        many_ms_per_query=many / len(queries) * 1000,
        many_pairs_per_second=n_pairs / many,
        many_padding_efficiency=engine.last_stats.padding_efficiency,
    )
