"""ScoredVectorStoreRetriever on langchain-core's in-memory store and on FAISS, and langchain-tests'
standard retriever tests."""

from __future__ import annotations

import asyncio
import copy
import warnings
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_crossrank import ScoredVectorStoreRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests
from pydantic import ValidationError

from crossrank import InvalidInputError

TEXTS = ["vitamin d and cancer", "blood pressure in mice", "genes in human cells", "rna in cells"]


@pytest.fixture
def store() -> InMemoryVectorStore:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents(
        [
            Document(id=f"d{i}", page_content=t, metadata={"score": "old", "n": i})
            for i, t in enumerate(TEXTS)
        ]
    )
    return store


def test_keeps_the_stores_relevance_scores(store: InMemoryVectorStore) -> None:
    before = copy.deepcopy(store.store)
    retriever = ScoredVectorStoreRetriever(vectorstore=store, k=3, score_type="raw")
    docs = retriever.invoke("cancer")
    expected = store.similarity_search_with_score("cancer", k=3)
    assert [d.id for d in docs] == [d.id for d, _ in expected]
    for doc, (original, score) in zip(docs, expected, strict=True):
        assert type(doc.metadata["score"]) is float
        assert doc.metadata["score"] == pytest.approx(float(score))
        assert list(doc.metadata) == ["n", "score"]
        assert doc.page_content == original.page_content
    assert store.store == before
    assert [d.metadata for d in asyncio.run(retriever.ainvoke("cancer"))] == [
        d.metadata for d in docs
    ]


def test_custom_key_and_search_kwargs(store: InMemoryVectorStore) -> None:
    retriever = ScoredVectorStoreRetriever(
        vectorstore=store,
        k=4,
        score_key="dense",
        score_type="raw",
        search_kwargs={"filter": lambda doc: doc.metadata["n"] % 2 == 0},
    )
    docs = retriever.invoke("cells")
    assert sorted(d.id for d in docs) == ["d0", "d2"]
    assert all(list(d.metadata) == ["score", "n", "dense"] for d in docs)
    with pytest.raises(ValidationError):
        ScoredVectorStoreRetriever(vectorstore=store, k=0)


def test_store_without_relevance_scores_gets_a_clear_error(store: InMemoryVectorStore) -> None:
    retriever = ScoredVectorStoreRetriever(vectorstore=store)
    with pytest.raises(InvalidInputError, match="score_type='raw'"):
        retriever.invoke("cells")
    with pytest.raises(InvalidInputError, match="InMemoryVectorStore defines no relevance"):
        asyncio.run(retriever.ainvoke("cells"))


def test_k_and_filter_given_at_invoke_are_honoured(store: InMemoryVectorStore) -> None:
    retriever = ScoredVectorStoreRetriever(vectorstore=store, k=4, score_type="raw")
    assert len(retriever.invoke("cells")) == 4
    assert len(retriever.invoke("cells", k=2)) == 2
    assert len(asyncio.run(retriever.ainvoke("cells", k=1))) == 1
    even = retriever.invoke("cells", filter=lambda doc: doc.metadata["n"] % 2 == 0)
    assert sorted(d.id for d in even) == ["d0", "d2"]
    with pytest.raises(InvalidInputError, match="k must be a positive integer"):
        retriever.invoke("cells", k=0)


# -- FAISS with its default L2 distance -------------------------------------------------------
@pytest.fixture
def faiss_l2() -> Any:
    from langchain_community.vectorstores import FAISS

    # the fake embeddings are not unit length: L2 distances exceed sqrt(2), where FAISS's
    # relevance function (1 - distance / sqrt(2)) goes negative
    docs = [
        Document(id=f"d{i}", page_content=f"{t} {i}", metadata={"n": i % 4})
        for i, t in enumerate(TEXTS * 3)
    ]
    return FAISS.from_documents(docs, DeterministicFakeEmbedding(size=16))


def test_faiss_l2_relevance_scores_stay_in_0_1_without_warnings(faiss_l2: Any) -> None:
    raw = faiss_l2.similarity_search_with_score("cancer", k=6)
    relevance = faiss_l2._select_relevance_score_fn()
    assert min(relevance(d) for _, d in raw) < 0  # what LangChain would warn about
    retriever = ScoredVectorStoreRetriever(vectorstore=faiss_l2, k=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        docs = retriever.invoke("cancer")
        adocs = asyncio.run(retriever.ainvoke("cancer"))
    assert [d.id for d in docs] == [d.id for d, _ in raw]
    scores = [d.metadata["score"] for d in docs]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    expected = [min(1.0, max(0.0, relevance(dist))) for _, dist in raw]
    assert scores == pytest.approx(expected)
    assert [d.metadata for d in adocs] == [d.metadata for d in docs]


def test_faiss_filter_k_and_threshold_at_invoke(faiss_l2: Any) -> None:
    from langchain_community.vectorstores import FAISS

    retriever = ScoredVectorStoreRetriever(vectorstore=faiss_l2, k=6)
    only_two = retriever.invoke("cells", filter={"n": 2}, k=2)
    assert [d.metadata["n"] for d in only_two] == [2, 2]
    # the store's own relevance function is the one applied
    store = FAISS(
        faiss_l2.embedding_function,
        faiss_l2.index,
        faiss_l2.docstore,
        faiss_l2.index_to_docstore_id,
        relevance_score_fn=lambda distance: 1.0 / (1.0 + distance),
    )
    retriever = ScoredVectorStoreRetriever(vectorstore=store, k=6)
    everything = retriever.invoke("cells", k=12)
    raw = store.similarity_search_with_score("cells", k=12)
    assert [d.metadata["score"] for d in everything] == pytest.approx(
        [1.0 / (1.0 + dist) for _, dist in raw]
    )
    cut = sorted(d.metadata["score"] for d in everything)[-3]
    kept = retriever.invoke("cells", k=12, score_threshold=cut)
    assert [d.id for d in kept] == [d.id for d in everything if d.metadata["score"] >= cut]
    assert len(kept) == 3


@pytest.mark.asyncio
class TestScoredVectorStoreRetrieverStandard(RetrieversIntegrationTests):
    """langchain-tests' standard retriever tests, on FAISS with its default L2 distance."""

    @property
    def retriever_constructor(self) -> type[ScoredVectorStoreRetriever]:
        return ScoredVectorStoreRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        from langchain_community.vectorstores import FAISS

        texts = [f"{t} {i}" for i, t in enumerate(TEXTS * 2)]
        return {"vectorstore": FAISS.from_texts(texts, DeterministicFakeEmbedding(size=16))}

    @property
    def retriever_query_example(self) -> str:
        return "vitamin d and cancer"
