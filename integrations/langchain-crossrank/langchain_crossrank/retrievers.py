"""A vector-store retriever that keeps the similarity score, for score fusion."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict, Field

from crossrank.errors import InvalidInputError
from crossrank.ranking.results import check_positive_int, check_real

__all__ = ["ScoredVectorStoreRetriever"]


class ScoredVectorStoreRetriever(BaseRetriever):
    """Like ``vectorstore.as_retriever()``, but each document's score is kept.

    ``VectorStoreRetriever`` drops the scores; this one returns copies of the documents with
    ``metadata[score_key]`` set to a float score, which ``CrossrankReranker(fusion=...)`` reads.
    With ``score_type="relevance"`` (the default) that is the store's relevance score (its
    ``relevance_score_fn`` over the distance, as ``similarity_search_with_relevance_scores``
    computes it: higher is better whatever the distance), clipped to [0, 1] (FAISS's default
    L2 relevance, ``1 - distance / sqrt(2)``, is meant for unit-length vectors; with others,
    give the store a ``relevance_score_fn`` that fits them, or clipping flattens the far
    documents to 0); with
    ``"raw"`` it is what ``similarity_search_with_score`` returns, for stores that define no
    relevance function and whose raw score grows with relevance (cosine or inner-product
    similarity, e.g. ``InMemoryVectorStore``; not an L2 distance). The store's own documents
    are not changed.

    ``k`` and the store's search arguments (``filter``, ``fetch_k``, ``score_threshold``, ...)
    may also be given per call: ``retriever.invoke(query, k=2, filter={...})``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    vectorstore: VectorStore
    """The vector store to search."""
    k: int = Field(default=4, ge=1)
    """How many documents to return."""
    score_key: str = Field(default="score", min_length=1)
    """The metadata key the score is written to."""
    score_type: Literal["relevance", "raw"] = "relevance"
    """``"relevance"``: the store's normalised relevance score; ``"raw"``: its raw score."""
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other keyword arguments for the store's search (e.g. ``filter``)."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        search, threshold = self._search_args(kwargs)
        try:
            found = self._search(is_async=False)(query, **search)
        except NotImplementedError as exc:
            raise self._unsupported() from exc
        return self._scored(found, threshold)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        search, threshold = self._search_args(kwargs)
        try:
            found = await self._search(is_async=True)(query, **search)
        except NotImplementedError as exc:
            raise self._unsupported() from exc
        return self._scored(found, threshold)

    def _search(self, *, is_async: bool) -> Any:
        """The store's search method for this retriever's ``score_type``."""
        store = self.vectorstore
        if self.score_type == "raw":
            return (
                store.asimilarity_search_with_score
                if is_async
                else store.similarity_search_with_score
            )
        if is_async:
            return store._asimilarity_search_with_relevance_scores
        return store._similarity_search_with_relevance_scores

    def _search_args(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
        """The store's search arguments (``k`` included) and the relevance threshold of one
        call: the retriever's own, overridden by those given at ``invoke`` (``k=``,
        ``filter=``, ...)."""
        search = {**self.search_kwargs, **kwargs}
        search["k"] = check_positive_int("k", search.get("k", self.k))
        threshold = search.pop("score_threshold", None)
        if threshold is not None and self.score_type == "raw":
            msg = "score_threshold applies to relevance scores; use score_type='relevance'"
            raise InvalidInputError(msg)
        return search, None if threshold is None else check_real("score_threshold", threshold)

    def _scored(
        self, found: list[tuple[Document, float]], threshold: float | None
    ) -> list[Document]:
        if self.score_type == "relevance":
            # the store's relevance function can leave [0, 1] (an L2 distance over vectors
            # that are not unit length): clip, so the order is kept and no warning is raised
            found = [(doc, min(1.0, max(0.0, float(score)))) for doc, score in found]
            if threshold is not None:
                found = [(doc, score) for doc, score in found if score >= threshold]
        return [self._with_score(doc, score) for doc, score in found]

    def _unsupported(self) -> InvalidInputError:
        name = type(self.vectorstore).__name__
        if self.score_type == "raw":
            msg = f"{name} does not return scores with its documents; it cannot be used here"
        else:
            msg = (
                f"{name} defines no relevance scores; pass score_type='raw' if its raw score "
                "grows with relevance (cosine or inner-product similarity), or give the store "
                "a relevance_score_fn"
            )
        return InvalidInputError(msg)

    def _with_score(self, doc: Document, score: float) -> Document:
        metadata = {k: v for k, v in doc.metadata.items() if k != self.score_key}
        metadata[self.score_key] = float(score)
        return doc.model_copy(update={"metadata": metadata})
