"""Plain result types and the one-method interfaces the adapters depend on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict, get_args, runtime_checkable

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "AGGREGATES",
    "FUSE_WITH",
    "FUSION_METHODS",
    "OVERFLOWS",
    "Aggregate",
    "DocRead",
    "FuseWith",
    "FusionMethod",
    "Overflow",
    "RankArgs",
    "RerankResult",
    "SupportsRerank",
    "SupportsScorePairs",
]

FusionMethod = Literal["weighted", "rrf"]
#: What happens to a document that does not fit beside the query: cut, windows, or an error.
Overflow = Literal["truncate", "chunk", "error"]
#: How the scores of a chunked document's windows combine.
Aggregate = Literal["max", "first", "mean"]
#: How the model runs: PyTorch, or a CPU fast path exported once into crossrank's cache.
Backend = Literal["torch", "onnx", "onnx-int8", "openvino", "openvino-int8"]
#: Which first-stage score an evaluation fuses with the cross-encoder: the hit's own score,
#: one retriever's score of a hybrid hit (``hit.scores[...]``), or both retrievers' scores
#: (``"dense+bm25"``: the mean of the two, each min-max scaled over the query's head).
FuseWith = Literal["first-stage", "dense", "bm25", "dense+bm25"]
FUSION_METHODS: tuple[str, ...] = get_args(FusionMethod)
FUSE_WITH: tuple[str, ...] = get_args(FuseWith)
OVERFLOWS: tuple[str, ...] = get_args(Overflow)
AGGREGATES: tuple[str, ...] = get_args(Aggregate)
BACKENDS: tuple[str, ...] = get_args(Backend)


class RankArgs(TypedDict, total=False):
    """The ranking options every ``rerank``-like method takes as keywords.

    Keys:
        top_n: keep the best ``top_n`` results (``None``: all).
        fusion: combine the cross-encoder with ``retrieval_scores``: ``"weighted"``
            (``alpha * minmax(rerank) + (1 - alpha) * minmax(retrieval)``) or ``"rrf"``.
        alpha: weight of the cross-encoder in ``"weighted"`` fusion, in [0, 1] (default 1).
        min_score: drop results whose final score is below this.
    """

    top_n: int | None
    fusion: FusionMethod | None
    alpha: float
    min_score: float | None


@dataclass(frozen=True, slots=True)
class DocRead:
    """How the model read one document.

    Attributes:
        truncated: part of the document was not read.
        n_windows: how many windows were scored (1 unless chunking).
        span: ``(start, end)`` character offsets in the document of the text that decided
            the score: the best window of a chunked document, the kept head of a truncated
            one, the whole text otherwise; ``None`` when unknown.
    """

    truncated: bool
    n_windows: int
    span: tuple[int, int] | None = None


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
        span: ``(start, end)`` character offsets of the text that decided the score (the
            best window of a chunked document, the kept head of a truncated one), or
            ``None`` when the reranker does not know.
    """

    index: int
    score: float
    rerank_score: float
    retrieval_score: float | None
    truncated: bool
    n_windows: int
    document: str
    span: tuple[int, int] | None = None


@runtime_checkable
class SupportsScorePairs(Protocol):
    """Anything that scores (query, document) pairs; higher means more relevant."""

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """One score per (query, document) pair, in order."""
        ...


@runtime_checkable
class SupportsRerank(Protocol):
    """The interface the LlamaIndex and LangChain adapters use; :class:`crossrank.Reranker`
    implements it, and tests or notebooks may pass a deterministic fake."""

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        retrieval_scores: Sequence[float] | None = None,
        **options: Unpack[RankArgs],
    ) -> list[RerankResult]:
        """The documents as results, best first (see :class:`RankArgs` for the options)."""
        ...

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        retrieval_scores: Sequence[float] | None = None,
        **options: Unpack[RankArgs],
    ) -> list[RerankResult]:
        """:meth:`rerank` for async callers, without blocking the event loop."""
        ...
