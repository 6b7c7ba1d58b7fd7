"""Two-stage evaluation: dense-only vs. reranked vs. fused rankings on a BEIR split.

One concept per module: ``metrics`` (NDCG@10, MRR@10, Hit@1, Recall@k through ir-measures),
``runs`` (ranked runs and their ``{qid: {doc_id: score}}`` export), ``runner`` (the
:func:`evaluate` loop with latency and throughput), ``report`` (table, JSON) and ``plot``
(a matplotlib bar chart). ir-measures and matplotlib load on first use.
"""

from __future__ import annotations

from crossrank.evaluation.metrics import RunMetrics, compute_metrics, metric_names
from crossrank.evaluation.plot import plot_report
from crossrank.evaluation.report import EvaluationReport, RunReport
from crossrank.evaluation.runner import SupportsRerankMany, SupportsSearch, evaluate
from crossrank.evaluation.runs import Run

__all__ = [
    "EvaluationReport",
    "Run",
    "RunMetrics",
    "RunReport",
    "SupportsRerankMany",
    "SupportsSearch",
    "compute_metrics",
    "evaluate",
    "metric_names",
    "plot_report",
]
