"""Ranking metrics through ir-measures (pytrec_eval backend): NDCG@10, MRR@10, Hit@1, Recall@k.

Queries are the ones in the qrels given; a query the run does not cover scores 0 on every
metric. Graded labels count as gains for NDCG; a label ``>= 1`` is relevant for the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crossrank.errors import InvalidInputError, MissingExtraError

__all__ = ["MRR_DEPTH", "NDCG_DEPTH", "RunMetrics", "compute_metrics", "metric_names", "to_trec"]

NDCG_DEPTH = 10
MRR_DEPTH = 10


def _ir_measures() -> Any:
    try:
        import ir_measures
    except ImportError as exc:
        package, extra, purpose = "ir-measures", "eval", "Evaluation"
        raise MissingExtraError(package, extra, purpose) from exc
    return ir_measures


def metric_names(recall_k: int) -> list[str]:
    """The report's metric names, in display order."""
    return [f"NDCG@{NDCG_DEPTH}", f"MRR@{MRR_DEPTH}", "Hit@1", f"Recall@{recall_k}"]


def to_trec(rankings: Mapping[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """``{qid: [doc, ...]}`` best first → ``{qid: {doc: score}}`` with rank-derived scores.

    The score of the document at 0-based rank ``r`` of ``n`` is ``n - r``: strictly
    decreasing, so trec_eval-style tools (which sort by score and break ties by document id)
    see exactly the given order.
    """
    run: dict[str, dict[str, float]] = {}
    for qid, docs in rankings.items():
        if len(set(docs)) != len(docs):
            msg = f"the ranking of query {qid!r} lists a document twice"
            raise InvalidInputError(msg)
        run[qid] = {doc: float(len(docs) - rank) for rank, doc in enumerate(docs)}
    return run


@dataclass(frozen=True, slots=True)
class RunMetrics:
    """Mean metrics over the judged queries, and each query's values."""

    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]


def compute_metrics(
    qrels: Mapping[str, Mapping[str, int]],
    rankings: Mapping[str, Sequence[str]],
    *,
    recall_k: int,
) -> RunMetrics:
    """NDCG@10, MRR@10, Hit@1 and Recall@``recall_k`` of a ranked run.

    Args:
        qrels: ``{qid: {doc_id: label}}`` of the queries to average over.
        rankings: ``{qid: [doc_id, ...]}``, best first.
        recall_k: the Recall cutoff (usually the retrieval depth).
    """
    if isinstance(recall_k, bool) or not isinstance(recall_k, int) or recall_k < 1:
        msg = f"recall_k must be a positive integer, got {recall_k!r}"
        raise InvalidInputError(msg)
    ir = _ir_measures()
    if not qrels:
        msg = "qrels is empty; pass the judgments of at least one query"
        raise InvalidInputError(msg)
    judged = {qid: {doc: int(label) for doc, label in docs.items()} for qid, docs in qrels.items()}
    run = to_trec({qid: docs for qid, docs in rankings.items() if qid in judged})
    # pytrec_eval has no RR cutoff: RR over the run cut to depth 10 is exactly MRR@10.
    cut = {qid: dict(list(docs.items())[:MRR_DEPTH]) for qid, docs in run.items()}
    names = metric_names(recall_k)
    main = {
        ir.nDCG @ NDCG_DEPTH: names[0],
        ir.Success @ 1: names[2],
        ir.R @ recall_k: names[3],
    }
    rr = {ir.RR: names[1]}
    per_query: dict[str, dict[str, float]] = {qid: {} for qid in judged}
    for measures, this_run in ((main, run), (rr, cut)):
        evaluator = ir.pytrec_eval.evaluator(list(measures), judged)
        for metric in evaluator.iter_calc(this_run):
            per_query[metric.query_id][measures[metric.measure]] = float(metric.value)
    aggregate = {
        name: sum(values[name] for values in per_query.values()) / len(per_query) for name in names
    }
    ordered = {qid: {name: per_query[qid][name] for name in names} for qid in per_query}
    return RunMetrics(aggregate=aggregate, per_query=ordered)
