"""The cross-encoder engine: model loading, truncation-safe pairs, batching, scoring.

:class:`~crossrank.engine.reranker.Reranker` is the entry point (also ``crossrank.Reranker``);
the modules below it are its parts:

- ``resolve``: which model to use when none is named;
- ``loading``: one loaded model per process and settings (torch or ONNX runner), keyed on
  the folder's content;
- ``checks``: refusing damaged model folders and tokenizers that do not fit the model;
- ``geometry`` and ``pairs``: how a (query, document) pair fits in ``max_length``;
- ``batching``: length-sorted token-budget batches and the device batching policy;
- ``scoring``: the inner loop from requests to raw scores;
- ``aio``: coalescing concurrent async callers into shared batches;
- ``score_cache``: an LRU of pair scores.

Importing this package is cheap; torch loads when a model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossrank.engine.reranker import Reranker

__all__ = ["Reranker"]


def __getattr__(name: str) -> Any:
    if name == "Reranker":
        from crossrank.engine.reranker import Reranker

        return Reranker
    msg = f"module 'crossrank.engine' has no attribute {name!r}"
    raise AttributeError(msg)
