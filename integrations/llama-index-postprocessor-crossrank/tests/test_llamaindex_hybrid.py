"""End to end: LlamaIndex's own hybrid (QueryFusionRetriever over a vector retriever and the
BM25Retriever of llama-index-retrievers-bm25) reranked by CrossrankRerank in a query engine,
with tiny real models (a 2-layer bi-encoder for the embeddings, a 2-layer cross-encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from llama_index.core.schema import MetadataMode
from llama_index.postprocessor.crossrank import CrossrankRerank

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
def fusion_retriever(tiny_biencoder: Path) -> Any:
    """The example: vector and BM25 candidates fused by reciprocal rank, one query (no LLM
    rewriting)."""
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever

    documents = [Document(id_=f"d{i}", text=t) for i, t in enumerate(TEXTS)]
    embed_model = HuggingFaceEmbedding(model_name=str(tiny_biencoder), device="cpu")
    index = VectorStoreIndex.from_documents(documents, embed_model=embed_model)
    nodes = list(index.docstore.docs.values())
    return QueryFusionRetriever(
        [
            index.as_retriever(similarity_top_k=K),
            BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=K),
        ],
        similarity_top_k=2 * K,
        num_queries=1,
        mode="reciprocal_rerank",
        use_async=False,
        llm=MockLLM(),
    )


def test_the_hosts_hybrid_reranked_by_crossrank(fusion_retriever: Any, tiny_model: Path) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    rerank = CrossrankRerank(model=tiny_model, top_n=TOP_N, device="cpu")
    engine = RetrieverQueryEngine.from_args(
        fusion_retriever, llm=MockLLM(), node_postprocessors=[rerank]
    )
    query = "klotho gene knockout mice lifespan"
    candidates = fusion_retriever.retrieve(query)
    assert K <= len(candidates) <= 2 * K
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in candidates]
    # BM25 brings the lexical match whatever the (random) tiny embeddings rank first
    assert TEXTS[1] in texts

    response = engine.query(query)
    expected = rerank.engine.rerank(query, texts, top_n=TOP_N)
    nodes = response.source_nodes
    assert [n.node.node_id for n in nodes] == [candidates[r.index].node.node_id for r in expected]
    assert [n.score for n in nodes] == pytest.approx([r.score for r in expected], abs=1e-5)
    assert all(type(n.score) is float for n in nodes)
    # the fusion retriever's nodes keep their own (RRF) scores: copies were returned
    assert [c.score for c in fusion_retriever.retrieve(query)] == [c.score for c in candidates]
