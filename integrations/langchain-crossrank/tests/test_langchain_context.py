"""CrossrankContextPacker: a document compressor after CrossrankReranker and a runnable for
LCEL chains; end to end, the prompt the LLM receives holds the packed context."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_crossrank import (
    CITATION_KEY,
    RELEVANCE_SCORE_KEY,
    SPAN_KEY,
    CrossrankContextPacker,
    CrossrankReranker,
)

from crossrank.errors import InvalidInputError
from crossrank.testing import FakeReranker


@pytest.fixture(scope="module")
def minilm_path() -> Path:
    from crossrank.paths import default_biencoder

    return Path(default_biencoder())


def words(text: str) -> int:
    return len(text.split())


def sentences(tag: str, n: int) -> str:
    return " ".join(f"Sentence {i} about {tag} holds a {tag} fact." for i in range(n))


def scored_docs() -> list[Document]:
    texts = [
        sentences("aspirin", 20),
        sentences("coffee", 4),
        sentences("aspirin", 20),
        sentences("tea", 4),
    ]
    return [
        Document(id=f"d{i}", page_content=t, metadata={"source": f"s{i}", RELEVANCE_SCORE_KEY: s})
        for i, (t, s) in enumerate(zip(texts, [3.0, 2.0, 1.0, 0.5]))
    ]


def test_compressor_returns_the_packed_passages() -> None:
    docs = scored_docs()
    before = copy.deepcopy(docs)
    packer = CrossrankContextPacker(budget_tokens=120, tokenizer=words)
    out = packer.compress_documents(docs, "aspirin")
    assert [d.id for d in out] == ["d0", "d1", "d3"]  # d2 duplicates d0
    assert [d.metadata[CITATION_KEY] for d in out] == [1, 2, 3]
    assert all(list(d.metadata)[-1] == RELEVANCE_SCORE_KEY for d in out)
    assert [d.metadata["source"] for d in out] == ["s0", "s1", "s3"]
    context = "\n\n".join(d.page_content for d in out)
    assert context == packer.pack(docs, "aspirin").text
    assert words(context) <= 120
    for d in out:
        start, end = d.metadata[SPAN_KEY]
        source = next(s for s in docs if s.id == d.id)
        assert (
            d.page_content
            == f"[{d.metadata[CITATION_KEY]}] (source: {d.id})\n" + source.page_content[start:end]
        )
    assert docs == before


def test_span_in_metadata_and_id_key() -> None:
    text = sentences("intro", 30) + " The key finding is here. " + sentences("outro", 30)
    at = text.index("The key finding")
    doc = Document(
        page_content=text,
        metadata={RELEVANCE_SCORE_KEY: 1.0, SPAN_KEY: [at, at + 5], "doc_id": "X1"},
    )
    packer = CrossrankContextPacker(budget_tokens=40, tokenizer=words, id_key="doc_id")
    (out,) = packer.compress_documents([doc], "q")
    assert out.page_content.startswith("[1] (source: X1)\nThe key finding is here.")


def test_in_a_pipeline_after_the_reranker(fake: FakeReranker, minilm_path: Path) -> None:
    from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline
    from transformers import AutoTokenizer

    docs = [Document(id=f"d{i}", page_content=sentences(f"topic{i}", 10 + i)) for i in range(10)]
    pipeline = DocumentCompressorPipeline(
        transformers=[
            CrossrankReranker(reranker=fake, top_n=None),
            CrossrankContextPacker(budget_tokens=200, tokenizer=minilm_path),
        ]
    )
    out = pipeline.compress_documents(docs, "topic7 fact")
    aout = asyncio.run(pipeline.acompress_documents(docs, "topic7 fact"))
    assert [d.page_content for d in out] == [d.page_content for d in aout]
    assert out[0].id == "d7"
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path))
    context = "\n\n".join(d.page_content for d in out)
    assert len(tokenizer(context, add_special_tokens=False)["input_ids"]) <= 200


def test_errors() -> None:
    packer = CrossrankContextPacker(tokenizer=words)
    with pytest.raises(InvalidInputError, match="CrossrankReranker"):
        packer.compress_documents([Document(page_content="a b")], "q")
    with pytest.raises(InvalidInputError, match="question"):
        packer.as_runnable().invoke({"documents": scored_docs()})
    assert packer.compress_documents([], "q") == []
    assert packer.as_runnable().invoke({"question": "q", "documents": []})["context"] == ""


# -- end to end ---------------------------------------------------------------------------------
class PromptRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.prompts: list[str] = []

    def on_llm_start(self, serialized: Any, prompts: list[str], **kwargs: Any) -> None:
        self.prompts.extend(prompts)


@pytest.fixture(scope="module")
def small_store(scifact: Any, hf_embeddings: Any) -> Any:
    """30 SciFact abstracts (the judged ones of two claims first) in ~400-character chunks."""
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    claims = [scifact.queries[qid] for qid in list(scifact.qrels)[:2]]
    splitter = RecursiveCharacterTextSplitter(chunk_size=400, chunk_overlap=0)
    chunks = [
        Document(id=f"{doc_id}-{j}", page_content=text, metadata={"doc_id": doc_id})
        for doc_id in scifact.judged_first_ids(claims, 30)
        for j, text in enumerate(splitter.split_text(scifact.corpus[doc_id].full_text))
    ]
    return FAISS.from_documents(chunks, hf_embeddings), [c.text for c in claims]


@pytest.mark.slow
def test_lcel_chain_prompt_holds_the_packed_context(
    small_store: Any, starter_engine: Any, minilm_path: Path
) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline
    from langchain_core.language_models import FakeListLLM
    from langchain_core.prompts import PromptTemplate

    store, claims = small_store
    base = store.as_retriever(search_kwargs={"k": 15})
    reranked = ContextualCompressionRetriever(
        base_compressor=CrossrankReranker(reranker=starter_engine, top_n=None), base_retriever=base
    )
    packer = CrossrankContextPacker(budget_tokens=256, tokenizer=minilm_path)
    prompt = PromptTemplate.from_template(
        "Answer with citations like [1].\n\nContext:\n{context}\n\nQuestion: {question}\nAnswer:"
    )
    llm = FakeListLLM(responses=["It does [1]."] * 4)
    chain = packer.as_runnable(reranked) | prompt | llm
    query = claims[0]
    expected = packer.pack(reranked.invoke(query), query)
    assert expected.n_tokens <= 256 and len(expected.passages) >= 2
    for run in ("sync", "async"):
        recorder = PromptRecorder()
        config = {"callbacks": [recorder]}
        answer = (
            chain.invoke(query, config)
            if run == "sync"
            else asyncio.run(chain.ainvoke(query, config))
        )
        assert answer == "It does [1]."
        (sent,) = recorder.prompts
        assert f"Context:\n{expected.text}\n\nQuestion: {query}" in sent
        for p in expected.passages:
            assert f"[{p.citation}] (source: {p.source_id})" in sent

    # the compressor form: reranker then packer in one pipeline, documents joined by the chain
    pipeline = ContextualCompressionRetriever(
        base_compressor=DocumentCompressorPipeline(
            transformers=[CrossrankReranker(reranker=starter_engine, top_n=None), packer]
        ),
        base_retriever=base,
    )
    docs = pipeline.invoke(query)
    assert "\n\n".join(d.page_content for d in docs) == expected.text
    assert [d.metadata[CITATION_KEY] for d in docs] == [p.citation for p in expected.passages]
