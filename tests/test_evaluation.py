from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import ir_measures
import pytest

from crossrank.data import Collection, Document, Query
from crossrank.errors import InvalidInputError
from crossrank.evaluation import (
    EvaluationReport,
    SupportsRerankMany,
    SupportsSearch,
    compute_metrics,
    evaluate,
)
from crossrank.evaluation.runs import Run, reranked_rankings
from crossrank.ranking.fusion import fuse
from crossrank.retrieval import SearchHit
from crossrank.types import FusionMethod, RerankResult

DOCS = {
    "d1": "vitamin d lowers blood pressure",
    "d2": "mice gene lifespan",
    "d3": "protein folding cells",
    "d4": "blood pressure in mice",
    "d5": "unrelated text here",
}
QUERIES = {
    "q1": "vitamin d blood pressure",
    "q2": "gene lifespan mice",
    "q3": "quantum gravity",
    "q4": "an unjudged query",
}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 2, "d4": 1}, "q3": {"d3": 1}}
# The dense rankings the fake retriever returns (scores 0.9, 0.8, ...).
DENSE = {
    "vitamin d blood pressure": ["d4", "d5", "d1", "d3"],
    "gene lifespan mice": ["d5", "d2", "d4", "d1"],
    "quantum gravity": ["d5", "d1", "d2", "d4"],
}


def make_collection() -> Collection:
    return Collection(
        name="mini",
        path=Path("mini"),
        split="test",
        corpus={i: Document(id=i, text=t) for i, t in DOCS.items()},
        queries={i: Query(id=i, text=t) for i, t in QUERIES.items()},
        qrels=QRELS,
    )


class FixedRetriever:
    """Returns hand-made rankings, so the expected metrics can be computed by hand."""

    model_name = "fixed"

    def search(self, query: str, top_k: int = 10) -> list[SearchHit]:
        ids = DENSE[query][:top_k]
        return [SearchHit(id=i, text=DOCS[i], score=0.9 - 0.1 * r) for r, i in enumerate(ids)]

    def __len__(self) -> int:
        return len(DOCS)


class OverlapReranker:
    """A deterministic fake engine: the score is the number of shared words."""

    model_name = "overlap"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[list[str]]]] = []

    def rerank_many(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        *,
        top_n: int | None = None,
        retrieval_scores: Sequence[Sequence[float]] | None = None,
        fusion: FusionMethod | None = None,
        alpha: float = 1.0,
        min_score: float | None = None,
    ) -> list[list[RerankResult]]:
        self.calls.append((list(queries), [list(d) for d in documents_per_query]))
        out = []
        for i, (query, docs) in enumerate(zip(queries, documents_per_query, strict=True)):
            words = set(query.split())
            ce = [float(len(words & set(d.split()))) for d in docs]
            dense = None if retrieval_scores is None else list(retrieval_scores[i])
            final = ce if fusion is None or dense is None else fuse(ce, dense, fusion, alpha)
            order = sorted(range(len(docs)), key=lambda j: (-final[j], j))
            out.append(
                [
                    RerankResult(
                        j, final[j], ce[j], None if dense is None else dense[j], False, 1, docs[j]
                    )
                    for j in order
                ][:top_n]
            )
        return out


def ndcg(gains: list[int], ideal: list[int]) -> float:
    def dcg(g: list[int]) -> float:
        return sum(x / math.log2(r + 2) for r, x in enumerate(g))

    return dcg(gains) / dcg(ideal)


def test_fakes_satisfy_the_protocols() -> None:
    assert isinstance(FixedRetriever(), SupportsSearch)
    assert isinstance(OverlapReranker(), SupportsRerankMany)


