"""``CrossrankContextPacker``: packs reranked documents into the LLM's token budget, as a
document compressor and as a runnable that formats the context for an LCEL chain."""

from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables import (
    Runnable,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
)
from pydantic import Field

from crossrank.adapters import SPAN_KEY as _SPAN_KEY
from crossrank.adapters import PackerOptions
from crossrank.errors import InvalidInputError
from crossrank.ranking.context import (
    PackedContext,
)
from crossrank.types import RerankResult
from langchain_crossrank.compressor import RELEVANCE_SCORE_KEY

__all__ = ["CITATION_KEY", "SPAN_KEY", "CrossrankContextPacker"]

logger = logging.getLogger(__name__)

SPAN_KEY = _SPAN_KEY
"""Metadata key of a ``[start, end]`` character span: read from the documents passed in (the
reranker's best window, when the reranker before writes it), written on the documents
returned (where the passage lies in the source document's ``page_content``)."""
CITATION_KEY = "citation"
"""Metadata key of the returned document's citation number (``[n]`` in the context)."""


class CrossrankContextPacker(PackerOptions, BaseDocumentCompressor):
    """Packs reranked documents into a context that fits the LLM's token budget.

    As a document compressor it goes after :class:`CrossrankReranker` in a
    ``DocumentCompressorPipeline`` (give the reranker ``top_n=None`` or a generous ``top_n``,
    so the packer chooses what fits). It returns new documents, one per passage, in reading
    order: ``page_content`` is the rendered passage (``"[1] (source: <id>)\\n<text>"`` by
    default), so joining them with ``"\\n\\n"`` gives exactly the packed context, within
    ``budget_tokens`` counted with ``tokenizer``. ``id`` and metadata survive, with
    ``metadata["citation"]`` and ``metadata["crossrank_span"]`` added and the score kept in
    ``metadata["relevance_score"]`` (the last key). The documents passed in are not changed.

    For an LCEL chain, :meth:`as_runnable` formats the context with its citations:
    ``packer.as_runnable(retriever) | prompt | llm``.

    A passage is the document's best window when its metadata holds ``crossrank_span``
    (widened to whole sentences), else the document from its start, trimmed at a sentence
    boundary to fit; near-duplicates are dropped (the higher-scored copy stays). The options
    are those of :class:`crossrank.ContextPacker`. The source id is the document's ``id``
    (``id_key``: a metadata key instead), else its position.
    """

    score_key: str = Field(default=RELEVANCE_SCORE_KEY, min_length=1)
    """The metadata key holding each document's score (``CrossrankReranker`` writes it)."""
    id_key: str | None = None
    """A metadata key naming each document's source; ``None``: ``Document.id``."""

    def pack(self, documents: Sequence[Document], query: str) -> PackedContext:
        """The packed context of ``documents`` (the string and its passages) for ``query``."""
        docs = list(documents)
        results = [self._result(i, d) for i, d in enumerate(docs)]
        return self._packer.pack(
            query, results, ids=[self._source_id(i, d) for i, d in enumerate(docs)]
        )

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """New documents holding the packed passages, in reading order."""
        docs = list(documents)
        packed = self.pack(docs, query)
        out = []
        for p in packed.passages:
            source = docs[p.index]
            metadata = {k: v for k, v in source.metadata.items() if k != RELEVANCE_SCORE_KEY}
            metadata.update({CITATION_KEY: p.citation, SPAN_KEY: list(p.span)})
            metadata[RELEVANCE_SCORE_KEY] = p.score
            text = self.template.format(
                n=p.citation, id=p.source_id, text=p.text, score=p.score, index=p.index
            )
            out.append(source.model_copy(update={"page_content": text, "metadata": metadata}))
        logger.debug(
            "packed %d of %d documents into %d/%d tokens",
            len(out),
            len(docs),
            packed.n_tokens,
            packed.budget_tokens,
        )
        return out

    def format(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """``{"question", "documents"}`` → ``{"question", "context", "sources"}``: the packed
        context, and each citation's ``{"citation", "id", "span", "score"}``."""
        question = inputs.get("question")
        if not isinstance(question, str):
            msg = "the runnable's input needs a 'question' string beside the 'documents'"
            raise InvalidInputError(msg)
        packed = self.pack(inputs.get("documents") or [], question)
        sources = [
            {"citation": p.citation, "id": p.source_id, "span": list(p.span), "score": p.score}
            for p in packed.passages
        ]
        rest = {k: v for k, v in inputs.items() if k != "documents"}
        return {**rest, "context": packed.text, "sources": sources}

    def as_runnable(
        self, retriever: Runnable[str, list[Document]] | None = None
    ) -> Runnable[Any, dict[str, Any]]:
        """A runnable giving a prompt its ``{context}`` (and ``{question}``).

        With ``retriever``: the question string in, ``retriever`` fetches (and reranks) the
        documents: ``packer.as_runnable(retriever) | prompt | llm``. Without: a dict
        ``{"question", "documents"}`` in. Out: ``{"question", "context", "sources"}``.
        """
        formatter: Runnable[Any, dict[str, Any]] = RunnableLambda(
            self.format, name="CrossrankContext"
        )
        if retriever is None:
            return formatter
        gather = RunnableParallel(documents=retriever, question=RunnablePassthrough())
        return gather | formatter

    # -- internals ----------------------------------------------------------------------------
    def _result(self, i: int, doc: Document) -> RerankResult:
        if not isinstance(doc, Document):
            msg = f"documents[{i}] must be a langchain Document, got {type(doc).__name__}"
            raise InvalidInputError(msg)
        score = doc.metadata.get(self.score_key)
        if isinstance(score, bool) or not isinstance(score, numbers.Real):
            msg = (
                f"document {i} has no number in metadata[{self.score_key!r}]; put "
                "CrossrankReranker before CrossrankContextPacker, or set score_key to the "
                "metadata key holding each document's score"
            )
            raise InvalidInputError(msg)
        raw = doc.metadata.get(SPAN_KEY)
        span = (
            (int(raw[0]), int(raw[1])) if isinstance(raw, list | tuple) and len(raw) == 2 else None
        )
        return RerankResult(
            index=i,
            score=float(score),
            rerank_score=float(score),
            retrieval_score=None,
            truncated=False,
            n_windows=1,
            document=doc.page_content,
            span=span,
        )

    def _source_id(self, i: int, doc: Document) -> str:
        if self.id_key is not None and self.id_key in doc.metadata:
            return str(doc.metadata[self.id_key])
        return str(doc.id) if doc.id is not None else str(i)
