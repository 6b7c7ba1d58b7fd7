"""LlamaIndex integration of crossrank: ``CrossrankRerank``, a node postprocessor that reranks
retrieved nodes with a cross-encoder, and ``CrossrankContextPacker``, which packs the reranked
nodes into the LLM's token budget with numbered citations."""

from __future__ import annotations

from crossrank.adapters import require_host as _require_host

_require_host(
    "llama_index.core", "llama-index-core>=0.12,<0.15", "llama-index-postprocessor-crossrank"
)

from llama_index.postprocessor.crossrank.base import RETRIEVAL_SCORE_KEY, CrossrankRerank  # noqa: E402
from llama_index.postprocessor.crossrank.context import (  # noqa: E402
    CITATION_KEY,
    SOURCE_NODE_KEY,
    SPAN_KEY,
    CrossrankContextPacker,
)

__version__ = "0.1.0"

__all__ = [
    "CITATION_KEY",
    "RETRIEVAL_SCORE_KEY",
    "SOURCE_NODE_KEY",
    "SPAN_KEY",
    "CrossrankContextPacker",
    "CrossrankRerank",
    "__version__",
]
