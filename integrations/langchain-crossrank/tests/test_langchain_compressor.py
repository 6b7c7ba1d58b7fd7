"""CrossrankReranker mechanics: with a deterministic fake engine and the real engine on a tiny
model."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler, CallbackManager
from langchain_core.documents import Document
from langchain_crossrank import RELEVANCE_SCORE_KEY, RERANK_EVENT, CrossrankReranker
from pydantic import ValidationError

from crossrank import InvalidInputError, Reranker
from crossrank.adapters import TRUNCATED_KEY, WINDOWS_KEY
from crossrank.ranking.fusion import fuse

QUERY = "does vitamin d lower the risk of cancer"
READ = [TRUNCATED_KEY, WINDOWS_KEY]  # the fake engine knows no span


def make_docs() -> list[Document]:
    texts = [
        "the effect of blood pressure treatment in mice",
        "vitamin d levels and cancer risk in a cohort of patients",
        "cancer cells express higher levels of a protein",
        "how genes are expressed in human cells",
        "vitamin d and the risk of cancer: a study of human patients",
    ]
    return [
        Document(
            id=f"doc-{i}",
            page_content=text,
            metadata={
                "source": f"s{i}",
                RELEVANCE_SCORE_KEY: "stale",
                "tags": ["a", "b"],
                "score": 1.0 - i / 10,
            },
        )
        for i, text in enumerate(texts)
    ]


def snapshot(docs: list[Document]) -> list[tuple[Any, ...]]:
    return [(id(d), d.id, d.page_content, copy.deepcopy(d.metadata)) for d in docs]


class EventRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any, UUID]] = []
        self.retriever_runs: list[UUID] = []

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append((name, data, run_id))

    def on_retriever_start(
        self, serialized: Any, query: str, *, run_id: UUID, **kwargs: Any
    ) -> None:
        self.retriever_runs.append(run_id)


# -- with a fake engine -----------------------------------------------------------------------
def test_returns_scored_copies_best_first_and_leaves_inputs_untouched(fake: Any) -> None:
    docs = make_docs()
    before = snapshot(docs)
    out = CrossrankReranker(reranker=fake, top_n=3).compress_documents(docs, QUERY)

    assert snapshot(docs) == before
    expected = sorted(range(len(docs)), key=lambda i: -fake.score(QUERY, docs[i].page_content))
    assert [d.id for d in out] == [docs[i].id for i in expected[:3]]
    for doc in out:
        original = next(d for d in docs if d.id == doc.id)
        assert doc is not original
        assert doc.metadata is not original.metadata
        assert doc.page_content == original.page_content
        assert type(doc.metadata[RELEVANCE_SCORE_KEY]) is float
        assert doc.metadata[RELEVANCE_SCORE_KEY] == fake.score(QUERY, doc.page_content)
        # the stale value is replaced and the score is the last key; the rest is kept in order
        assert list(doc.metadata) == ["source", "tags", "score", *READ, RELEVANCE_SCORE_KEY]
        assert (doc.metadata[TRUNCATED_KEY], doc.metadata[WINDOWS_KEY]) == (False, 1)
        assert doc.metadata["tags"] == original.metadata["tags"]
    assert original.metadata[RELEVANCE_SCORE_KEY] == "stale"


def test_top_n_none_returns_all_and_threshold_drops_low_scores(fake: Any) -> None:
    docs = make_docs()
    everything = CrossrankReranker(reranker=fake, top_n=None).compress_documents(docs, QUERY)
    assert len(everything) == len(docs)
    scores = [d.metadata[RELEVANCE_SCORE_KEY] for d in everything]
    assert scores == sorted(scores, reverse=True)

    cut = scores[2]
    kept = CrossrankReranker(reranker=fake, top_n=None, score_threshold=cut).compress_documents(
        docs, QUERY
    )
    assert [d.id for d in kept] == [
        d.id for d in everything if d.metadata[RELEVANCE_SCORE_KEY] >= cut
    ]
    assert len(kept) < len(docs)
    assert fake.calls[-1]["min_score"] == cut


def test_empty_documents_return_empty_list_without_calling_the_engine(fake: Any) -> None:
    compressor = CrossrankReranker(reranker=fake)
    assert compressor.compress_documents([], QUERY) == []
    assert asyncio.run(compressor.acompress_documents([], QUERY)) == []
    assert fake.calls == []


@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
def test_fusion_reads_retrieval_scores_from_metadata(fake: Any, fusion: str) -> None:
    docs = make_docs()
    out = CrossrankReranker(reranker=fake, top_n=None, fusion=fusion, alpha=0.3).compress_documents(
        docs, QUERY
    )
    dense = [d.metadata["score"] for d in docs]
    call = fake.calls[-1]
    assert call["retrieval_scores"] == dense
    assert all(type(s) is float for s in call["retrieval_scores"])
    assert (call["fusion"], call["alpha"]) == (fusion, 0.3)
    expected = fuse([fake.score(QUERY, d.page_content) for d in docs], dense, fusion, 0.3)
    got = {d.id: d.metadata[RELEVANCE_SCORE_KEY] for d in out}
    assert got == {d.id: s for d, s in zip(docs, expected, strict=True)}


def test_fusion_uses_the_configured_key_and_accepts_numpy_scores(fake: Any) -> None:
    np = pytest.importorskip("numpy")
    docs = [
        Document(page_content=d.page_content, metadata={"dense": np.float32(i)})
        for i, d in enumerate(make_docs())
    ]
    CrossrankReranker(reranker=fake, fusion="rrf", retrieval_score_key="dense").compress_documents(
        docs, QUERY
    )
    assert fake.calls[-1]["retrieval_scores"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(type(s) is float for s in fake.calls[-1]["retrieval_scores"])


def test_fusion_without_a_score_names_the_document(fake: Any) -> None:
    docs = make_docs()
    docs[3] = Document(page_content="no score here", metadata={})
    compressor = CrossrankReranker(reranker=fake, fusion="weighted")
    with pytest.raises(InvalidInputError, match=r"document 3 has no metadata\['score'\]"):
        compressor.compress_documents(docs, QUERY)
    docs[3] = Document(page_content="bad score", metadata={"score": "high"})
    with pytest.raises(InvalidInputError, match=r"document 3 has metadata\['score'\]='high'"):
        compressor.compress_documents(docs, QUERY)
    assert fake.calls == []


def test_acompress_uses_the_engines_arerank(fake: Any) -> None:
    docs = make_docs()
    compressor = CrossrankReranker(reranker=fake, top_n=2)
    out = asyncio.run(compressor.acompress_documents(docs, QUERY))
    assert [c["method"] for c in fake.calls] == ["arerank"]
    assert [d.id for d in out] == [d.id for d in compressor.compress_documents(docs, QUERY)]


def test_reports_a_custom_event_to_the_callbacks_it_is_given(fake: Any) -> None:
    docs = make_docs()
    recorder = EventRecorder()
    out = CrossrankReranker(reranker=fake, top_n=2).compress_documents(
        docs, QUERY, callbacks=[recorder]
    )
    ((name, data, _run_id),) = recorder.events
    assert name == RERANK_EVENT
    assert data == {
        "n_documents": len(docs),
        "n_returned": 2,
        "top_score": out[0].metadata[RELEVANCE_SCORE_KEY],
        "n_truncated": 0,
        "fusion": None,
    }

    # inside a run (as ContextualCompressionRetriever passes it), the event belongs to the run
    parent = UUID(int=42)
    manager = CallbackManager(handlers=[recorder], parent_run_id=parent)
    asyncio.run(CrossrankReranker(reranker=fake).acompress_documents(docs, QUERY, manager))
    assert recorder.events[-1][0] == RERANK_EVENT
    assert recorder.events[-1][2] == parent


def test_options_are_validated(fake: Any) -> None:
    with pytest.raises(ValidationError):
        CrossrankReranker(reranker=object())
    with pytest.raises(InvalidInputError, match="top_n must be a positive integer, got 0"):
        CrossrankReranker(reranker=fake, top_n=0)
    with pytest.raises(ValidationError):
        CrossrankReranker(reranker=fake, alpha=1.5)
    with pytest.raises(ValidationError):
        CrossrankReranker(reranker=fake, fusion="max")
    with pytest.raises(ValidationError):
        CrossrankReranker(reranker=fake, unknown_option=1)


def test_engine_and_engine_options_are_exclusive(fake: Any, tiny_model: Path) -> None:
    pattern = r"either reranker= .* or engine options \(model, device\)"
    with pytest.raises(InvalidInputError, match=pattern):
        CrossrankReranker(reranker=fake, model=str(tiny_model), device="cpu")
    with pytest.raises(InvalidInputError, match="does not take: colour"):
        CrossrankReranker(model=str(tiny_model), reranker_kwargs={"colour": "red"})


# -- with the real engine on a tiny model -----------------------------------------------------
def test_builds_the_engine_from_options(tiny_model: Path, tiny_engine: Reranker) -> None:
    compressor = CrossrankReranker(
        model=tiny_model, device="cpu", max_length=64, reranker_kwargs={"cache_size": 8}, top_n=None
    )
    assert isinstance(compressor.engine, Reranker)
    assert compressor.engine.max_length == 64
    docs = make_docs()
    out = compressor.compress_documents(docs, QUERY)
    expected = tiny_engine.rerank(QUERY, [d.page_content for d in docs])
    assert [d.id for d in out] == [docs[r.index].id for r in expected]
    for doc, result in zip(out, expected, strict=True):
        assert type(doc.metadata[RELEVANCE_SCORE_KEY]) is float
        assert doc.metadata[RELEVANCE_SCORE_KEY] == pytest.approx(result.score, abs=1e-6)


def test_real_engine_fusion_matches_the_engines_fusion(tiny_engine: Reranker) -> None:
    docs = make_docs()
    out = CrossrankReranker(
        reranker=tiny_engine, top_n=None, fusion="weighted", alpha=0.5
    ).compress_documents(docs, QUERY)
    plain = tiny_engine.rerank(QUERY, [d.page_content for d in docs])
    ce = [0.0] * len(docs)
    for r in plain:
        ce[r.index] = r.score
    expected = fuse(ce, [d.metadata["score"] for d in docs], "weighted", 0.5)
    got = {d.id: d.metadata[RELEVANCE_SCORE_KEY] for d in out}
    assert got == pytest.approx({d.id: s for d, s in zip(docs, expected, strict=True)}, abs=1e-6)


def test_concurrent_acompress_equals_sequential(tiny_engine: Reranker) -> None:
    compressor = CrossrankReranker(reranker=tiny_engine, top_n=4)
    docs = make_docs()
    queries = [QUERY, "genes expressed in cells", "blood pressure in mice", "protein levels"]
    sequential = [compressor.compress_documents(docs, q) for q in queries]

    async def together() -> list[Any]:
        return await asyncio.gather(*(compressor.acompress_documents(docs, q) for q in queries))

    concurrent = asyncio.run(together())
    for seq, con in zip(sequential, concurrent, strict=True):
        assert [d.id for d in con] == [d.id for d in seq]
        assert [d.metadata[RELEVANCE_SCORE_KEY] for d in con] == pytest.approx(
            [d.metadata[RELEVANCE_SCORE_KEY] for d in seq], abs=1e-5
        )


def test_acompress_does_not_block_the_event_loop(tiny_engine: Reranker) -> None:
    compressor = CrossrankReranker(reranker=tiny_engine, top_n=None)
    docs = make_docs() * 40  # enough work for the scoring to take a while on a thread

    async def run() -> tuple[int, int]:
        task = asyncio.ensure_future(compressor.acompress_documents(docs, QUERY))
        ticks = 0
        while not task.done():
            ticks += 1
            await asyncio.sleep(0)
        return ticks, len(await task)

    ticks, n = asyncio.run(run())
    assert n == len(docs)
    # the loop kept running other work while the documents were scored
    assert ticks > 1
