"""``CrossrankReranker``: a LangChain document compressor backed by the crossrank engine."""

from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field

from crossrank.adapters import READ_KEYS, EngineOptions, check_top_n, read_metadata
from crossrank.errors import InvalidInputError
from crossrank.types import RerankResult, SupportsRerank

__all__ = ["RELEVANCE_SCORE_KEY", "RERANK_EVENT", "CrossrankReranker"]

logger = logging.getLogger(__name__)

RELEVANCE_SCORE_KEY = "relevance_score"
"""The metadata key each returned document's score is written to (always the last key)."""
RERANK_EVENT = "crossrank_rerank"
"""The name of the custom callback event sent after each rerank."""


@dataclass(frozen=True)
class _Request:
    """One checked call: the documents, the engine's positional and keyword arguments."""

    docs: list[Document]
    args: tuple[str, list[str]]
    options: dict[str, Any]


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
    shared). Before it, ``crossrank_truncated``, ``crossrank_n_windows`` and (when known)
    ``crossrank_span`` say how the model read the document. The input documents are not changed.
    The first time a returned document was truncated, one warning is logged per compressor.

    It can be pickled (carrying its engine options, not the loaded model) and deep-copied
    (sharing the engine).

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
    top_n: int | None = 3
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

    @property
    def engine(self) -> SupportsRerank:
        """The engine this compressor scores with."""
        engine: SupportsRerank = self._current_engine()
        return engine

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Return copies of the best ``top_n`` documents with their scores, best first."""
        request = self._request(documents, query, self.top_n)
        if request is None:
            return []
        out, event = self._finish(request, self.engine.rerank(*request.args, **request.options))
        manager = CallbackManager.configure(inheritable_callbacks=callbacks)
        manager.on_custom_event(RERANK_EVENT, event, run_id=manager.parent_run_id)
        return out

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """:meth:`compress_documents` through the engine's ``arerank``: the event loop is not
        blocked, and concurrent calls share the engine's batches."""
        request = self._request(documents, query, self.top_n)
        if request is None:
            return []
        results = await self.engine.arerank(*request.args, **request.options)
        out, event = self._finish(request, results)
        manager = AsyncCallbackManager.configure(inheritable_callbacks=callbacks)
        await manager.on_custom_event(RERANK_EVENT, event, run_id=manager.parent_run_id)
        return out

    def rerank(
        self,
        documents: Sequence[str | Document | Mapping[str, Any]],
        query: str,
        top_n: int | None = None,
    ) -> list[dict[str, Any]]:
        """The documents' ranking without the documents, as ``CohereRerank.rerank`` gives it:
        ``[{"index": position in documents, "relevance_score": float}]``, best first.

        ``documents`` may be strings, ``Document`` objects (their ``page_content`` is scored)
        or dicts with a ``"text"`` key. ``top_n`` caps the list (default: all of them; the
        compressor's own ``top_n`` is not applied); ``score_threshold`` and ``fusion`` apply
        as in :meth:`compress_documents`.
        """
        docs = [_as_document(d, i) for i, d in enumerate(documents)]
        request = self._request(docs, query, top_n)
        if request is None:
            return []
        results = self.engine.rerank(*request.args, **request.options)
        self._finish(request, results)
        return [{"index": r.index, "relevance_score": float(r.score)} for r in results]

    # -- internals ----------------------------------------------------------------------------
    def _request(
        self, documents: Sequence[Document], query: str, top_n: int | None
    ) -> _Request | None:
        """Check the call; ``None`` when there is nothing to rerank."""
        docs = list(documents)
        top_n = check_top_n(top_n)
        if not docs:
            return None
        options = {
            "top_n": top_n,
            "retrieval_scores": self._retrieval_scores(docs) if self.fusion else None,
            "fusion": self.fusion,
            "alpha": self.alpha,
            "min_score": self.score_threshold,
        }
        return _Request(docs=docs, args=(query, [d.page_content for d in docs]), options=options)

    def _finish(
        self, request: _Request, results: Sequence[RerankResult]
    ) -> tuple[list[Document], dict[str, Any]]:
        """The scored copies, best first, and the callback event's data."""
        out = [_scored_copy(request.docs[r.index], r) for r in results]
        self._warn_truncation_once(results, logger)
        return out, self._event(len(request.docs), results)

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


def _scored_copy(doc: Document, result: RerankResult) -> Document:
    replaced = (*READ_KEYS, RELEVANCE_SCORE_KEY)
    metadata = {k: v for k, v in doc.metadata.items() if k not in replaced}
    metadata.update(read_metadata(result))
    metadata[RELEVANCE_SCORE_KEY] = float(result.score)
    return doc.model_copy(update={"metadata": metadata})


def _as_document(document: object, position: int) -> Document:
    """A document given to :meth:`CrossrankReranker.rerank` as a LangChain ``Document``."""
    if isinstance(document, Document):
        return document
    if isinstance(document, str):
        return Document(page_content=document)
    if isinstance(document, Mapping) and isinstance(document.get("text"), str):
        metadata = {k: v for k, v in document.items() if k != "text"}
        return Document(page_content=document["text"], metadata=metadata)
    msg = (
        f"document {position} must be a string, a langchain Document or a dict with a "
        f"'text' string, got {type(document).__name__}"
    )
    raise InvalidInputError(msg)
