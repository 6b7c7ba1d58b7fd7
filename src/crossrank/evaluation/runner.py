"""Running the two-stage evaluation: first-stage retrieval (dense, BM25 or hybrid), then
reranking, on a collection split."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from crossrank.errors import InvalidInputError
from crossrank.evaluation.latency import percentile
from crossrank.evaluation.metrics import compute_metrics
from crossrank.evaluation.report import EvaluationReport, RunReport
from crossrank.evaluation.runs import Run, dense_run, reranked_rankings
from crossrank.ranking import mean_minmax
from crossrank.types import FUSE_WITH, FuseWith, FusionMethod, RankArgs, RerankResult

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from crossrank.data import Collection
    from crossrank.retrieval import SearchHit

__all__ = [
    "FuseWith",
    "SupportsRerankMany",
    "SupportsSearch",
    "evaluate",
    "first_stage_metrics",
    "first_stage_name",
    "fusion_scores",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class SupportsSearch(Protocol):
    """A first-stage retriever: :class:`crossrank.DenseRetriever` or anything alike."""

    def search(self, query: str, top_k: int = 10) -> list[SearchHit]:
        """The ``top_k`` best documents for ``query``, best first."""
        ...

    def __len__(self) -> int: ...


@runtime_checkable
class SupportsRerankMany(Protocol):
    """What evaluation needs from a reranker: :class:`crossrank.Reranker` or a fake."""

    def rerank_many(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        *,
        retrieval_scores: Sequence[Sequence[float]] | None = None,
        **options: Unpack[RankArgs],
    ) -> list[list[RerankResult]]:
        """One ranked list per query (see :class:`crossrank.types.RankArgs`)."""
        ...


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{name} must be a positive integer, got {value!r}"
        raise InvalidInputError(msg)
    return value


def _check_options(top_k: int, top_n: int, fusion: str, alpha: float) -> None:
    _positive("top_k", top_k)
    _positive("top_n", top_n)
    if top_n > top_k:
        msg = f"top_n={top_n} exceeds top_k={top_k}; the reranker can only reorder retrieved docs"
        raise InvalidInputError(msg)
    if fusion not in ("weighted", "rrf"):
        msg = f"fusion must be 'weighted' or 'rrf', got {fusion!r}"
        raise InvalidInputError(msg)
    if fusion == "weighted" and not 0.0 <= alpha <= 1.0:
        msg = f"alpha must be between 0 and 1 (weight of the cross-encoder), got {alpha}"
        raise InvalidInputError(msg)


def first_stage_name(retriever: object) -> str:
    """``"bm25"``, ``"hybrid"`` or ``"dense"`` (anything else), the first-stage run's name."""
    from crossrank.retrieval import BM25Retriever, HybridRetriever

    if isinstance(retriever, BM25Retriever):
        return "bm25"
    if isinstance(retriever, HybridRetriever):
        return "hybrid"
    return "dense"


def fusion_scores(row: Sequence[SearchHit], fuse_with: FuseWith) -> list[float]:
    """The first-stage scores a query's head is fused with (``fuse_with`` picks which).

    ``"dense+bm25"`` is ``(minmax(dense) + minmax(bm25)) / 2`` over ``row``: the convex
    combination of both retrievers' scores, so that the cross-encoder's fusion weighs the
    cross-encoder against both first stages at once.
    """
    if fuse_with == "first-stage":
        return [hit.score for hit in row]
    if fuse_with == "dense+bm25":
        return mean_minmax(fusion_scores(row, "dense"), fusion_scores(row, "bm25"))
    scores = [hit.score_of(fuse_with) for hit in row]
    if any(s is None for s in scores):
        msg = (
            f"fuse_with={fuse_with!r} needs every hit's {fuse_with} score; use a "
            "HybridRetriever with complete_scores=True"
        )
        raise InvalidInputError(msg)
    return [float(s) for s in scores if s is not None]


def first_stage_metrics(
    collection: Collection,
    retriever: SupportsSearch,
    *,
    top_k: int = 50,
    max_queries: int | None = None,
) -> dict[str, float]:
    """NDCG@10, MRR@10, Hit@1 and Recall@``top_k`` of the first stage alone."""
    queries = collection.judged_queries(max_queries)
    search_batch = getattr(retriever, "search_batch", None)
    texts = [q.text for q in queries]
    if search_batch is not None:
        hits = search_batch(texts, top_k=top_k)
    else:
        hits = [retriever.search(text, top_k=top_k) for text in texts]
    rankings = {q.id: [h.id for h in row] for q, row in zip(queries, hits, strict=True)}
    qrels = {q.id: dict(collection.qrels[q.id]) for q in queries}
    return dict(compute_metrics(qrels, rankings, recall_k=top_k).aggregate)


def _name(obj: object) -> str:
    name = getattr(obj, "model_name", None)
    return name if isinstance(name, str) else type(obj).__name__


