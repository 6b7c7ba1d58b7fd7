from __future__ import annotations

import asyncio
import copy
import logging
import math
from pathlib import Path

import pytest
import torch
from sentence_transformers import CrossEncoder

from crossrank import (
    DocumentTooLongError,
    InvalidInputError,
    NonFiniteScoreError,
    Reranker,
    RerankResult,
)
from crossrank.testing import build_tiny_cross_encoder

QUERY = "does vitamin d lower the risk of cancer"
DOCS = [
    "vitamin d levels and cancer risk in a cohort of patients",
    "the effect of blood pressure treatment in mice",
    "",
    "cancer cells express higher levels of a protein",
    "vitamin d levels and cancer risk in a cohort of patients",  # duplicate of 0
    "how genes are expressed in human cells",
]


@pytest.fixture(scope="module")
def reranker(tiny_model: Path) -> Reranker:
    return Reranker(tiny_model, device="cpu")


def test_scores_equal_cross_encoder_predict_on_tiny_model(
    reranker: Reranker, tiny_model: Path
) -> None:
    pairs = [(QUERY, d) for d in DOCS] + [("another question about genes", d) for d in DOCS]
    expected = CrossEncoder(str(tiny_model), device="cpu").predict(pairs)
    assert reranker.activation == "sigmoid"
    got = reranker.score_pairs(pairs)
    assert all(type(s) is float for s in got)
    assert max(abs(a - float(b)) for a, b in zip(got, expected, strict=True)) <= 1e-4


@pytest.mark.slow
def test_scores_equal_predict_for_the_real_backbone(minilm_path: Path, shared_data: Path) -> None:
    from crossrank.data import load_beir

    collection = load_beir(shared_data / "scifact", split="test")
    queries = [q.text for q in collection.judged_queries(2)]
    docs = [d.full_text for d in list(collection.corpus.values())[:12]]
    pairs = [(q, d) for q in queries for d in docs]
    engine = Reranker(minilm_path, max_length=512)
    # The backbone has no trained head: its classifier is initialised at load time, so the
    # reference must be the same loaded weights, scored through CrossEncoder.predict.
    cross_encoder = engine.cross_encoder
    default_length = cross_encoder.max_seq_length
    cross_encoder.max_seq_length = 512
    try:
        expected = cross_encoder.predict(pairs)
    finally:
        cross_encoder.max_seq_length = default_length
    got = engine.score_pairs(pairs)
    fits = [len(cross_encoder.tokenizer(q, d)["input_ids"]) <= 512 for q, d in pairs]
    assert sum(fits) >= len(pairs) // 2
    diffs = [abs(a - float(b)) for a, b, ok in zip(got, expected, fits, strict=True) if ok]
    assert max(diffs) <= 1e-4


def test_results_are_sorted_new_objects_and_inputs_untouched(reranker: Reranker) -> None:
    docs = list(DOCS)
    before = copy.deepcopy(docs)
    dense = [0.9, 0.1, 0.3, 0.5, 0.8, 0.2]
    results = reranker.rerank(QUERY, docs, retrieval_scores=dense)
    assert docs == before
    assert len(results) == len(DOCS)
    assert sorted(r.index for r in results) == list(range(len(DOCS)))
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        assert isinstance(r, RerankResult)
        assert type(r.score) is float and type(r.rerank_score) is float
        assert r.retrieval_score == dense[r.index]
        assert r.document == DOCS[r.index]
        assert r.score == r.rerank_score  # no fusion asked
        assert (r.truncated, r.n_windows) == (False, 1)
    # Duplicates are kept, tie broken by input order.
    positions = [r.index for r in results]
    assert positions.index(0) < positions.index(4)
    assert results[positions.index(0)].score == results[positions.index(4)].score


def test_empty_string_documents_are_scored(reranker: Reranker) -> None:
    results = reranker.rerank(QUERY, ["", "text"])
    assert {r.index for r in results} == {0, 1}
    assert all(math.isfinite(r.score) for r in results)


def test_top_n_and_min_score(reranker: Reranker) -> None:
    full = reranker.rerank(QUERY, DOCS)
    assert reranker.rerank(QUERY, DOCS, top_n=2) == full[:2]
    assert reranker.rerank(QUERY, DOCS, top_n=100) == full
    threshold = full[2].score
    kept = reranker.rerank(QUERY, DOCS, min_score=threshold)
    assert kept == [r for r in full if r.score >= threshold]
    assert reranker.rerank(QUERY, []) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"query": "", "documents": ["a"]}, "query is empty"),
        ({"query": "   ", "documents": ["a"]}, "query is empty"),
        ({"query": None, "documents": ["a"]}, "query must be a string"),
        ({"query": "q", "documents": "a single string"}, "documents must be a list"),
        ({"query": "q", "documents": ["a", 3]}, "document 1 must be a string"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, "top_n must be a positive integer"),
        ({"query": "q", "documents": ["a"], "top_n": True}, "top_n must be a positive integer"),
        ({"query": "q", "documents": ["a"], "fusion": "rrf"}, "needs retrieval_scores"),
        (
            {"query": "q", "documents": ["a"], "retrieval_scores": [1, 2]},
            "one first-stage score per document",
        ),
        (
            {"query": "q", "documents": ["a"], "retrieval_scores": [1.0], "fusion": "max"},
            "fusion must be one of",
        ),
        (
            {
                "query": "q",
                "documents": ["a"],
                "retrieval_scores": [1.0],
                "fusion": "weighted",
                "alpha": 2.0,
            },
            "alpha must be between 0 and 1",
        ),
    ],
)
def test_bad_input_is_a_clear_error(reranker: Reranker, kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidInputError, match=match):
        reranker.rerank(**kwargs)


