"""crossrank: a fast, truncation-safe cross-encoder reranker for RAG pipelines.

``import crossrank`` is cheap: torch, transformers and faiss load on first use of the names
that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crossrank.engine.cpu_threads import prefer_passive_openmp as _prefer_passive_openmp
from crossrank.errors import (
    CrossrankError,
    DataError,
    DocumentTooLongError,
    IncompatibleIndexError,
    InvalidInputError,
    InvalidModelError,
    MissingExtraError,
    ModelNotFoundError,
    NonFiniteScoreError,
)
from crossrank.types import RerankResult, SupportsRerank, SupportsScorePairs

__version__ = "0.1.0"

# torch's OpenMP threads sleep instead of spinning while they wait, unless the user chose
# otherwise or torch is already loaded: on a shared CPU spinning made the engine 4x slower.
_prefer_passive_openmp()

# Public names that live in modules with heavy imports: name -> module.
_LAZY = {
    "Reranker": "crossrank.engine.reranker",
    "RemoteReranker": "crossrank.serving",
    "ContextPacker": "crossrank.ranking.context",
    "PackedContext": "crossrank.ranking.context",
    "PackedPassage": "crossrank.ranking.context",
    "DroppedResult": "crossrank.ranking.context",
    "Collection": "crossrank.data",
    "Document": "crossrank.data",
    "Query": "crossrank.data",
    "load_beir": "crossrank.data",
    "DenseRetriever": "crossrank.retrieval",
    "BM25Retriever": "crossrank.retrieval",
    "HybridRetriever": "crossrank.retrieval",
    "SearchHit": "crossrank.retrieval",
    "EvaluationReport": "crossrank.evaluation",
    "evaluate": "crossrank.evaluation",
    "TrainConfig": "crossrank.training",
    "TrainResult": "crossrank.training",
    "train": "crossrank.training",
}

if TYPE_CHECKING:
    from crossrank.data import Collection, Document, Query, load_beir
    from crossrank.engine.reranker import Reranker
    from crossrank.evaluation import EvaluationReport, evaluate
    from crossrank.ranking.context import (
        ContextPacker,
        DroppedResult,
        PackedContext,
        PackedPassage,
    )
    from crossrank.retrieval import BM25Retriever, DenseRetriever, HybridRetriever, SearchHit
    from crossrank.serving import RemoteReranker
    from crossrank.training import TrainConfig, TrainResult, train

__all__ = [
    "BM25Retriever",
    "Collection",
    "ContextPacker",
    "CrossrankError",
    "DataError",
    "DenseRetriever",
    "Document",
    "DocumentTooLongError",
    "DroppedResult",
    "EvaluationReport",
    "HybridRetriever",
    "IncompatibleIndexError",
    "InvalidInputError",
    "InvalidModelError",
    "MissingExtraError",
    "ModelNotFoundError",
    "NonFiniteScoreError",
    "PackedContext",
    "PackedPassage",
    "Query",
    "RemoteReranker",
    "RerankResult",
    "Reranker",
    "SearchHit",
    "SupportsRerank",
    "SupportsScorePairs",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "evaluate",
    "load_beir",
    "train",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'crossrank' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
