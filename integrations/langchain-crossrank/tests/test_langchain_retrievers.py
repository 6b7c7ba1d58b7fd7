"""ScoredVectorStoreRetriever on langchain-core's in-memory store."""

from __future__ import annotations

import asyncio
import copy

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_crossrank import ScoredVectorStoreRetriever
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
