"""Plain result types and the one-method interfaces the adapters depend on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

__all__ = ["FusionMethod", "RerankResult", "SupportsRerank", "SupportsScorePairs"]

FusionMethod = Literal["weighted", "rrf"]


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One reranked document.

    Attributes:
        index: position of the document in the caller's input list.
        score: the final score the results are sorted by (``rerank_score`` unless fusion
            was asked for, then the fused score).
        rerank_score: the cross-encoder's score, raw logit or sigmoid probability as the
            reranker's ``activation`` says.
        retrieval_score: the first-stage score passed in, or ``None``.
        truncated: True when part of the document was not read by the model.
        n_windows: how many windows of the document were scored (1 unless chunking).
        document: the document text as given.
    """

    index: int
    score: float
    rerank_score: float
    retrieval_score: float | None
    truncated: bool
    n_windows: int
    document: str


@runtime_checkable
class SupportsScorePairs(Protocol):
    """Anything that scores (query, document) pairs; higher means more relevant."""

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...


@runtime_checkable
class SupportsRerank(Protocol):
    """The interface the LlamaIndex and LangChain adapters use; :class:`crossrank.Reranker`
    implements it, and tests or notebooks may pass a deterministic fake."""

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        retrieval_scores: Sequence[float] | None = None,
        fusion: FusionMethod | None = None,
        alpha: float = 1.0,
        min_score: float | None = None,
    ) -> list[RerankResult]: ...

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        retrieval_scores: Sequence[float] | None = None,
        fusion: FusionMethod | None = None,
        alpha: float = 1.0,
        min_score: float | None = None,
    ) -> list[RerankResult]: ...
