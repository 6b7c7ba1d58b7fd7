"""LlamaIndex integration of crossrank: ``CrossrankRerank``, a node postprocessor that reranks
retrieved nodes with a cross-encoder."""

from __future__ import annotations

from crossrank.adapters import require_host as _require_host

_require_host(
    "llama_index.core", "llama-index-core>=0.12,<0.15", "llama-index-postprocessor-crossrank"
)

from llama_index.postprocessor.crossrank.base import RETRIEVAL_SCORE_KEY, CrossrankRerank  # noqa: E402

__version__ = "0.1.0"

__all__ = ["RETRIEVAL_SCORE_KEY", "CrossrankRerank", "__version__"]
