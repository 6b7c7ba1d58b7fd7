"""The shared cross-encoder engine: :class:`Reranker`."""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from crossrank.engine.aio import Coalescer
from crossrank.engine.batching import BatchPolicy
from crossrank.engine.geometry import PairGeometry
from crossrank.engine.loading import Activation, load_model
from crossrank.engine.resolve import resolve_reranker
from crossrank.engine.score_cache import CacheStats
from crossrank.engine.scoring import DocScore, PairScorer, Prepared, ScoringStats
from crossrank.errors import CrossrankError, InvalidInputError
from crossrank.ranking.results import RankOptions, check_choice, rank_results
from crossrank.types import (
    AGGREGATES,
    OVERFLOWS,
    Aggregate,
    Backend,
    Overflow,
    RankArgs,
    RerankResult,
)

if TYPE_CHECKING:
    import torch
    from typing_extensions import Unpack

__all__ = ["Reranker"]

logger = logging.getLogger(__name__)

_ACTIVATIONS = ("auto", "raw", "sigmoid")
_Request = tuple[str, Sequence[str]]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class Reranker:
    """Reorders documents by a cross-encoder's relevance to a query.

    Args:
        model: a local model folder or hub id; ``None`` resolves ``$CROSSRANK_RERANKER``, then
            the starter model in crossrank's cache, then the default hub model.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or ``"mps"``.
        dtype: ``"auto"`` (bf16 on CUDA with bf16 support, else fp16 on CUDA; fp32 on CPU) or
            ``"float32"``/``"bfloat16"``/``"float16"``. Scores are always computed in fp32.
        max_length: tokens per (query, document) pair; default the model's configured length.
        query_max_tokens: the most tokens the query keeps (default a quarter of max_length);
            the document gets the rest.
        overflow: a document that does not fit is cut (``"truncate"``), scored in overlapping
            windows (``"chunk"``), or refused (``"error"``).
        stride: tokens shared by consecutive windows with ``overflow="chunk"``.
        aggregate: how window scores combine: ``"max"``, ``"first"`` or ``"mean"`` (of logits).
        token_budget: padded tokens per batch (default from the device).
        activation: ``"raw"`` logits, ``"sigmoid"`` probabilities, or ``"auto"``: what the
            model's configuration says (sigmoid for most single-label rerankers).
        cache_size: how many pair scores to keep in an LRU cache (0 = off).
        progress_threshold: show a progress bar for calls with at least this many pairs
            (``None`` = never).
        backend: ``"torch"``; or a CPU fast path, exported once into crossrank's cache:
            ``"onnx"`` (fp32), ``"onnx-int8"`` (dynamically quantised), ``"openvino"``
            (fp32) or ``"openvino-int8"`` (statically quantised, calibrated on built-in text).
        num_threads: CPU threads for the ONNX and OpenVINO backends (default: the cores
            available).
        compile: run the torch model through ``torch.compile`` (dynamic shapes); pays off on
            a GPU for long-running services, the first batches pay the compilation.
        model_kwargs / tokenizer_kwargs: passed to the model / tokenizer loaders.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
        dtype: str | torch.dtype = "auto",
        max_length: int | None = None,
        query_max_tokens: int | None = None,
        overflow: Overflow = "truncate",
        stride: int | None = None,
        aggregate: Aggregate = "max",
        token_budget: int | None = None,
        max_batch_size: int = 512,
        activation: str = "auto",
        cache_size: int = 0,
        backend: Backend = "torch",
        num_threads: int | None = None,
        compile: bool = False,
        revision: str | None = None,
        trust_remote_code: bool = False,
        progress_threshold: int | None = 512,
        model_kwargs: Mapping[str, Any] | None = None,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        check_choice("overflow", overflow, OVERFLOWS)
        check_choice("aggregate", aggregate, AGGREGATES)
        check_choice("activation", activation, _ACTIVATIONS)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            msg = f"cache_size must be a non-negative integer, got {cache_size!r}"
            raise InvalidInputError(msg)
        name, self.model_source = resolve_reranker(model)
        loaded = load_model(
            name,
            revision=revision,
            device=device,
            dtype=dtype,
            backend=backend,
            trust_remote_code=trust_remote_code,
            model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs,
            num_threads=num_threads,
            compile=compile,
        )
        self._loaded = loaded
        self._geometry = PairGeometry.build(
            model=name,
            n_special=loaded.template.n_special,
            model_max_length=loaded.model_max_length,
            default_max_length=loaded.default_max_length,
            max_length=max_length,
            query_max_tokens=query_max_tokens,
            stride=stride,
        )
        self.activation: Activation = loaded.activation if activation == "auto" else activation  # type: ignore[assignment]
        self._scorer = PairScorer(
            loaded,
            geometry=self._geometry,
            overflow=overflow,
            aggregate=aggregate,
            policy=BatchPolicy.for_device(
                loaded.device,
                max_length=self._geometry.max_length,
                token_budget=token_budget,
                max_batch_size=max_batch_size,
            ),
            cache_size=cache_size,
            progress_threshold=progress_threshold,
        )
        self._coalescer: Coalescer[Prepared, list[DocScore]] = Coalescer(
            self._run_prepared,
            size=lambda prepared: prepared.n_windows,
            max_size=self._scorer.policy.max_pass_windows,
        )
        self._last_stats: ContextVar[ScoringStats] = ContextVar("last_stats")
        self._listeners: list[Callable[[ScoringStats], None]] = []
        self._warned = False

    # -- properties ---------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """The model folder or hub id the engine loaded."""
        return self._loaded.name

    @property
    def device(self) -> str:
        """The device the model runs on (``"cpu"``, ``"cuda:0"``, ...)."""
        return self._loaded.device

    @property
    def dtype(self) -> torch.dtype:
        """The torch dtype of the model's weights (scores are fp32 either way)."""
        return self._loaded.dtype

    @property
    def backend(self) -> Backend:
        """``"torch"``, ``"onnx"``, ``"onnx-int8"``, ``"openvino"`` or ``"openvino-int8"``."""
        return self._loaded.backend

    @property
    def max_length(self) -> int:
        """Tokens per (query, document) pair, special tokens included."""
        return self._geometry.max_length

    @property
    def query_max_tokens(self) -> int:
        """Query tokens kept when a pair does not fit (a pair that fits is never cut)."""
        return self._geometry.query_max_tokens

    @property
    def geometry(self) -> PairGeometry:
        """The pair arithmetic: max length, special tokens, query limit, stride."""
        return self._geometry

    @property
    def overflow(self) -> Overflow:
        """What happens to a document that does not fit: ``truncate``, ``chunk`` or ``error``."""
        return self._scorer.overflow

    @property
    def cache_stats(self) -> CacheStats:
        """Hits, misses and size of the pair-score cache (``cache_size=0``: all zero)."""
        return self._scorer.cache.stats

    @property
    def last_stats(self) -> ScoringStats:
        """What the most recent synchronous call made from this thread (or task) did:
        pairs, distinct pairs, windows, batches, real and padded tokens, truncations.

        Each thread and each asyncio task sees its own calls only.
        """
        return self._last_stats.get(ScoringStats())

    def add_stats_listener(self, listener: Callable[[ScoringStats], None]) -> None:
        """Call ``listener(stats)`` after every scoring pass, synchronous or coalesced, from
        the thread that ran it (a service's metrics use this; keep the listener quick)."""
        self._listeners.append(listener)

    @property
    def cross_encoder(self) -> Any:
        """The underlying ``sentence_transformers.CrossEncoder`` (shared; do not modify)."""
        return self._loaded.cross_encoder

    def __repr__(self) -> str:
        return (
            f"Reranker(model={self.model_name!r}, device={self.device!r}, "
            f"dtype={str(self.dtype).removeprefix('torch.')}, backend={self.backend!r}, "
            f"max_length={self.max_length}, "
            f"overflow={self.overflow!r}, activation={self.activation!r})"
        )

    # -- public API ---------------------------------------------------------------------------
    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        retrieval_scores: Sequence[float] | None = None,
        **options: Unpack[RankArgs],
    ) -> list[RerankResult]:
        """Return the documents as :class:`RerankResult` objects, best first.

        Options (:class:`~crossrank.types.RankArgs`): ``top_n``, ``fusion`` with
        ``retrieval_scores``, ``alpha``, ``min_score``. Every argument is checked before the
        model runs.

        >>> reranker.rerank("is coffee bad for you?", docs, top_n=3)  # doctest: +SKIP
        """
        opts = RankOptions.parse(options)
        docs = _check_request(query, documents)
        dense = opts.check_request(retrieval_scores, len(docs))
        (scores,) = self._score([(query, docs)])
        return self._finish(docs, scores, dense, opts)

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        retrieval_scores: Sequence[float] | None = None,
        **options: Unpack[RankArgs],
    ) -> list[RerankResult]:
        """:meth:`rerank` without blocking the event loop; concurrent calls share batches."""
        opts = RankOptions.parse(options)
        docs = _check_request(query, documents)
        dense = opts.check_request(retrieval_scores, len(docs))
        scores = await self._ascore(query, docs) if docs else []
        return self._finish(docs, scores, dense, opts)

    def rerank_many(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        *,
        retrieval_scores: Sequence[Sequence[float]] | None = None,
        **options: Unpack[RankArgs],
    ) -> list[list[RerankResult]]:
        """Rerank several queries in one length-sorted pass over all their pairs."""
        opts = RankOptions.parse(options)
        queries, documents_per_query = _as_lists(queries, documents_per_query)
        if retrieval_scores is not None:
            retrieval_scores = _as_list(retrieval_scores, "retrieval_scores")
            if len(retrieval_scores) != len(queries):
                msg = "retrieval_scores must hold one list of scores per query"
                raise InvalidInputError(msg)
        requests = [_check_request(q, d) for q, d in zip(queries, documents_per_query, strict=True)]
        dense = [
            opts.check_request(None if retrieval_scores is None else retrieval_scores[i], len(d))
            for i, d in enumerate(requests)
        ]
        scored = self._score(list(zip(queries, requests, strict=True)))
        return [
            self._finish(docs, scores, dense[i], opts)
            for i, (docs, scores) in enumerate(zip(requests, scored, strict=True))
        ]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Score (query, document) pairs in the given order (``activation`` applies)."""
        requests, where = _group_pairs(pairs)
        scored = self._score(requests) if requests else []
        return [self._activate(scored[r][d].logit) for r, d in where]

    async def ascore_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """:meth:`score_pairs` without blocking the event loop."""
        requests, where = _group_pairs(pairs)
        scored = [await self._ascore(query, docs) for query, docs in requests]
        return [self._activate(scored[r][d].logit) for r, d in where]

    # -- internals ----------------------------------------------------------------------------
    def _score(self, requests: list[_Request]) -> list[list[DocScore]]:
        results, stats = self._scorer.score(requests)
        self._last_stats.set(stats)
        self._after_pass(stats)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results  # type: ignore[return-value]

    async def _ascore(self, query: str, docs: Sequence[str]) -> list[DocScore]:
        """Tokenize this request in a worker thread, then join the shared batch."""
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(None, self._scorer.prepare, query, docs)
        if prepared.error is not None:
            raise prepared.error
        return await self._coalescer.submit(prepared)

    def _run_prepared(self, batch: Sequence[Prepared]) -> list[list[DocScore] | CrossrankError]:
        results, stats = self._scorer.run(batch)
        self._after_pass(stats)
        return results

    def _after_pass(self, stats: ScoringStats) -> None:
        self._warn(stats)
        for listener in self._listeners:
            listener(stats)

    def _warn(self, stats: ScoringStats) -> None:
        """Say once per engine that documents or queries were cut; later at debug level."""
        if not (stats.truncated or stats.queries_cut):
            return
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        logger.log(
            level,
            "%d of %d documents did not fit in max_length=%d and were cut (each result's "
            "`truncated` says which; use overflow='chunk' to score them whole); %d pairs had "
            "their query cut to query_max_tokens=%d to leave the document room. Said once "
            "per engine; later calls log this at debug level",
            stats.truncated,
            stats.distinct,
            self.max_length,
            stats.queries_cut,
            self.query_max_tokens,
        )

    def _activate(self, logit: float) -> float:
        return _sigmoid(logit) if self.activation == "sigmoid" else float(logit)

    def _finish(
        self,
        docs: list[str],
        scores: Sequence[DocScore],
        dense: list[float] | None,
        options: RankOptions,
    ) -> list[RerankResult]:
        return rank_results(
            docs,
            [self._activate(s.logit) for s in scores],
            options,
            retrieval_scores=dense,
            reads=[s.read for s in scores],
        )


def _check_request(query: object, documents: object) -> list[str]:
    if not isinstance(query, str):
        msg = f"query must be a string, got {type(query).__name__}"
        raise InvalidInputError(msg)
    if not query.strip():
        msg = "query is empty; pass the user's question as a non-empty string"
        raise InvalidInputError(msg)
    _check_text("query", query)
    if isinstance(documents, str | bytes) or not isinstance(documents, Sequence):
        msg = f"documents must be a list of strings, got {type(documents).__name__}"
        raise InvalidInputError(msg)
    for i, doc in enumerate(documents):
        if not isinstance(doc, str):
            msg = f"document {i} must be a string, got {type(doc).__name__}"
            raise InvalidInputError(msg)
        _check_text(f"document {i}", doc)
    return list(documents)


def _check_text(what: str, text: str) -> None:
    """Refuse text the tokenizer cannot read (lone surrogates from bad decoding)."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        msg = (
            f"{what} holds an invalid character at position {exc.start} (a lone surrogate, "
            "usually from decoding bytes with errors='surrogateescape'); clean the text, e.g. "
            "text.encode('utf-8', 'replace').decode()"
        )
        raise InvalidInputError(msg) from None