def test_bad_settings_are_refused(tiny_model: Path) -> None:
    with pytest.raises(InvalidInputError, match="overflow must be one of"):
        Reranker(tiny_model, overflow="drop")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="exceeds what model"):
        Reranker(tiny_model, max_length=4096)
    with pytest.raises(InvalidInputError, match="leaves no room"):
        Reranker(tiny_model, max_length=16, query_max_tokens=15)
    with pytest.raises(InvalidInputError, match="stride must be between"):
        Reranker(tiny_model, max_length=32, query_max_tokens=8, stride=100)


def test_fusion(reranker: Reranker) -> None:
    dense = [0.2, 0.9, 0.5, 0.4, 0.1, 0.7]
    plain = {r.index: r.rerank_score for r in reranker.rerank(QUERY, DOCS)}
    ce = [plain[i] for i in range(len(DOCS))]
    lo, hi = min(ce), max(ce)
    dlo, dhi = min(dense), max(dense)
    results = reranker.rerank(QUERY, DOCS, retrieval_scores=dense, fusion="weighted", alpha=0.3)
    for r in results:
        expected = 0.3 * (ce[r.index] - lo) / (hi - lo) + 0.7 * (dense[r.index] - dlo) / (dhi - dlo)
        assert r.score == pytest.approx(expected)
        assert r.rerank_score == ce[r.index]
    only_dense = reranker.rerank(QUERY, DOCS, retrieval_scores=dense, fusion="weighted", alpha=0.0)
    assert [r.index for r in only_dense] == sorted(range(6), key=lambda i: -dense[i])
    rrf = reranker.rerank(QUERY, DOCS, retrieval_scores=dense, fusion="rrf")
    ce_rank = {i: k for k, i in enumerate(sorted(range(6), key=lambda i: (-ce[i], i)), start=1)}
    d_rank = {i: k for k, i in enumerate(sorted(range(6), key=lambda i: -dense[i]), start=1)}
    for r in rrf:
        assert r.score == pytest.approx(1 / (60 + ce_rank[r.index]) + 1 / (60 + d_rank[r.index]))


def test_activation_raw_and_sigmoid(tiny_model: Path) -> None:
    raw = Reranker(tiny_model, activation="raw").rerank(QUERY, DOCS)
    prob = Reranker(tiny_model, activation="sigmoid").rerank(QUERY, DOCS)
    assert [r.index for r in raw] == [r.index for r in prob]
    for a, b in zip(raw, prob, strict=True):
        assert b.score == pytest.approx(1 / (1 + math.exp(-a.score)), abs=1e-12)


