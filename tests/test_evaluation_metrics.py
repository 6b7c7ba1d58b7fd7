from __future__ import annotations

import math

import ir_measures
import pytest
from ir_measures import RR, R, Success, nDCG

from crossrank.errors import InvalidInputError
from crossrank.evaluation import compute_metrics, metric_names
from crossrank.evaluation.metrics import to_trec

QRELS = {
    "q1": {"a": 2, "b": 1, "c": 0},  # graded, with a judged non-relevant document
    "q2": {"d": 1},  # its relevant document is not retrieved
    "q3": {"g": 1},  # perfect
    "q4": {"h": 1},  # absent from the run
}
RUN = {
    "q1": ["c", "a", "x", "b"],
    "q2": ["e", "f"],
    "q3": ["g"],
}


def dcg(gains: list[int]) -> float:
    return sum(g / math.log2(rank + 2) for rank, g in enumerate(gains))


def test_metric_names() -> None:
    assert metric_names(50) == ["NDCG@10", "MRR@10", "Hit@1", "Recall@50"]


def test_hand_computed_values() -> None:
    result = compute_metrics(QRELS, RUN, recall_k=3)
    q1 = result.per_query["q1"]
    assert q1["NDCG@10"] == pytest.approx(dcg([0, 2, 0, 1]) / dcg([2, 1]), abs=1e-6)
    assert q1["NDCG@10"] == pytest.approx(0.643315, abs=1e-5)
    assert q1["MRR@10"] == pytest.approx(0.5)  # "c" is judged 0: not relevant
    assert q1["Hit@1"] == 0.0
    assert q1["Recall@3"] == pytest.approx(0.5)  # "b" is at rank 4
    assert result.per_query["q2"] == {"NDCG@10": 0.0, "MRR@10": 0.0, "Hit@1": 0.0, "Recall@3": 0.0}
    assert result.per_query["q3"] == {"NDCG@10": 1.0, "MRR@10": 1.0, "Hit@1": 1.0, "Recall@3": 1.0}
    assert result.per_query["q4"] == {"NDCG@10": 0.0, "MRR@10": 0.0, "Hit@1": 0.0, "Recall@3": 0.0}
    means = result.aggregate
    assert list(means) == ["NDCG@10", "MRR@10", "Hit@1", "Recall@3"]
    assert means["NDCG@10"] == pytest.approx((0.643315 + 1.0) / 4, abs=1e-5)
    assert means["MRR@10"] == pytest.approx((0.5 + 1.0) / 4)
    assert means["Hit@1"] == pytest.approx(1 / 4)
    assert means["Recall@3"] == pytest.approx((0.5 + 1.0) / 4)
    assert all(isinstance(v, float) for v in means.values())


def test_recall_cutoff_follows_k() -> None:
    assert compute_metrics(QRELS, RUN, recall_k=4).per_query["q1"]["Recall@4"] == 1.0


def test_mrr_stops_at_rank_10() -> None:
    run = {"q": [f"n{i}" for i in range(10)] + ["rel"]}
    result = compute_metrics({"q": {"rel": 1}}, run, recall_k=11)
    assert result.aggregate["MRR@10"] == 0.0
    assert result.aggregate["NDCG@10"] == 0.0
    assert result.aggregate["Recall@11"] == 1.0
    run = {"q": [f"n{i}" for i in range(9)] + ["rel"]}
    assert compute_metrics({"q": {"rel": 1}}, run, recall_k=10).aggregate["MRR@10"] == 0.1


@pytest.mark.parametrize("recall_k", [1, 3, 10])
def test_agrees_with_ir_measures(recall_k: int) -> None:
    ours = compute_metrics(QRELS, RUN, recall_k=recall_k).aggregate
    # Reference: ir-measures' own provider choice (RR@10 comes from a provider other than
    # pytrec_eval), on the same run in {qid: {doc: score}} form.
    measures = [nDCG @ 10, RR @ 10, Success @ 1, R @ recall_k]
    ref = ir_measures.calc_aggregate(measures, QRELS, to_trec(RUN))
    assert ours["NDCG@10"] == pytest.approx(ref[nDCG @ 10], abs=1e-9)
    assert ours["MRR@10"] == pytest.approx(ref[RR @ 10], abs=1e-9)
    assert ours["Hit@1"] == pytest.approx(ref[Success @ 1], abs=1e-9)
    assert ours[f"Recall@{recall_k}"] == pytest.approx(ref[R @ recall_k], abs=1e-9)


def test_run_order_is_kept_even_where_tools_would_break_ties_by_id() -> None:
    run = to_trec({"q": ["b", "a"]})
    assert run == {"q": {"b": 2.0, "a": 1.0}}
    # trec_eval orders equal scores by document id descending; with rank scores "b" stays first
    result = compute_metrics({"q": {"b": 1}}, {"q": ["b", "a"]}, recall_k=2)
    assert result.aggregate["Hit@1"] == 1.0


def test_queries_outside_the_qrels_are_ignored() -> None:
    result = compute_metrics({"q3": {"g": 1}}, RUN, recall_k=5)
    assert list(result.per_query) == ["q3"]
    assert result.aggregate["NDCG@10"] == 1.0


def test_invalid_arguments() -> None:
    with pytest.raises(InvalidInputError, match="recall_k"):
        compute_metrics(QRELS, RUN, recall_k=0)
    with pytest.raises(InvalidInputError, match="qrels is empty"):
        compute_metrics({}, RUN, recall_k=3)
    with pytest.raises(InvalidInputError, match="twice"):
        compute_metrics(QRELS, {"q1": ["a", "a"]}, recall_k=3)