def _as_list(value: object, name: str) -> list[Any]:
    if isinstance(value, str | bytes | Mapping):
        msg = f"{name} must be a list, got {type(value).__name__}"
        raise InvalidInputError(msg)
    try:
        items: list[Any] = list(value)  # type: ignore[call-overload]
    except TypeError:
        msg = f"{name} must be a list, got {type(value).__name__}"
        raise InvalidInputError(msg) from None
    return items


def _as_lists(queries: object, documents_per_query: object) -> tuple[list[Any], list[Any]]:
    """``rerank_many``'s two parallel inputs as lists (generators and tuples are accepted)."""
    qs = _as_list(queries, "queries")
    docs = _as_list(documents_per_query, "documents_per_query")
    if len(qs) != len(docs):
        msg = (
            f"queries ({len(qs)}) and documents_per_query ({len(docs)}) must have the same "
            "length: one list of documents per query"
        )
        raise InvalidInputError(msg)
    return qs, docs


def _group_pairs(pairs: Sequence[tuple[str, str]]) -> tuple[list[_Request], list[tuple[int, int]]]:
    """Group pairs by query (first-seen order); return requests and where each pair went."""
    pairs = _as_list(pairs, "pairs")
    by_query: dict[str, int] = {}
    requests: list[tuple[str, list[str]]] = []
    where: list[tuple[int, int]] = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            msg = f"pair {i} must be a (query, document) tuple"
            raise InvalidInputError(msg)
        query, doc = pair
        _check_request(query, [doc])
        r = by_query.setdefault(query, len(requests))
        if r == len(requests):
            requests.append((query, []))
        where.append((r, len(requests[r][1])))
        requests[r][1].append(doc)
    return [(q, d) for q, d in requests], where
