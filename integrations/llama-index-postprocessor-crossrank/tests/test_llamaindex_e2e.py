"""End to end: query engines over a VectorStoreIndex of real SciFact abstracts in a FAISS store
(all-MiniLM-L6-v2 embeddings), with the starter cross-encoder reranking the top 10 to 3."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.schema import MetadataMode, NodeWithScore
from llama_index.postprocessor.crossrank import RETRIEVAL_SCORE_KEY, CrossrankRerank

pytestmark = pytest.mark.slow

SIMILARITY_TOP_K = 10
TOP_N = 3


@pytest.fixture(scope="module")
def rerank(starter_model: Path) -> CrossrankRerank:
    # the starter stores fp16 weights; score in fp32 wherever the test runs
    return CrossrankRerank(model=starter_model, top_n=TOP_N, dtype="float32")


def mock_llm() -> Any:
    from llama_index.core.llms import MockLLM

    return MockLLM()


def expected_top(
    index: Any, rerank: CrossrankRerank, query: str
) -> tuple[list[NodeWithScore], list[str], list[float]]:
    """The retriever's candidates, and the ids and scores the engine gives its best TOP_N."""
    candidates = index.as_retriever(similarity_top_k=SIMILARITY_TOP_K).retrieve(query)
    assert len(candidates) == SIMILARITY_TOP_K
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in candidates]
    results = rerank.engine.rerank(query, texts, top_n=TOP_N)
    return (
        candidates,
        [candidates[r.index].node.node_id for r in results],
        [r.score for r in results],
    )


def check_source_nodes(response: Any, ids: list[str], scores: list[float]) -> None:
    nodes = response.source_nodes
    assert [n.node.node_id for n in nodes] == ids
    got = [n.score for n in nodes]
    assert all(type(s) is float for s in got)
    assert got == sorted(got, reverse=True)
    assert got == pytest.approx(scores, abs=1e-5)


def test_as_query_engine_sync_and_async(
    scifact_index: Any, rerank: CrossrankRerank, scifact_queries: list[str]
) -> None:
    engine = scifact_index.as_query_engine(
        similarity_top_k=SIMILARITY_TOP_K, node_postprocessors=[rerank], llm=mock_llm()
    )
    for query in scifact_queries[:2]:
        candidates, ids, scores = expected_top(scifact_index, rerank, query)
        dense = {n.node.node_id: n.score for n in candidates}
        check_source_nodes(engine.query(query), ids, scores)
        check_source_nodes(asyncio.run(engine.aquery(query)), ids, scores)
        # the reranker reorders: its scores are not the retriever's
        assert [dense[i] for i in ids] != scores


def test_retriever_query_engine_sync_and_async(
    scifact_index: Any, rerank: CrossrankRerank, scifact_queries: list[str]
) -> None:
    from llama_index.core.query_engine import RetrieverQueryEngine

    retriever = scifact_index.as_retriever(similarity_top_k=SIMILARITY_TOP_K)
    engine = RetrieverQueryEngine.from_args(retriever, llm=mock_llm(), node_postprocessors=[rerank])
    for query in scifact_queries[2:3]:
        _, ids, scores = expected_top(scifact_index, rerank, query)
        check_source_nodes(engine.query(query), ids, scores)
        check_source_nodes(asyncio.run(engine.aquery(query)), ids, scores)


def test_concurrent_aqueries_equal_sequential_queries(
    scifact_index: Any, rerank: CrossrankRerank, scifact_queries: list[str]
) -> None:
    engine = scifact_index.as_query_engine(
        similarity_top_k=SIMILARITY_TOP_K, node_postprocessors=[rerank], llm=mock_llm()
    )
    queries = scifact_queries[3:6]
    sequential = [engine.query(q).source_nodes for q in queries]

    async def together() -> list[Any]:
        return list(await asyncio.gather(*(engine.aquery(q) for q in queries)))

    for seq, response in zip(sequential, asyncio.run(together()), strict=True):
        assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in seq]
        assert [n.score for n in response.source_nodes] == pytest.approx(
            [n.score for n in seq], abs=1e-5
        )


def test_kept_retrieval_score_stays_out_of_the_prompt(
    scifact_index: Any, starter_model: Path, scifact_queries: list[str]
) -> None:
    from llama_index.core.llms import MockLLM

    class RecordingLLM(MockLLM):
        """MockLLM that remembers the prompts it was sent."""

        prompts: list[str] = []  # noqa: RUF012 (pydantic field default)

        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            self.prompts.append(prompt)
            return super().complete(prompt, formatted=formatted, **kwargs)

    llm = RecordingLLM()
    rerank = CrossrankRerank(
        model=starter_model, top_n=TOP_N, dtype="float32", keep_retrieval_score=True
    )
    engine = scifact_index.as_query_engine(
        similarity_top_k=SIMILARITY_TOP_K, node_postprocessors=[rerank], llm=llm
    )
    query = scifact_queries[0]
    candidates = scifact_index.as_retriever(similarity_top_k=SIMILARITY_TOP_K).retrieve(query)
    dense = {n.node.node_id: n.score for n in candidates}
    response = engine.query(query)
    for node in response.source_nodes:
        assert node.node.metadata[RETRIEVAL_SCORE_KEY] == pytest.approx(dense[node.node.node_id])
        assert "title" in node.node.get_content(metadata_mode=MetadataMode.LLM)
    assert llm.prompts
    prompt = "\n".join(llm.prompts)
    assert RETRIEVAL_SCORE_KEY not in prompt
    assert all(n.node.get_content() in prompt for n in response.source_nodes)