def evaluate(
    collection: Collection,
    retriever: SupportsSearch,
    reranker: SupportsRerankMany,
    *,
    top_k: int = 50,
    top_n: int = 10,
    fusion: FusionMethod = "weighted",
    alpha: float = 0.5,
    max_queries: int | None = None,
    show_progress: bool | None = None,
    fuse_with: FuseWith = "first-stage",
) -> EvaluationReport:
    """Compare first-stage, reranked and fused rankings on ``collection``'s judged queries.

    Each query is retrieved (``top_k`` documents) and its ``top_n`` best are reranked, one
    query at a time so that latencies are per query. The reranked run lists the reranked
    documents by rerank score, then the rest of the dense ``top_k``; the fused run orders the
    same head by the reranker's fusion (``fusion="weighted"`` with ``alpha``, or ``"rrf"``)
    of rerank and first-stage scores. All three hold the same documents, so Recall@``top_k``
    is the same for each. The first-stage run is named after the retriever: ``"dense"``,
    ``"bm25"`` (:class:`crossrank.BM25Retriever`) or ``"hybrid"``
    (:class:`crossrank.HybridRetriever`).

    Args:
        collection: a loaded split (:func:`crossrank.load_beir`).
        retriever: holds the collection's corpus (e.g. a :class:`crossrank.DenseRetriever`
            after ``add_documents(collection.corpus.values())``).
        reranker: anything with ``rerank_many`` (e.g. :class:`crossrank.Reranker`).
        max_queries: evaluate the first N judged queries only.
        show_progress: progress bars; ``None`` shows them on a terminal only.
        fuse_with: the first-stage score fused with the cross-encoder: the hit's own
            (``"first-stage"``), a hybrid hit's ``"bm25"`` or ``"dense"`` score (the 80/20
            cross-encoder + BM25 blend is ``fuse_with="bm25", alpha=0.8``), or both
            (``"dense+bm25"``; the measured best with the starter model is
            ``fuse_with="dense+bm25", alpha=0.2``, see docs/hybrid.md).
    """
    from tqdm.auto import tqdm

    _check_options(top_k, top_n, fusion, alpha)
    if fuse_with not in FUSE_WITH:
        msg = f"fuse_with must be one of {', '.join(map(repr, FUSE_WITH))}; got {fuse_with!r}"
        raise InvalidInputError(msg)
    first = first_stage_name(retriever)
    if len(retriever) == 0:
        msg = (
            "the retriever holds no documents; add the collection's corpus first, e.g. "
            "retriever.add_documents(collection.corpus.values())"
        )
        raise InvalidInputError(msg)
    queries = collection.judged_queries(max_queries)
    if not queries:
        msg = f"split {collection.split!r} of {collection.name} has no judged queries"
        raise InvalidInputError(msg)
    disable = None if show_progress is None else not show_progress

    hits: dict[str, list[SearchHit]] = {}
    dense_ms: list[float] = []
    for query in tqdm(queries, desc="retrieving", unit="query", disable=disable):
        started = time.perf_counter()
        hits[query.id] = list(retriever.search(query.text, top_k=top_k))
        dense_ms.append((time.perf_counter() - started) * 1000.0)

    reranked: dict[str, tuple[str, ...]] = {}
    reranked_scores: dict[str, tuple[float, ...]] = {}
    fused: dict[str, tuple[str, ...]] = {}
    fused_scores: dict[str, tuple[float, ...]] = {}
    total_ms: list[float] = []
    pairs, rerank_seconds, truncated = 0, 0.0, 0
    # The engine warns once per engine; this run's own summary comes after the loop.
    rerank_loop = tqdm(queries, desc="reranking", unit="query", disable=disable)
    for query, spent in zip(rerank_loop, dense_ms, strict=True):
        row = hits[query.id]
        head = row[:top_n]
        results: list[RerankResult] = []
        elapsed = 0.0
        if head:
            started = time.perf_counter()
            (results,) = reranker.rerank_many(
                [query.text],
                [[hit.text for hit in head]],
                top_n=None,
                retrieval_scores=[fusion_scores(head, fuse_with)],
                fusion=fusion,
                alpha=alpha,
            )
            elapsed = time.perf_counter() - started
        pairs += len(head)
        rerank_seconds += elapsed
        truncated += sum(r.truncated for r in results)
        total_ms.append(spent + elapsed * 1000.0)
        reranked[query.id], reranked_scores[query.id] = reranked_rankings(row, results, fused=False)
        fused[query.id], fused_scores[query.id] = reranked_rankings(row, results, fused=True)

    runs = {
        first: dense_run(hits, first),
        "reranked": Run("reranked", reranked, reranked_scores),
        "fused": Run("fused", fused, fused_scores),
    }
    qrels = {q.id: dict(collection.qrels[q.id]) for q in queries}
    pps = pairs / rerank_seconds if rerank_seconds > 0 else None
    reports = []
    for name, run in runs.items():
        latencies = dense_ms if name == first else total_ms
        metrics = compute_metrics(qrels, run.rankings, recall_k=top_k).aggregate
        reports.append(
            RunReport(
                name=name,
                metrics=metrics,
                latency_p50_ms=percentile(latencies, 50),
                latency_p95_ms=percentile(latencies, 95),
                pairs_per_second=None if name == first else pps,
            )
        )
    if truncated:
        logger.warning(
            "%d of %d reranked documents did not fit the reranker's max_length and were "
            "truncated; use overflow='chunk' to score them whole",
            truncated,
            pairs,
        )
    return EvaluationReport(
        collection=collection.name,
        split=collection.split,
        n_queries=len(queries),
        retriever=_name(retriever),
        reranker=_name(reranker),
        top_k=top_k,
        top_n=top_n,
        fusion=fusion,
        alpha=float(alpha),
        runs=tuple(reports),
        truncated_documents=truncated,
        first_stage=first,
        fuse_with=fuse_with,
        runs_data=runs,
    )
