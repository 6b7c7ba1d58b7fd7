"""LangChain integration of crossrank: a document compressor, a cross-encoder, and a context
packer.

``CrossrankReranker`` reranks a retriever's documents (as the ``base_compressor`` of a
``ContextualCompressionRetriever``); ``CrossrankCrossEncoder`` lets LangChain's own
``CrossEncoderReranker`` run on the crossrank engine; ``ScoredVectorStoreRetriever`` keeps the
vector store's scores in the metadata for score fusion; ``CrossrankContextPacker`` packs the
reranked documents into the LLM's token budget with numbered citations (a compressor for a
``DocumentCompressorPipeline``, and a runnable for LCEL chains).
"""

from __future__ import annotations

from crossrank.adapters import require_host as _require_host

_require_host("langchain_core", "langchain-core>=1.2,<2", "langchain-crossrank")

from langchain_crossrank.compressor import RELEVANCE_SCORE_KEY, RERANK_EVENT, CrossrankReranker  # noqa: E402
from langchain_crossrank.context import CITATION_KEY, SPAN_KEY, CrossrankContextPacker  # noqa: E402
from langchain_crossrank.cross_encoder import CrossrankCrossEncoder  # noqa: E402
from langchain_crossrank.retrievers import ScoredVectorStoreRetriever  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CITATION_KEY",
    "RELEVANCE_SCORE_KEY",
    "RERANK_EVENT",
    "SPAN_KEY",
    "CrossrankContextPacker",
    "CrossrankCrossEncoder",
    "CrossrankReranker",
    "ScoredVectorStoreRetriever",
    "__version__",
]
