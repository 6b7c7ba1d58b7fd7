"""Offline jobs: distributed batch reranking on Ray Data (``crossrank rerank-batch``).

``candidates`` reads and plans the input (candidate lists as JSON lines or Parquet) and writes
the ranked output; ``output`` reads the output back (as a table or as an evaluation run);
``rerank_batch`` runs the job on Ray (the ``ray`` extra: ``pip install "crossrank[ray]"``).
Ray and pyarrow load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossrank.jobs.candidates import write_candidates
    from crossrank.jobs.output import ranked_run, read_ranked
    from crossrank.jobs.rerank_batch import BatchJobReport, rerank_batch

__all__ = ["BatchJobReport", "ranked_run", "read_ranked", "rerank_batch", "write_candidates"]

_LAZY = {
    "BatchJobReport": "crossrank.jobs.rerank_batch",
    "rerank_batch": "crossrank.jobs.rerank_batch",
    "ranked_run": "crossrank.jobs.output",
    "read_ranked": "crossrank.jobs.output",
    "write_candidates": "crossrank.jobs.candidates",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'crossrank.jobs' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
