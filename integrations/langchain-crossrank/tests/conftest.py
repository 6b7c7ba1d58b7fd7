from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from langchain_core.documents import Document

from crossrank.paths import shared_starter_dir
from crossrank.testing import FakeReranker

STARTER = shared_starter_dir()


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
    if not (STARTER / "config.json").is_file():
        pytest.fail(f"the starter cross-encoder is missing at {STARTER}")
    return STARTER


@pytest.fixture(scope="session")
def starter_engine(starter_model: Path) -> Any:
    from crossrank import Reranker

    return Reranker(starter_model, device="cpu")


@pytest.fixture(scope="session")
def scifact() -> Any:
    from crossrank.data import load_beir
    from crossrank.paths import shared_data_dir

    path = shared_data_dir() / "scifact"
    if not (path / "corpus.jsonl").is_file():
        pytest.fail(f"shared data not found at {path}; set CROSSRANK_DATA")
    return load_beir(path, split="test")


@pytest.fixture(scope="session")
def scifact_queries(scifact: Any) -> list[str]:
    """Ten SciFact test claims that have relevance judgments."""
    return [scifact.queries[qid].text for qid in list(scifact.qrels)[:10]]


@pytest.fixture(scope="session")
def scifact_chunks(scifact: Any) -> list[Document]:
    """About 200 SciFact abstracts (the judged ones of the first test claims first), split into
    ~400-character chunks as a LangChain pipeline would, each with an id and metadata."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    claims = [scifact.queries[qid] for qid in list(scifact.qrels)[:10]]
    wanted = scifact.judged_first_ids(claims, 200)
    splitter = RecursiveCharacterTextSplitter(chunk_size=400, chunk_overlap=0)
    chunks: list[Document] = []
    for doc_id in wanted:
        doc = scifact.corpus[doc_id]
        for j, text in enumerate(splitter.split_text(doc.full_text)):
            chunks.append(
                Document(
                    id=f"{doc_id}-{j}",
                    page_content=text,
                    metadata={"source": "scifact", "doc_id": doc_id, "chunk": j},
                )
            )
    return chunks


@pytest.fixture(scope="session")
def hf_embeddings() -> Any:
    """all-MiniLM-L6-v2 (offline) as LangChain embeddings: langchain_huggingface when it is
    installed, else langchain_community's (deprecated) class of the same name."""
    from crossrank.paths import default_biencoder

    try:
        from langchain_huggingface import HuggingFaceEmbeddings
    except ImportError:
        from langchain_community.embeddings import HuggingFaceEmbeddings
    return HuggingFaceEmbeddings(
        model_name=default_biencoder(),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )


@pytest.fixture(scope="session")
def faiss_store(scifact_chunks: list[Document], hf_embeddings: Any) -> Any:
    from langchain_community.vectorstores import FAISS

    return FAISS.from_documents(scifact_chunks, hf_embeddings)
