"""Clients no one here wrote, unchanged, against the real server; and RemoteReranker.

The Cohere SDK (v1 ``Client`` and ``ClientV2``), langchain-cohere's ``CohereRerank``,
LlamaIndex's ``CohereRerank`` and ``TextEmbeddingInference`` postprocessors, and crossrank's
own adapters with ``RemoteReranker``; every result equals the in-process ``Reranker``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crossrank import RemoteReranker, Reranker
from crossrank.errors import DocumentTooLongError, InvalidInputError
from crossrank.serving import ServeConfig, ServiceError, running_server

QUERY = "vitamin d and cancer risk"
DOCS = [
    "vitamin d levels are associated with lower cancer risk in human studies",
    "the mice were treated with protein",
    "blood levels of vitamin d",
    "gene expression in cells",
    "cancer risk",
    " ".join(["cancer risk of the disease in patients"] * 20),
]
MAX_LENGTH = 48
KEY = "test-key"


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[str]:
    config = ServeConfig(
        model=str(tiny_model), host="127.0.0.1", port=0, max_length=MAX_LENGTH, api_keys=(KEY,)
    )
    with running_server(config) as url:
        yield url


@pytest.fixture(scope="module")
def reference(tiny_model: Path) -> Reranker:
    return Reranker(tiny_model, max_length=MAX_LENGTH)


def _expected(
    reference: Reranker, docs: list[str], top_n: int | None = None
) -> list[tuple[int, float]]:
    return [(r.index, r.score) for r in reference.rerank(QUERY, docs, top_n=top_n)]


def _close(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)


def test_cohere_sdk_v2(server: str, reference: Reranker) -> None:
    import cohere

    client = cohere.ClientV2(api_key=KEY, base_url=server)
    response = client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS, top_n=4)
    _close([(r.index, r.relevance_score) for r in response.results], _expected(reference, DOCS, 4))
    truncated = {r.index: r.truncated for r in response.results}  # crossrank's extras survive
    assert truncated.get(5, True) is True


def test_cohere_sdk_v1(server: str, reference: Reranker) -> None:
    import cohere

    client = cohere.Client(api_key=KEY, base_url=server)
    response = client.rerank(query=QUERY, documents=DOCS, return_documents=True)
    _close([(r.index, r.relevance_score) for r in response.results], _expected(reference, DOCS))
    assert [r.document.text for r in response.results] == [DOCS[r.index] for r in response.results]


def test_cohere_sdk_async_and_a_wrong_key(server: str, reference: Reranker) -> None:
    import cohere

    async def main() -> object:
        client = cohere.AsyncClientV2(api_key=KEY, base_url=server)
        return await client.rerank(model="m", query=QUERY, documents=DOCS)

    response = asyncio.run(main())
    _close([(r.index, r.relevance_score) for r in response.results], _expected(reference, DOCS))  # type: ignore[attr-defined]
    with pytest.raises(cohere.errors.UnauthorizedError):
        cohere.ClientV2(api_key="wrong", base_url=server).rerank(
            model="m", query=QUERY, documents=DOCS
        )


def test_langchain_cohere_rerank(server: str, reference: Reranker) -> None:
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    compressor = CohereRerank(cohere_api_key=KEY, base_url=server, model="rerank-v3.5", top_n=3)
    docs = [Document(page_content=d, metadata={"i": i}) for i, d in enumerate(DOCS)]
    out = compressor.compress_documents(docs, QUERY)
    _close(
        [(d.metadata["i"], d.metadata["relevance_score"]) for d in out],
        _expected(reference, DOCS, 3),
    )


def _nodes() -> list:  # type: ignore[type-arg]
    from llama_index.core.schema import NodeWithScore, TextNode

    return [NodeWithScore(node=TextNode(text=d, id_=str(i)), score=0.0) for i, d in enumerate(DOCS)]


def test_llamaindex_cohere_rerank(server: str, reference: Reranker) -> None:
    from llama_index.core.schema import QueryBundle
    from llama_index.postprocessor.cohere_rerank import CohereRerank

    reranker = CohereRerank(api_key=KEY, base_url=server, top_n=3, max_retries=1)
    out = reranker.postprocess_nodes(_nodes(), QueryBundle(QUERY))
    _close([(int(n.node.node_id), n.score) for n in out], _expected(reference, DOCS, 3))


def test_llamaindex_tei_rerank(server: str, reference: Reranker) -> None:
    from llama_index.core.schema import QueryBundle
    from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

    reranker = TextEmbeddingInference(base_url=server, top_n=4, auth_token=f"Bearer {KEY}")
    out = reranker.postprocess_nodes(_nodes(), QueryBundle(QUERY))
    _close([(int(n.node.node_id), n.score) for n in out], _expected(reference, DOCS, 4))


# -- RemoteReranker -----------------------------------------------------------------------------
def test_remote_reranker_equals_the_engine(server: str, reference: Reranker) -> None:
    dense = [0.9, 0.1, 0.5, 0.3, 0.2, 0.8]
    cases: list[dict] = [  # type: ignore[type-arg]
        {},
        {"top_n": 2},
        {"min_score": 0.5},
        {"fusion": "weighted", "alpha": 0.3, "retrieval_scores": dense},
        {"fusion": "rrf", "retrieval_scores": dense, "top_n": 3},
    ]
    with RemoteReranker(server, api_key=KEY) as remote:
        for options in cases:
            got = remote.rerank(QUERY, DOCS, **options)
            want = reference.rerank(QUERY, DOCS, **options)
            assert [r.index for r in got] == [r.index for r in want], options
            for g, w in zip(got, want):
                assert g.score == pytest.approx(w.score, abs=1e-6)
                assert g.rerank_score == pytest.approx(w.rerank_score, abs=1e-6)
                assert (g.retrieval_score, g.truncated, g.n_windows, g.document, g.span) == (
                    w.retrieval_score,
                    w.truncated,
                    w.n_windows,
                    w.document,
                    w.span,
                )
        assert remote.rerank(QUERY, []) == []
        assert remote.info()["max_length"] == MAX_LENGTH

    async def main() -> list:  # type: ignore[type-arg]
        remote = RemoteReranker(server, api_key=KEY)
        return await asyncio.gather(*(remote.arerank(QUERY, DOCS, top_n=3) for _ in range(5)))

    for got in asyncio.run(main()):
        assert [r.index for r in got] == [r.index for r in reference.rerank(QUERY, DOCS, top_n=3)]


def test_remote_reranker_errors(server: str, tiny_model: Path) -> None:
    with pytest.raises(ServiceError) as info:
        RemoteReranker(server, api_key="wrong", retries=0).rerank(QUERY, DOCS)
    assert info.value.status_code == 401
    with pytest.raises(InvalidInputError, match="top_n"):
        RemoteReranker(server, api_key=KEY).rerank(QUERY, DOCS, top_n=0)
    with pytest.raises(InvalidInputError, match="retrieval_scores"):
        RemoteReranker(server, api_key=KEY).rerank(QUERY, DOCS, fusion="rrf")
    with pytest.raises(InvalidInputError):
        RemoteReranker("127.0.0.1:8080")
    config = ServeConfig(model=str(tiny_model), port=0, max_length=MAX_LENGTH, overflow="error")
    with running_server(config) as url, pytest.raises(DocumentTooLongError) as too_long:
        RemoteReranker(url).rerank(QUERY, DOCS)
    assert too_long.value.index == 5
    assert too_long.value.n_tokens > too_long.value.budget > 0


def test_remote_reranker_retries_429_503_and_connection_errors() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(calls) == 2:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "full"})
        if len(calls) == 3:
            return httpx.Response(503, json={"message": "loading"})
        return httpx.Response(
            200,
            json={
                "results": [
                    {"index": 1, "relevance_score": 0.9},
                    {"index": 0, "relevance_score": 0.1},
                ]
            },
        )

    remote = RemoteReranker(
        "http://127.0.0.1:9", retries=3, backoff=0.0, transport=httpx.MockTransport(handler)
    )
    got = remote.rerank("q", ["a", "b"])
    assert [(r.index, r.score) for r in got] == [(1, 0.9), (0, 0.1)]
    assert len(calls) == 4
    calls.clear()
    with pytest.raises(ServiceError, match="could not reach"):
        RemoteReranker(
            "http://127.0.0.1:9", retries=0, transport=httpx.MockTransport(handler)
        ).rerank("q", ["a"])

    async def ahandler(request: httpx.Request) -> httpx.Response:
        return handler(request)

    calls.clear()
    remote = RemoteReranker(
        "http://127.0.0.1:9", retries=2, backoff=0.0, async_transport=httpx.MockTransport(ahandler)
    )
    with pytest.raises(ServiceError) as info:  # 3 attempts: error, 429, 503
        asyncio.run(remote.arerank("q", ["a", "b"]))
    assert info.value.status_code == 503
    assert len(calls) == 3


def test_remote_reranker_refuses_a_malformed_answer() -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, json={"results": [{"index": 0, "relevance_score": 1}]})
    )
    with pytest.raises(ServiceError, match="every document"):
        RemoteReranker("http://127.0.0.1:9", transport=transport).rerank("q", ["a", "b"])


def test_llamaindex_adapter_through_the_server(server: str, reference: Reranker) -> None:
    from llama_index.core.schema import QueryBundle
    from llama_index.postprocessor.crossrank import CrossrankRerank

    postprocessor = CrossrankRerank(reranker=RemoteReranker(server, api_key=KEY), top_n=3)
    out = postprocessor.postprocess_nodes(_nodes(), QueryBundle(QUERY))
    _close([(int(n.node.node_id), n.score) for n in out], _expected(reference, DOCS, 3))
    out = asyncio.run(postprocessor.apostprocess_nodes(_nodes(), QueryBundle(QUERY)))
    _close([(int(n.node.node_id), n.score) for n in out], _expected(reference, DOCS, 3))


def test_langchain_adapter_through_the_server(server: str, reference: Reranker) -> None:
    from langchain_core.documents import Document
    from langchain_crossrank import CrossrankReranker

    compressor = CrossrankReranker(reranker=RemoteReranker(server, api_key=KEY), top_n=3)
    docs = [Document(page_content=d, metadata={"i": i}) for i, d in enumerate(DOCS)]
    out = compressor.compress_documents(docs, QUERY)
    _close(
        [(d.metadata["i"], d.metadata["relevance_score"]) for d in out],
        _expected(reference, DOCS, 3),
    )
    out = asyncio.run(compressor.acompress_documents(docs, QUERY))
    _close(
        [(d.metadata["i"], d.metadata["relevance_score"]) for d in out],
        _expected(reference, DOCS, 3),
    )