def test_three_runs_against_hand_computed_metrics() -> None:
    reranker = OverlapReranker()
    report = evaluate(make_collection(), FixedRetriever(), reranker, top_k=4, top_n=3)
    assert isinstance(report, EvaluationReport)
    assert report.n_queries == 3  # q4 has no judgments
    assert [r.name for r in report.runs] == ["dense", "reranked", "fused"]
    assert report.metric_names == ["NDCG@10", "MRR@10", "Hit@1", "Recall@4"]
    ideal_q2 = [2, 1]

    dense = report["dense"].metrics
    assert dense["NDCG@10"] == pytest.approx(
        (ndcg([0, 0, 1], [1]) + ndcg([0, 2, 1], ideal_q2) + 0) / 3
    )
    assert dense["MRR@10"] == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    assert dense["Hit@1"] == 0.0
    assert dense["Recall@4"] == pytest.approx(2 / 3)

    # q1 → d1 (4 words), d4 (2), d5 (0) | d3;  q2 → d2 (3), d4 (1), d5 (0) | d1;  q3: all 0
    assert report.runs_data["reranked"].rankings == {
        "q1": ("d1", "d4", "d5", "d3"),
        "q2": ("d2", "d4", "d5", "d1"),
        "q3": ("d5", "d1", "d2", "d4"),
    }
    reranked = report["reranked"].metrics
    assert reranked["NDCG@10"] == pytest.approx(2 / 3)
    assert reranked["MRR@10"] == pytest.approx(2 / 3)
    assert reranked["Hit@1"] == pytest.approx(2 / 3)
    assert reranked["Recall@4"] == dense["Recall@4"]

    # 0.5 * minmax(overlap) + 0.5 * minmax(dense) over the head
    assert report.runs_data["fused"].rankings == {
        "q1": ("d4", "d1", "d5", "d3"),  # fused 0.75, 0.5, 0.25
        "q2": ("d2", "d5", "d4", "d1"),  # fused 0.75, 0.5, 0.1667
        "q3": ("d5", "d1", "d2", "d4"),
    }
    fused = report["fused"].metrics
    assert fused["NDCG@10"] == pytest.approx((ndcg([0, 1], [1]) + ndcg([2, 0, 1], ideal_q2)) / 3)
    assert fused["MRR@10"] == pytest.approx((1 / 2 + 1) / 3)
    assert fused["Hit@1"] == pytest.approx(1 / 3)
    assert fused["Recall@4"] == dense["Recall@4"]

    # the engine saw each query's top-3 once, one query per call
    assert [c[0] for c in reranker.calls] == [[QUERIES["q1"]], [QUERIES["q2"]], [QUERIES["q3"]]]
    assert reranker.calls[0][1] == [[DOCS["d4"], DOCS["d5"], DOCS["d1"]]]


def test_rrf_fusion_and_alpha_one() -> None:
    col, retriever = make_collection(), FixedRetriever()
    rrf = evaluate(col, retriever, OverlapReranker(), top_k=4, top_n=3, fusion="rrf")
    assert rrf.fusion == "rrf"
    # q1: overlap ranks d1 > d4 > d5, dense d4 > d5 > d1: rrf = d4 (1/61+1/62) > d1 (1/61+1/63)
    assert rrf.runs_data["fused"].rankings["q1"] == ("d4", "d1", "d5", "d3")
    ce_only = evaluate(col, retriever, OverlapReranker(), top_k=4, top_n=3, alpha=1.0)
    assert ce_only["fused"].metrics == ce_only["reranked"].metrics


def test_latency_and_throughput_fields() -> None:
    report = evaluate(make_collection(), FixedRetriever(), OverlapReranker(), top_k=4, top_n=2)
    for run in report.runs:
        assert 0.0 <= run.latency_p50_ms <= run.latency_p95_ms
    assert report["dense"].pairs_per_second is None
    pps = report["reranked"].pairs_per_second
    assert pps is not None
    assert pps > 0
    assert report["fused"].pairs_per_second == pps
    assert report["reranked"].latency_p50_ms >= report["dense"].latency_p50_ms


def test_max_queries_limits_and_rescopes_the_qrels() -> None:
    report = evaluate(
        make_collection(), FixedRetriever(), OverlapReranker(), top_k=4, top_n=3, max_queries=1
    )
    assert report.n_queries == 1
    assert report["reranked"].metrics["NDCG@10"] == 1.0  # q1 alone, d1 reranked first
    assert set(report.runs_data["dense"].rankings) == {"q1"}


def test_exported_runs_reproduce_the_report_with_ir_measures() -> None:
    report = evaluate(make_collection(), FixedRetriever(), OverlapReranker(), top_k=4, top_n=3)
    exported = report.export_runs()
    assert set(exported) == {"dense", "reranked", "fused"}
    assert exported["reranked"]["q1"] == {"d1": 4.0, "d4": 3.0, "d5": 2.0, "d3": 1.0}
    for name, run in exported.items():
        ref = ir_measures.calc_aggregate([ir_measures.nDCG @ 10, ir_measures.RR @ 10], QRELS, run)
        assert report[name].metrics["NDCG@10"] == pytest.approx(ref[ir_measures.nDCG @ 10])
        assert report[name].metrics["MRR@10"] == pytest.approx(ref[ir_measures.RR @ 10])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"top_k": 2, "top_n": 3}, "exceeds top_k"),
        ({"top_k": 0}, "top_k"),
        ({"top_n": 0}, "top_n"),
        ({"fusion": "max"}, "fusion"),
        ({"alpha": 1.5}, "alpha"),
        ({"max_queries": 0}, "limit"),
    ],
)
def test_invalid_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        evaluate(make_collection(), FixedRetriever(), OverlapReranker(), **kwargs)  # type: ignore[arg-type]


