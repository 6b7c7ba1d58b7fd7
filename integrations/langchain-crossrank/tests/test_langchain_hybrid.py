"""End to end: LangChain's own hybrid (EnsembleRetriever of BM25Retriever and a FAISS store)
reranked by CrossrankReranker in a ContextualCompressionRetriever, with tiny real models (a
2-layer bi-encoder for the embeddings, a 2-layer cross-encoder for the reranker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_crossrank import RELEVANCE_SCORE_KEY, CrossrankReranker

from crossrank import Reranker

TEXTS = [
    "Vitamin D deficiency raises blood pressure in adults.",
    "Mice lacking the klotho gene age faster and die young.",
    "Protein folding errors cause amyloid plaques in neurons.",
    "Statins lower LDL cholesterol and cardiovascular events.",
    "Aspirin reduces the risk of colorectal cancer over decades.",
    "Zebrafish regenerate heart tissue after injury.",
    "Metformin improves insulin sensitivity in type 2 diabetes.",
    "Gut microbiota composition shifts with a high-fat diet.",
]
K = 3
TOP_N = 2


@pytest.fixture(scope="module")
def tiny_biencoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crossrank.testing import build_tiny_biencoder

    return build_tiny_biencoder(tmp_path_factory.mktemp("tiny-bi"))


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return [Document(page_content=t, metadata={"n": i}, id=f"d{i}") for i, t in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def hybrid(documents: list[Document], tiny_biencoder: Path) -> Any:
    """The example: BM25 (rank-bm25) and FAISS candidates fused by reciprocal rank."""
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS
    from langchain_core.embeddings import Embeddings

    from crossrank.retrieval import DenseRetriever

    class TinyEmbeddings(Embeddings):
        """The tiny bi-encoder through crossrank's encoder (normalised vectors)."""

        def __init__(self) -> None:
            self.model = DenseRetriever(tiny_biencoder, device="cpu")

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self.model.encode_documents(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.model.encode_queries([text])[0].tolist()

    bm25 = BM25Retriever.from_documents(documents, k=K)
    dense = FAISS.from_documents(documents, TinyEmbeddings()).as_retriever(search_kwargs={"k": K})
    return EnsembleRetriever(retrievers=[bm25, dense], weights=[0.5, 0.5])


def test_the_hosts_hybrid_reranked_by_crossrank(
    hybrid: Any, documents: list[Document], tiny_model: Path
) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    engine = Reranker(tiny_model, device="cpu")
    retriever = ContextualCompressionRetriever(
        base_compressor=CrossrankReranker(reranker=engine, top_n=TOP_N), base_retriever=hybrid
    )
    query = "klotho gene knockout mice lifespan"
    candidates = hybrid.invoke(query)
    assert K <= len(candidates) <= 2 * K
    # BM25 brings the lexical match whatever the (random) tiny embeddings rank first
    assert "d1" in [d.id for d in candidates]

    out = retriever.invoke(query)
    expected = engine.rerank(query, [d.page_content for d in candidates], top_n=TOP_N)
    assert [d.id for d in out] == [candidates[r.index].id for r in expected]
    assert [d.metadata[RELEVANCE_SCORE_KEY] for d in out] == pytest.approx(
        [r.score for r in expected], abs=1e-5
    )
    for doc in out:
        original = next(d for d in documents if d.id == doc.id)
        assert doc.page_content == original.page_content
        assert doc.metadata["n"] == original.metadata["n"]
        assert RELEVANCE_SCORE_KEY not in original.metadata  # the caller's copy is untouched