def test_truncation_is_reported_and_summarised_once(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Reranker(tiny_model, max_length=32, query_max_tokens=8)
    docs = ["short", "a " * 100, "b " * 100]
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        results = engine.rerank("a question", docs)
    by_index = {r.index: r for r in results}
    assert [by_index[i].truncated for i in range(3)] == [False, True, True]
    warnings = [rec for rec in caplog.records if "truncated" in rec.getMessage()]
    assert len(warnings) == 1
    assert "2 of 3 documents" in warnings[0].getMessage()


def test_chunking_scores_every_window(tiny_model: Path) -> None:
    kwargs = {"max_length": 32, "query_max_tokens": 8, "stride": 4}
    chunked = Reranker(tiny_model, overflow="chunk", **kwargs)
    truncating = Reranker(tiny_model, overflow="truncate", activation="raw", **kwargs)
    doc = "vitamin d cancer risk " * 30
    [result] = chunked.rerank("vitamin d", [doc])
    assert result.truncated is False
    assert result.n_windows > 1
    # Every window scored on its own: the max over them is the chunked score.
    from crossrank.engine.pairs import plan_pairs

    loaded = chunked._loaded
    windows, _ = plan_pairs(
        loaded.tokenizer, loaded.template, chunked.geometry, "vitamin d", [doc], overflow="chunk"
    )
    assert len(windows) == result.n_windows
    model = chunked.cross_encoder.model
    with torch.inference_mode():
        logits = [
            model(
                input_ids=torch.tensor([w.ids]),
                token_type_ids=torch.tensor([w.type_ids]),
                attention_mask=torch.ones(1, len(w.ids), dtype=torch.long),
            )
            .logits[0, 0]
            .item()
            for w in windows
        ]
    assert result.rerank_score == pytest.approx(1 / (1 + math.exp(-max(logits))), abs=1e-5)
    # The result points at its best window's text.
    best = max(range(len(logits)), key=logits.__getitem__)
    assert result.span == windows[best].span
    first = truncating.rerank("vitamin d", [doc])[0]
    assert first.rerank_score == pytest.approx(logits[0], abs=1e-5)
    assert first.truncated
    assert first.span == windows[0].span
    mean = Reranker(tiny_model, overflow="chunk", aggregate="mean", activation="raw", **kwargs)
    assert mean.rerank("vitamin d", [doc])[0].score == pytest.approx(
        sum(logits) / len(logits), abs=1e-5
    )


def test_overflow_error_names_the_document(tiny_model: Path) -> None:
    engine = Reranker(tiny_model, max_length=32, query_max_tokens=8, overflow="error")
    with pytest.raises(DocumentTooLongError, match="document 1 has"):
        engine.rerank("q", ["fits", "x " * 100])


def test_non_finite_scores_are_an_error(tmp_path: Path) -> None:
    folder = build_tiny_cross_encoder(tmp_path / "nan")
    engine = Reranker(folder)
    with torch.no_grad():
        engine.cross_encoder.model.classifier.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteScoreError, match="non-finite"):
        engine.rerank("q", ["a", "b"])


def test_cache_hits_and_misses(tiny_model: Path) -> None:
    engine = Reranker(tiny_model, cache_size=100)
    first = engine.rerank(QUERY, DOCS)
    stats = engine.cache_stats
    assert (stats.hits, stats.misses) == (0, len(DOCS))
    assert engine.rerank(QUERY, DOCS) == first
    assert engine.cache_stats.hits == len(DOCS)
    assert engine.last_stats.windows == 0  # nothing reached the model
    engine.rerank("a different query", DOCS[:2])
    assert engine.cache_stats.misses == len(DOCS) + 2
    small = Reranker(tiny_model, cache_size=2)
    small.rerank(QUERY, DOCS)
    assert small.cache_stats.size == 2


def test_rerank_many_equals_rerank_per_query(reranker: Reranker) -> None:
    queries = [QUERY, "genes in human cells", "blood pressure"]
    docs = [DOCS, DOCS[:3], list(reversed(DOCS))]
    many = reranker.rerank_many(queries, docs)
    single = [reranker.rerank(q, d) for q, d in zip(queries, docs, strict=True)]
    # One pass pads pairs differently than per-query calls: equal up to float rounding.
    for got, expected in zip(many, single, strict=True):
        assert {r.index: r.score for r in got} == pytest.approx(
            {r.index: r.score for r in expected}, abs=1e-6
        )
    assert [len(r) for r in reranker.rerank_many(queries, docs, top_n=4)] == [4, 3, 4]
    assert reranker.rerank_many([], []) == []
    with pytest.raises(InvalidInputError, match="same length"):
        reranker.rerank_many(queries, docs[:2])


def test_arerank_equals_rerank_and_coalesces(reranker: Reranker) -> None:
    queries = [f"{QUERY} {i}" for i in range(20)]
    expected = [reranker.rerank(q, DOCS, top_n=3) for q in queries]
    calls: list[int] = []
    original = reranker._coalescer._work

    def counting(requests):  # type: ignore[no-untyped-def]
        calls.append(len(requests))
        return original(requests)

    reranker._coalescer._work = counting

    async def main() -> list[list[RerankResult]]:
        return await asyncio.gather(*(reranker.arerank(q, DOCS, top_n=3) for q in queries))

    try:
        got = asyncio.run(main())
    finally:
        reranker._coalescer._work = original
    for g, e in zip(got, expected, strict=True):
        assert [r.score for r in g] == pytest.approx([r.score for r in e], abs=1e-6)
    assert sum(calls) == 20
    assert len(calls) < 20  # concurrent callers shared batches
    assert asyncio.run(reranker.ascore_pairs([(QUERY, d) for d in DOCS])) == pytest.approx(
        reranker.score_pairs([(QUERY, d) for d in DOCS])
    )


def test_async_errors_reach_only_their_caller(tiny_model: Path) -> None:
    engine = Reranker(tiny_model, max_length=32, query_max_tokens=8, overflow="error")

    async def main() -> list[object]:
        return await asyncio.gather(
            engine.arerank("q", ["fits"]),
            engine.arerank("q", ["x " * 100]),
            return_exceptions=True,
        )

    ok, failed = asyncio.run(main())
    assert isinstance(ok, list) and len(ok) == 1
    assert isinstance(failed, DocumentTooLongError)
