"""Dense first-stage retrieval: a sentence-transformers bi-encoder over a FAISS index.

``faiss`` and ``sentence_transformers`` are imported when an index is built or a model loaded,
not when this package is.
"""

from __future__ import annotations

from crossrank.retrieval.cache import cached_retriever, index_cache_dir
from crossrank.retrieval.dense import DenseRetriever, SearchHit
from crossrank.retrieval.identity import ModelIdentity, model_identity, resolve_biencoder
from crossrank.retrieval.index import IndexConfig, IndexKind, Metric

__all__ = [
    "DenseRetriever",
    "IndexConfig",
    "IndexKind",
    "Metric",
    "ModelIdentity",
    "SearchHit",
    "cached_retriever",
    "index_cache_dir",
    "model_identity",
    "resolve_biencoder",
]