def test_empty_retriever_is_refused() -> None:
    class Empty(FixedRetriever):
        def __len__(self) -> int:
            return 0

    with pytest.raises(InvalidInputError, match="add the collection's corpus first"):
        evaluate(make_collection(), Empty(), OverlapReranker())


def test_reranked_rankings_keeps_every_hit_once() -> None:
    hits = [SearchHit(id=f"h{i}", text="t", score=1.0 - i / 10) for i in range(5)]
    results = [
        RerankResult(
            index=2,
            score=0.1,
            rerank_score=5.0,
            retrieval_score=0.8,
            truncated=False,
            n_windows=1,
            document="t",
        ),
        RerankResult(
            index=0,
            score=0.9,
            rerank_score=5.0,
            retrieval_score=1.0,
            truncated=False,
            n_windows=1,
            document="t",
        ),
    ]  # index 1 was dropped by the reranker
    ids, scores = reranked_rankings(hits, results, fused=False)
    assert ids == ("h0", "h2", "h1", "h3", "h4")  # tie on rerank score → dense order
    assert scores == (5.0, 5.0, 0.9, 0.7, 0.6)
    ids, _ = reranked_rankings(hits, results, fused=True)
    assert ids == ("h0", "h2", "h1", "h3", "h4")
    run = Run("x", {"q": ids}, {"q": scores})
    assert list(run.to_dict()["q"].values()) == [5.0, 4.0, 3.0, 2.0, 1.0]


def test_real_engine_on_the_tiny_model(tiny_model: Path, tiny_biencoder: Path) -> None:
    from crossrank import Reranker
    from crossrank.retrieval import DenseRetriever

    col = make_collection()
    retriever = DenseRetriever(tiny_biencoder, device="cpu")
    retriever.add_documents(col.corpus.values())
    reranker = Reranker(tiny_model, device="cpu")
    report = evaluate(col, retriever, reranker, top_k=5, top_n=3, fusion="rrf")
    assert report.reranker == reranker.model_name
    assert report["reranked"].metrics["Recall@5"] == 1.0  # every document is retrieved
    qrels = {q: dict(d) for q, d in QRELS.items()}
    for name, run in report.runs_data.items():
        expected = compute_metrics(qrels, run.rankings, recall_k=5).aggregate
        assert report[name].metrics == expected
    # the reranked head is the dense top-3 in the engine's order (the random tiny model makes
    # near-ties, so compare scores rather than positions)
    for qid, ranking in report.runs_data["reranked"].rankings.items():
        dense = report.runs_data["dense"].rankings[qid]
        assert set(ranking[:3]) == set(dense[:3])
        assert ranking[3:] == dense[3:]
        assert len(ranking) == 5
        scores = reranker.score_pairs([(QUERIES[qid], DOCS[d]) for d in ranking[:3]])
        assert all(a >= b - 1e-6 for a, b in itertools.pairwise(scores))


def test_truncation_is_summarised_once_for_the_whole_run(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from crossrank import Reranker

    col = make_collection()
    # max_length 8 leaves at most 3 tokens per document, so most reranked documents are cut.
    reranker = Reranker(tiny_model, device="cpu", max_length=8, query_max_tokens=2)
    with caplog.at_level(logging.WARNING):
        report = evaluate(col, FixedRetriever(), reranker, top_k=4, top_n=3)
    n, cut = 3 * report.n_queries, report.truncated_documents
    assert 1 < cut <= n
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # The engine says it once per engine (not once per query); the run summarises once.
    assert [r.name for r in warnings] == [
        "crossrank.engine.reranker",
        "crossrank.evaluation.runner",
    ]
    assert f"{cut} of {n} reranked documents" in warnings[1].message
    # The evaluation leaves the engine's logger alone.
    assert logging.getLogger("crossrank.engine.reranker").level == logging.NOTSET
