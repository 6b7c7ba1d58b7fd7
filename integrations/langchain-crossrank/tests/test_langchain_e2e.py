"""End to end: ContextualCompressionRetriever over a FAISS store of real SciFact chunks
(all-MiniLM-L6-v2 embeddings), reranked by the starter cross-encoder."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_crossrank import (
    RELEVANCE_SCORE_KEY,
    RERANK_EVENT,
    CrossrankReranker,
    ScoredVectorStoreRetriever,
)

from crossrank import Reranker
from crossrank.adapters import READ_KEYS, SPAN_KEY, TRUNCATED_KEY, WINDOWS_KEY
from crossrank.ranking.fusion import fuse

pytestmark = pytest.mark.slow

K = 20
TOP_N = 5


def compression_retriever(base: Any, compressor: CrossrankReranker) -> Any:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    return ContextualCompressionRetriever(base_compressor=compressor, base_retriever=base)


@pytest.fixture(scope="module")
def base_retriever(faiss_store: Any) -> Any:
    return faiss_store.as_retriever(search_kwargs={"k": K})


@pytest.fixture(scope="module")
def retriever(base_retriever: Any, starter_engine: Reranker) -> Any:
    return compression_retriever(
        base_retriever, CrossrankReranker(reranker=starter_engine, top_n=TOP_N)
    )


def without_score(doc: Document) -> dict[str, Any]:
    """The metadata without what the reranker adds (the score and how the model read it)."""
    added = (RELEVANCE_SCORE_KEY, *READ_KEYS)
    return {k: v for k, v in doc.metadata.items() if k not in added}


def store_snapshot(faiss_store: Any) -> list[tuple[Any, ...]]:
    docs = faiss_store.docstore._dict.values()
    return [(d.id, d.page_content, copy.deepcopy(d.metadata)) for d in docs]


def test_sync_invoke_reranks_the_candidates(
    retriever: Any,
    base_retriever: Any,
    starter_engine: Reranker,
    faiss_store: Any,
    scifact_queries: list[str],
) -> None:
    before = store_snapshot(faiss_store)
    for query in scifact_queries[:3]:
        candidates = base_retriever.invoke(query)
        assert len(candidates) == K
        out = retriever.invoke(query)

        expected = starter_engine.rerank(query, [d.page_content for d in candidates])[:TOP_N]
        assert [d.id for d in out] == [candidates[r.index].id for r in expected]
        for doc, result in zip(out, expected, strict=True):
            original = candidates[result.index]
            assert doc.page_content == original.page_content
            assert without_score(doc) == original.metadata
            assert doc.metadata[TRUNCATED_KEY] is result.truncated
            assert doc.metadata[WINDOWS_KEY] == result.n_windows
            assert list(doc.metadata)[-1] == RELEVANCE_SCORE_KEY
            assert type(doc.metadata[RELEVANCE_SCORE_KEY]) is float
            assert doc.metadata[RELEVANCE_SCORE_KEY] == pytest.approx(result.score, abs=1e-5)
        scores = [d.metadata[RELEVANCE_SCORE_KEY] for d in out]
        assert scores == sorted(scores, reverse=True)
    # FAISS hands out its stored Document objects: a mutating compressor would change them
    assert store_snapshot(faiss_store) == before


def test_async_invoke_equals_sync(retriever: Any, scifact_queries: list[str]) -> None:
    query = scifact_queries[3]
    sync = retriever.invoke(query)
    result = asyncio.run(retriever.ainvoke(query))
    assert [d.id for d in result] == [d.id for d in sync]
    assert [d.metadata[RELEVANCE_SCORE_KEY] for d in result] == pytest.approx(
        [d.metadata[RELEVANCE_SCORE_KEY] for d in sync], abs=1e-5
    )


def test_concurrent_ainvoke_equals_sequential(retriever: Any, scifact_queries: list[str]) -> None:
    queries = scifact_queries[:4]
    sequential = [retriever.invoke(q) for q in queries]

    async def together() -> list[list[Document]]:
        return list(await asyncio.gather(*(retriever.ainvoke(q) for q in queries)))

    concurrent = asyncio.run(together())
    for seq, con in zip(sequential, concurrent, strict=True):
        assert [d.id for d in con] == [d.id for d in seq]
        assert [d.metadata[RELEVANCE_SCORE_KEY] for d in con] == pytest.approx(
            [d.metadata[RELEVANCE_SCORE_KEY] for d in seq], abs=1e-5
        )


def test_lcel_chain(retriever: Any, scifact_queries: list[str]) -> None:
    def format_docs(docs: list[Document]) -> str:
        return "\n\n".join(d.page_content for d in docs)

    chain = retriever | format_docs
    query = scifact_queries[4]
    text = chain.invoke(query)
    assert text == format_docs(retriever.invoke(query))
    assert asyncio.run(chain.ainvoke(query)) == text
    assert chain.batch(scifact_queries[4:6]) == [
        text,
        format_docs(retriever.invoke(scifact_queries[5])),
    ]


def test_empty_retrieval_returns_empty_list(
    faiss_store: Any, starter_engine: Reranker, scifact_queries: list[str]
) -> None:
    nothing = faiss_store.as_retriever(search_kwargs={"k": K, "filter": {"source": "nowhere"}})
    retriever = compression_retriever(nothing, CrossrankReranker(reranker=starter_engine))
    assert nothing.invoke(scifact_queries[0]) == []
    assert retriever.invoke(scifact_queries[0]) == []
    assert asyncio.run(retriever.ainvoke(scifact_queries[0])) == []


def test_existing_relevance_score_is_replaced_and_last(
    faiss_store: Any, starter_engine: Reranker, scifact_queries: list[str]
) -> None:
    # this base retriever writes the store's similarity under the same key the reranker uses
    base = ScoredVectorStoreRetriever(vectorstore=faiss_store, k=K, score_key=RELEVANCE_SCORE_KEY)
    query = scifact_queries[6]
    candidates = base.invoke(query)
    assert all(list(d.metadata)[-1] == RELEVANCE_SCORE_KEY for d in candidates)
    dense = {d.id: d.metadata[RELEVANCE_SCORE_KEY] for d in candidates}
    snapshot = [(d.id, dict(d.metadata)) for d in candidates]

    out = CrossrankReranker(reranker=starter_engine, top_n=TOP_N).compress_documents(
        candidates, query
    )
    expected = starter_engine.rerank(query, [d.page_content for d in candidates])[:TOP_N]
    assert [(d.id, dict(d.metadata)) for d in candidates] == snapshot
    for doc, result in zip(out, expected, strict=True):
        # the retriever's key moves to the end, after the keys that say how the model read it
        kept = [k for k in candidates[result.index].metadata if k != RELEVANCE_SCORE_KEY]
        assert list(doc.metadata) == [
            *kept,
            TRUNCATED_KEY,
            WINDOWS_KEY,
            SPAN_KEY,
            RELEVANCE_SCORE_KEY,
        ]
        assert doc.metadata[RELEVANCE_SCORE_KEY] == pytest.approx(result.score, abs=1e-5)
        assert doc.metadata[RELEVANCE_SCORE_KEY] != dense[doc.id]


@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
def test_fusion_with_the_stores_scores(
    faiss_store: Any, starter_engine: Reranker, scifact_queries: list[str], fusion: Any
) -> None:
    base = ScoredVectorStoreRetriever(vectorstore=faiss_store, k=K)
    compressor = CrossrankReranker(reranker=starter_engine, top_n=None, fusion=fusion, alpha=0.7)
    query = scifact_queries[7]
    candidates = base.invoke(query)
    out = compression_retriever(base, compressor).invoke(query)

    ce = starter_engine.rerank(query, [d.page_content for d in candidates])
    by_index = {r.index: r.score for r in ce}
    expected = fuse(
        [by_index[i] for i in range(len(candidates))],
        [d.metadata["score"] for d in candidates],
        fusion,
        0.7,
    )
    got = {d.id: d.metadata[RELEVANCE_SCORE_KEY] for d in out}
    assert got == pytest.approx(
        {d.id: s for d, s in zip(candidates, expected, strict=True)}, abs=1e-5
    )
    assert all(list(d.metadata)[-1] == RELEVANCE_SCORE_KEY for d in out)


def test_astream_events_carry_the_rerank_event(retriever: Any, scifact_queries: list[str]) -> None:
    async def collect() -> list[dict[str, Any]]:
        return [e async for e in retriever.astream_events(scifact_queries[8], version="v2")]

    events = asyncio.run(collect())
    custom = [e for e in events if e["event"] == "on_custom_event"]
    assert [e["name"] for e in custom] == [RERANK_EVENT]
    data = custom[0]["data"]
    # the outer retriever's run (the base retriever's run ends too, with all K candidates)
    (end,) = [
        e
        for e in events
        if e["event"] == "on_retriever_end" and e["name"] == "ContextualCompressionRetriever"
    ]
    docs = end["data"]["output"]
    assert data["n_documents"] == K
    assert data["n_returned"] == len(docs) == TOP_N
    assert data["top_score"] == docs[0].metadata[RELEVANCE_SCORE_KEY]
    assert custom[0]["run_id"] == end["run_id"]
