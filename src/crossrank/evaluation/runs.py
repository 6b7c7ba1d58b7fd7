"""Ranked runs: dense-only, reranked and fused, built from retrieval hits and rerank results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crossrank.evaluation.metrics import to_trec

if TYPE_CHECKING:
    from crossrank.retrieval import SearchHit
    from crossrank.types import RerankResult

__all__ = ["Run", "dense_run", "reranked_rankings"]


@dataclass(frozen=True)
class Run:
    """One system's ranking for each query.

    Attributes:
        name: the first stage (``"dense"``, ``"bm25"`` or ``"hybrid"``), ``"reranked"`` or
            ``"fused"``.
        rankings: ``{qid: (doc_id, ...)}``, best first.
        scores: ``{qid: (score, ...)}`` aligned with ``rankings``: dense scores for the dense
            run; rerank scores then the remaining dense scores for the reranked run; fused
            scores then dense scores for the fused run (not comparable across the boundary).
    """

    name: str
    rankings: Mapping[str, tuple[str, ...]]
    scores: Mapping[str, tuple[float, ...]]

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{qid: {doc_id: score}}`` (TREC/ir-measures/ranx form) with rank-derived scores.

        The document at 0-based rank ``r`` of ``n`` scores ``n - r``, so every evaluation
        tool reproduces this run's exact order; the native scores are in :attr:`scores`.
        """
        return to_trec(self.rankings)


def dense_run(hits: Mapping[str, Sequence[SearchHit]], name: str = "dense") -> Run:
    """The first-stage ranking as retrieved (``name``: ``"dense"``, ``"bm25"``, ``"hybrid"``)."""
    return Run(
        name=name,
        rankings={qid: tuple(h.id for h in row) for qid, row in hits.items()},
        scores={qid: tuple(float(h.score) for h in row) for qid, row in hits.items()},
    )


def reranked_rankings(
    hits: Sequence[SearchHit], results: Sequence[RerankResult], *, fused: bool
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """One query's reranked (or fused) ranking over its dense hits.

    ``results`` rerank a head of ``hits`` (``result.index`` points into it). The head comes
    first, ordered by rerank score (``fused=False``) or by the final fused score
    (``fused=True``), ties in dense order; the rest of the hits follow in dense order, so
    the ranking holds the same documents as the dense one and Recall@k stays comparable.
    """

    def key(result: RerankResult) -> tuple[float, int]:
        return (-(result.score if fused else result.rerank_score), result.index)

    ordered = sorted(results, key=key)
    taken = {r.index for r in ordered}
    ids = [hits[r.index].id for r in ordered]
    scores = [float(r.score if fused else r.rerank_score) for r in ordered]
    for position, hit in enumerate(hits):
        if position not in taken:
            ids.append(hit.id)
            scores.append(float(hit.score))
    return tuple(ids), tuple(scores)
