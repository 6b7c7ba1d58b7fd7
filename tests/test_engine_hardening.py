"""The engine's guarantees under hostile input, concurrency and many event loops."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import CrossEncoder

from crossrank import InvalidInputError, Reranker, RerankResult

QUERY = "does vitamin d lower the risk of cancer"
DOCS = [
    "vitamin d levels and cancer risk in a cohort of patients",
    "the effect of blood pressure treatment in mice",
    "cancer cells express higher levels of a protein",
    "how genes are expressed in human cells",
]


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> Reranker:
    return Reranker(tiny_model, device="cpu")


# -- 5: identical documents are scored once and score identically ----------------------------
def test_identical_documents_are_scored_once_per_call(tiny_model: Path) -> None:
    # A budget of one pair per batch puts copies of one document in different batches.
    engine = Reranker(tiny_model, token_budget=1, max_batch_size=1)
    docs = [DOCS[0], DOCS[1] + " padding " * 20, DOCS[0], DOCS[2], DOCS[0]]
    results = engine.rerank(QUERY, docs)
    by_index = {r.index: r.rerank_score for r in results}
    assert by_index[0] == by_index[2] == by_index[4]
    # Ties keep input order.
    tied = [r.index for r in results if r.rerank_score == by_index[0]]
    assert tied == [0, 2, 4]
    stats = engine.last_stats
    assert (stats.pairs, stats.distinct, stats.windows) == (5, 3, 3)


def test_concurrent_callers_with_the_same_documents_agree(engine: Reranker) -> None:
    docs = [*DOCS, DOCS[0], DOCS[0]]

    async def main() -> list[list[RerankResult]]:
        return await asyncio.gather(*(engine.arerank(QUERY, docs) for _ in range(30)))

    runs = asyncio.run(main())
    orders = {tuple(r.index for r in run) for run in runs}
    assert len(orders) == 1  # tie order never flips
    for run in runs:
        scores = {r.index: r.rerank_score for r in run}
        assert scores[0] == scores[4] == scores[5]


# -- 6: the query is cut only when the pair does not fit -------------------------------------
def test_long_query_with_short_document_equals_predict(tiny_model: Path) -> None:
    engine = Reranker(tiny_model, max_length=256)  # query_max_tokens defaults to 64
    query = " ".join(["cancer risk"] * 90)  # 180 tokens
    docs = ["vitamin d", "blood pressure in mice"]
    expected = CrossEncoder(str(tiny_model), device="cpu", max_length=256).predict(
        [(query, d) for d in docs]
    )
    got = engine.score_pairs([(query, d) for d in docs])
    assert got == pytest.approx([float(x) for x in expected], abs=1e-5)
    assert engine.last_stats.queries_cut == 0
    [result] = engine.rerank(query, ["vitamin d " * 200])
    assert result.truncated
    assert engine.last_stats.queries_cut == 1


# -- 8: one bad async caller fails alone ----------------------------------------------------
def test_one_bad_arerank_request_fails_alone(engine: Reranker) -> None:
    bad = "broken \udc80 text"

    async def main() -> list[list[RerankResult] | BaseException]:
        calls = [
            engine.arerank(QUERY, [*DOCS, bad] if i == 7 else DOCS, top_n=2) for i in range(50)
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(main())
    failed = [i for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
    assert failed == [7]
    assert isinstance(outcomes[7], InvalidInputError)
    assert "document 4" in str(outcomes[7])
    expected = [r.index for r in engine.rerank(QUERY, DOCS, top_n=2)]
    assert all([r.index for r in o] == expected for o in outcomes if isinstance(o, list))


def test_one_too_long_document_fails_only_its_request(tiny_model: Path) -> None:
    engine = Reranker(tiny_model, max_length=32, query_max_tokens=8, overflow="error")

    async def main() -> list[list[RerankResult] | BaseException]:
        calls = [engine.arerank("q", ["x " * 100] if i == 3 else ["fits"]) for i in range(8)]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [isinstance(o, BaseException) for o in outcomes] == [i == 3 for i in range(8)]


# -- 9: many event loops leave nothing behind -----------------------------------------------
def test_many_short_event_loops_leave_nothing_behind(engine: Reranker) -> None:
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def one() -> list[RerankResult]:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return await engine.arerank(QUERY, DOCS[:2])

    for _ in range(200):
        assert len(asyncio.run(one())) == 2
    gc.collect()
    assert engine._coalescer.n_loops == 0
    assert sum(ref() is not None for ref in loops) == 0


# -- 11: statistics belong to the call that made them ---------------------------------------
def test_statistics_are_per_thread(engine: Reranker) -> None:
    seen: dict[int, int] = {}
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        barrier.wait()
        for _ in range(5):
            engine.rerank(QUERY, [f"document {i} of {n}" for i in range(n)])
            seen[n] = engine.last_stats.pairs
            assert engine.last_stats.pairs == n

    threads = [threading.Thread(target=work, args=(n,)) for n in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {1: 1, 2: 2, 3: 3, 4: 4}


def test_truncation_is_logged_once_per_engine(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Reranker(tiny_model, max_length=32)
    with caplog.at_level(logging.DEBUG, logger="crossrank.engine.reranker"):
        for _ in range(3):
            assert engine.rerank("q", ["word " * 100])[0].truncated
    levels = [r.levelno for r in caplog.records if "did not fit" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert logging.getLogger("crossrank.engine.reranker").level == logging.NOTSET


# -- 12: bad input, and NumPy values that are good input -----------------------------------
def test_numpy_values_are_accepted(engine: Reranker) -> None:
    dense = np.array([0.9, 0.1, 0.5, 0.3], dtype=np.float32)
    results = engine.rerank(
        QUERY,
        DOCS,
        top_n=np.int64(2),
        min_score=np.float32(-100.0),
        retrieval_scores=dense,
        fusion="weighted",
        alpha=np.float64(0.5),
    )
    assert len(results) == 2
    assert all(type(r.retrieval_score) is float and type(r.score) is float for r in results)
    many = engine.rerank_many(
        (q for q in [QUERY, "genes"]), (d for d in [DOCS, DOCS[:2]]), top_n=np.int32(1)
    )
    assert [len(r) for r in many] == [1, 1]
    pairs = ((QUERY, d) for d in DOCS)
    assert len(engine.score_pairs(pairs)) == 4  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_score": math.nan}, "min_score must be a finite number"),
        ({"alpha": None, "fusion": "weighted"}, "alpha must be a number"),
        ({"alpha": "x", "fusion": "weighted"}, "alpha must be a number"),
        ({"alpha": 1.5, "fusion": "weighted"}, "alpha must be between 0 and 1"),
        ({"retrieval_scores": [10**400, 1, 2, 3]}, "retrieval score 0 must be a finite"),
        ({"retrieval_scores": [math.nan, 1, 2, 3]}, "retrieval score 0 must be a finite"),
        ({"retrieval_scores": ["1", 1, 2, 3]}, "retrieval score 0 must be a number"),
        ({"top_n": 2.0}, "top_n must be a positive integer"),
        ({"top_n": np.int64(0)}, "top_n must be a positive integer"),
        ({"topn": 2}, "unknown ranking option"),
    ],
)
def test_bad_options_are_refused_before_the_model_runs(
    engine: Reranker,
    kwargs: dict,
    match: str,  # type: ignore[type-arg]
) -> None:
    calls: list[int] = []
    runner = engine._loaded.runner
    engine._loaded.runner = lambda features: calls.append(1) or runner(features)  # type: ignore[assignment]
    try:
        if "retrieval_scores" in kwargs and "fusion" not in kwargs:
            kwargs = {**kwargs, "fusion": "rrf"}
        with pytest.raises(InvalidInputError, match=match):
            engine.rerank(QUERY, DOCS, **kwargs)
        with pytest.raises(InvalidInputError, match=match):
            asyncio.run(engine.arerank(QUERY, DOCS, **kwargs))
    finally:
        engine._loaded.runner = runner
    assert calls == []


def test_lone_surrogates_are_a_clear_error(engine: Reranker) -> None:
    with pytest.raises(InvalidInputError, match=r"document 1 holds an invalid character"):
        engine.rerank(QUERY, ["fine", "bad \ud800 text"])
    with pytest.raises(InvalidInputError, match="query holds an invalid character"):
        engine.rerank("bad \udcff", ["fine"])
    with pytest.raises(InvalidInputError, match="invalid character"):
        engine.score_pairs([(QUERY, "\udc80")])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_length": 0}, "max_length must be a positive integer"),
        ({"token_budget": 0}, "token_budget must be a positive integer"),
        ({"query_max_tokens": 0}, "query_max_tokens must be a positive integer"),
        ({"max_batch_size": 0}, "max_batch_size must be a positive integer"),
        ({"max_length": 4}, "leaves no room"),
        ({"stride": -1}, "stride must be between"),
        ({"aggregate": None}, "aggregate must be one of"),
    ],
)
def test_zero_settings_are_errors_not_defaults(
    tiny_model: Path,
    kwargs: dict,
    match: str,  # type: ignore[type-arg]
) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Reranker(tiny_model, **kwargs)


def test_rerank_many_rejects_what_is_not_a_list(engine: Reranker) -> None:
    with pytest.raises(InvalidInputError, match="queries must be a list"):
        engine.rerank_many("one query", [DOCS])
    with pytest.raises(InvalidInputError, match="documents_per_query must be a list"):
        engine.rerank_many([QUERY], 5)  # type: ignore[arg-type]


# -- the backlog: one coalesced pass takes a bounded share ----------------------------------
def test_coalesced_passes_are_bounded_and_every_request_is_answered() -> None:
    from crossrank.engine.aio import Coalescer

    calls: list[list[int]] = []

    def work(requests: list[int]) -> list[int]:
        calls.append(list(requests))
        return [r * 10 for r in requests]

    coalescer: Coalescer[int, int] = Coalescer(work, size=lambda r: r, max_size=10)

    async def main() -> list[int]:
        return await asyncio.gather(*(coalescer.submit(r) for r in [4, 4, 4, 12, 1, 1]))

    assert asyncio.run(main()) == [40, 40, 40, 120, 10, 10]
    assert calls == [[4, 4], [4], [12], [1, 1]]  # a request larger than the bound goes alone
    assert coalescer.n_loops == 0


def test_engine_passes_follow_the_policy_bound(engine: Reranker) -> None:
    assert engine._scorer.policy.max_pass_windows >= 512
    sizes: list[int] = []
    engine.add_stats_listener(lambda stats: sizes.append(stats.windows))
    engine._coalescer._max_size = 8  # a small bound to see it work

    async def main() -> list[list[RerankResult]]:
        return await asyncio.gather(*(engine.arerank(f"{QUERY} {i}", DOCS) for i in range(6)))

    try:
        runs = asyncio.run(main())
    finally:
        engine._coalescer._max_size = engine._scorer.policy.max_pass_windows
        engine._listeners.clear()
    assert [len(r) for r in runs] == [4] * 6
    assert sizes and max(sizes) <= 8
    assert sum(sizes) == 24
