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

from langchain_crossrank.compressor import RELEVANCE_SCORE_KEY, RERANK_EVENT, CrossrankReranker
from langchain_crossrank.context import CITATION_KEY, SPAN_KEY, CrossrankContextPacker
from langchain_crossrank.cross_encoder import CrossrankCrossEncoder
from langchain_crossrank.retrievers import ScoredVectorStoreRetriever

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
