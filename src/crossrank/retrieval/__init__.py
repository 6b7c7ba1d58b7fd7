"""First-stage retrieval: dense (a bi-encoder over FAISS), sparse (BM25 with ``bm25s``) and
their hybrid, each with an on-disk cache keyed by the corpus content.

``faiss``, ``sentence_transformers`` and ``bm25s`` are imported when an index is built or a
model loaded, not when this package is.
"""

from __future__ import annotations

from crossrank.retrieval.bm25 import BM25Config, BM25Method, BM25Retriever
from crossrank.retrieval.cache import (
    bm25_cache_dir,
    cached_bm25,
    cached_retriever,
    index_cache_dir,
)
from crossrank.retrieval.dense import DenseRetriever
from crossrank.retrieval.hits import SearchHit
from crossrank.retrieval.hybrid import HybridMethod, HybridRetriever
from crossrank.retrieval.identity import ModelIdentity, model_identity, resolve_biencoder
from crossrank.retrieval.index import IndexConfig, IndexKind, Metric

__all__ = [
    "BM25Config",
    "BM25Method",
    "BM25Retriever",
    "DenseRetriever",
    "HybridMethod",
    "HybridRetriever",
    "IndexConfig",
    "IndexKind",
    "Metric",
    "ModelIdentity",
    "SearchHit",
    "bm25_cache_dir",
    "cached_bm25",
    "cached_retriever",
    "index_cache_dir",
    "model_identity",
    "resolve_biencoder",
]
