"""``CrossrankReranker``: a LangChain document compressor backed by the crossrank engine."""

from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr

from crossrank.errors import InvalidInputError
from crossrank.types import RerankResult, SupportsRerank
from langchain_crossrank._engine import EngineOptions

__all__ = ["RELEVANCE_SCORE_KEY", "RERANK_EVENT", "CrossrankReranker"]

logger = logging.getLogger(__name__)

RELEVANCE_SCORE_KEY = "relevance_score"
"""The metadata key each returned document's score is written to (always the last key)."""
RERANK_EVENT = "crossrank_rerank"
"""The name of the custom callback event sent after each rerank."""


class CrossrankReranker(EngineOptions, BaseDocumentCompressor):
    """Reorders retrieved documents by a cross-encoder's relevance to the query.

    Use it as the ``base_compressor`` of a ``ContextualCompressionRetriever``. Pass an engine
    (``reranker=crossrank.Reranker(...)``, or anything implementing
    :class:`crossrank.SupportsRerank`) or the engine options (``model=...``, ``device=...``,
    ``reranker_kwargs={...}``) to have one built.

    The documents returned are copies, best first: ``metadata["relevance_score"]`` holds the
    score (a float: raw logit or probability as the engine's ``activation`` says, or the fused
    score when ``fusion`` is set) as the last key, replacing any earlier value; ``id``,
    ``page_content`` and the other metadata are kept (the metadata dict is new, its values are
    shared). The input documents are not changed.

    After each call a custom callback event named ``"crossrank_rerank"`` goes to the callbacks
    given (``on_custom_event`` handlers; ``astream_events`` yields it as ``on_custom_event``),
    with the data ``{"n_documents", "n_returned", "top_score", "n_truncated", "fusion"}``:
    documents in, documents out, the best score (``None`` when nothing is returned), how many
    returned documents the model did not read whole, and the fusion used.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    reranker: SupportsRerank | None = None
    """An engine to use (e.g. a shared :class:`crossrank.Reranker`); built from the engine
    options when ``None``."""
    top_n: int | None = Field(default=3, ge=1)
    """How many documents to return; ``None`` returns them all."""
    score_threshold: float | None = None
    """Drop documents whose final score is below this value."""
    fusion: Literal["weighted", "rrf"] | None = None
    """Combine the cross-encoder score with the retriever's score found in
    ``metadata[retrieval_score_key]``: ``"weighted"`` (min-max normalised, weighted by
    ``alpha``) or ``"rrf"`` (reciprocal-rank fusion). ``None`` uses the cross-encoder alone."""
    alpha: float = Field(default=0.5, ge=0.0, le=1.0)
    """Weight of the cross-encoder with ``fusion="weighted"`` (1.0 = cross-encoder only)."""
    retrieval_score_key: str = Field(default="score", min_length=1)
    """The metadata key holding the retriever's score (higher is better), used by ``fusion``."""

    _engine: SupportsRerank | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._check_not_both(self.reranker, "reranker")
        self._engine = self.reranker if self.reranker is not None else self._build_reranker()

    @property
    def engine(self) -> SupportsRerank:
        """The engine this compressor scores with."""
        if self._engine is None:
            self._engine = self.reranker if self.reranker is not None else self._build_reranker()
        return self._engine

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Return copies of the best ``top_n`` documents with their scores, best first."""
        docs = list(documents)
        if not docs:
            return []
        results = self.engine.rerank(query, [d.page_content for d in docs], **self._options(docs))
        out = [_scored_copy(docs[r.index], r.score) for r in results]
        manager = CallbackManager.configure(inheritable_callbacks=callbacks)
        manager.on_custom_event(
            RERANK_EVENT, self._event(len(docs), results), run_id=manager.parent_run_id
        )
        return out

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """:meth:`compress_documents` through the engine's ``arerank``: the event loop is not
        blocked, and concurrent calls share the engine's batches."""
        docs = list(documents)
        if not docs:
            return []
        texts = [d.page_content for d in docs]
        results = await self.engine.arerank(query, texts, **self._options(docs))
        out = [_scored_copy(docs[r.index], r.score) for r in results]
        manager = AsyncCallbackManager.configure(inheritable_callbacks=callbacks)
        await manager.on_custom_event(
            RERANK_EVENT, self._event(len(docs), results), run_id=manager.parent_run_id
        )
        return out

    # -- internals ----------------------------------------------------------------------------
    def _options(self, docs: Sequence[Document]) -> dict[str, Any]:
        return {
            "top_n": self.top_n,
            "retrieval_scores": self._retrieval_scores(docs) if self.fusion else None,
            "fusion": self.fusion,
            "alpha": self.alpha,
            "min_score": self.score_threshold,
        }

    def _retrieval_scores(self, docs: Sequence[Document]) -> list[float]:
        key = self.retrieval_score_key
        scores: list[float] = []
        for i, doc in enumerate(docs):
            if key not in doc.metadata:
                msg = (
                    f"document {i} has no metadata[{key!r}], which fusion={self.fusion!r} "
                    "needs (the retriever's score, higher is better). Use a retriever that "
                    "writes it (langchain_crossrank.ScoredVectorStoreRetriever), set "
                    "retrieval_score_key to the key your retriever uses, or set fusion=None"
                )
                raise InvalidInputError(msg)
            value = doc.metadata[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                msg = (
                    f"document {i} has metadata[{key!r}]={value!r}; fusion={self.fusion!r} "
                    "needs a number there (the retriever's score, higher is better)"
                )
                raise InvalidInputError(msg)
            scores.append(float(value))
        return scores

    def _event(self, n_documents: int, results: Sequence[RerankResult]) -> dict[str, Any]:
        data = {
            "n_documents": n_documents,
            "n_returned": len(results),
            "top_score": float(results[0].score) if results else None,
            "n_truncated": sum(bool(r.truncated) for r in results),
            "fusion": self.fusion,
        }
        logger.debug("reranked: %s", data)
        return data


def _scored_copy(doc: Document, score: float) -> Document:
    metadata = {k: v for k, v in doc.metadata.items() if k != RELEVANCE_SCORE_KEY}
    metadata[RELEVANCE_SCORE_KEY] = float(score)
    return doc.model_copy(update={"metadata": metadata})
