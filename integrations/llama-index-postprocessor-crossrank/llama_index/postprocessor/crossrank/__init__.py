"""LlamaIndex integration of crossrank: ``CrossrankRerank``, a node postprocessor that reranks
retrieved nodes with a cross-encoder."""

from __future__ import annotations

from llama_index.postprocessor.crossrank.base import RETRIEVAL_SCORE_KEY, CrossrankRerank

__version__ = "0.1.0"

__all__ = ["RETRIEVAL_SCORE_KEY", "CrossrankRerank", "__version__"]
