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

__all__ = ["ScoredVectorStoreRetriever"]


class ScoredVectorStoreRetriever(BaseRetriever):
    """Like ``vectorstore.as_retriever()``, but each document's score is kept.

    ``VectorStoreRetriever`` drops the scores; this one returns copies of the documents with
    ``metadata[score_key]`` set to a float score, which ``CrossrankReranker(fusion=...)`` reads.
    With ``score_type="relevance"`` (the default) that is the store's relevance score from
    ``similarity_search_with_relevance_scores`` (higher is better whatever the distance); with
    ``"raw"`` it is what ``similarity_search_with_score`` returns, for stores that define no
    relevance function and whose raw score grows with relevance (cosine or inner-product
    similarity, e.g. ``InMemoryVectorStore``; not an L2 distance). The store's own documents
    are not changed.
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
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        store = self.vectorstore
        try:
            if self.score_type == "raw":
                found = store.similarity_search_with_score(query, k=self.k, **self.search_kwargs)
            else:
                found = store.similarity_search_with_relevance_scores(
                    query, k=self.k, **self.search_kwargs
                )
        except NotImplementedError as exc:
            raise self._unsupported() from exc
        return [self._with_score(doc, score) for doc, score in found]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        store = self.vectorstore
        try:
            if self.score_type == "raw":
                found = await store.asimilarity_search_with_score(
                    query, k=self.k, **self.search_kwargs
                )
            else:
                found = await store.asimilarity_search_with_relevance_scores(
                    query, k=self.k, **self.search_kwargs
                )
        except NotImplementedError as exc:
            raise self._unsupported() from exc
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
