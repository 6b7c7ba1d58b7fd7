"""LlamaIndex integration of crossrank: ``CrossrankRerank``, a node postprocessor that reranks
retrieved nodes with a cross-encoder."""

from __future__ import annotations

from crossrank.errors import MissingExtraError as _MissingExtraError

try:  # the host framework, named with its pip line when it is missing
    import llama_index.core  # noqa: F401
except ImportError as _missing:
    _error = _MissingExtraError("llama-index-core", "", "llama-index-postprocessor-crossrank")
    _error.msg = (
        "llama-index-postprocessor-crossrank needs llama-index-core, which is not installed. "
        "Install it with: "
        'pip install "llama-index-core>=0.12,<0.15"'
    )
    raise _error from _missing

from llama_index.postprocessor.crossrank.base import RETRIEVAL_SCORE_KEY, CrossrankRerank

__version__ = "0.1.0"

__all__ = ["RETRIEVAL_SCORE_KEY", "CrossrankRerank", "__version__"]
