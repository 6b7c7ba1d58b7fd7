"""LangChain integration of crossrank: a document compressor and a cross-encoder.

``CrossrankReranker`` reranks a retriever's documents (as the ``base_compressor`` of a
``ContextualCompressionRetriever``); ``CrossrankCrossEncoder`` lets LangChain's own
``CrossEncoderReranker`` run on the crossrank engine; ``ScoredVectorStoreRetriever`` keeps the
vector store's scores in the metadata for score fusion.
"""

from __future__ import annotations

from crossrank.errors import MissingExtraError as _MissingExtraError

try:  # the host framework, named with its pip line when it is missing
    import langchain_core  # noqa: F401
except ImportError as _missing:
    _error = _MissingExtraError("langchain-core", "", "langchain-crossrank")
    _error.msg = (
        "langchain-crossrank needs langchain-core, which is not installed. Install it with: "
        'pip install "langchain-core>=1.2,<2"'
    )
    raise _error from _missing

from langchain_crossrank.compressor import RELEVANCE_SCORE_KEY, RERANK_EVENT, CrossrankReranker
from langchain_crossrank.cross_encoder import CrossrankCrossEncoder
from langchain_crossrank.retrievers import ScoredVectorStoreRetriever

__version__ = "0.1.0"

__all__ = [
    "RELEVANCE_SCORE_KEY",
    "RERANK_EVENT",
    "CrossrankCrossEncoder",
    "CrossrankReranker",
    "ScoredVectorStoreRetriever",
    "__version__",
]
