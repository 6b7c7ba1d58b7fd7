"""Rankings agree with LangChain's CrossEncoderReranker + HuggingFaceCrossEncoder on the same
local model, for the pairs that fit the model's max_length (where both read the same tokens)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_crossrank import RELEVANCE_SCORE_KEY, CrossrankReranker
from test_langchain_compressor import QUERY, make_docs

from crossrank import Reranker

TOLERANCE = 1e-4


def hf_cross_encoder(model: Path) -> Any:
    """LangChain's sentence-transformers cross-encoder on a local folder, in fp32 on CPU."""
    import torch

    try:
        from langchain_huggingface import HuggingFaceCrossEncoder  # type: ignore[attr-defined]
    except ImportError:
        from langchain_community.cross_encoders import HuggingFaceCrossEncoder
    return HuggingFaceCrossEncoder(
        model_name=str(model),
        model_kwargs={"device": "cpu", "model_kwargs": {"dtype": torch.float32}},
    )


def stock_reranker(cross_encoder: Any, top_n: int) -> Any:
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker

    return CrossEncoderReranker(model=cross_encoder, top_n=top_n)


def assert_same_ranking(
    query: str, docs: list[Document], ours: CrossrankReranker, cross_encoder: Any
) -> None:
    theirs = stock_reranker(cross_encoder, len(docs)).compress_documents(docs, query)
    mine = ours.compress_documents(docs, query)
    scores = cross_encoder.score([(query, d.page_content) for d in docs])
    reference = {d.id: float(s) for d, s in zip(docs, scores, strict=True)}
    got = {d.id: d.metadata[RELEVANCE_SCORE_KEY] for d in mine}
    assert got == pytest.approx(reference, abs=TOLERANCE)
    # the same order, up to swaps of documents whose scores tie within the tolerance
    assert sorted(d.id for d in mine) == sorted(d.id for d in theirs)
    for earlier, later in itertools.pairwise(theirs):
        assert got[earlier.id] >= got[later.id] - TOLERANCE


def test_rankings_agree_on_the_tiny_model(tiny_model: Path, tiny_engine: Reranker) -> None:
    texts = [d.page_content for d in make_docs()] + ["rna and dna in the cells of mice"]
    docs = [Document(id=f"d{i}", page_content=t) for i, t in enumerate(texts)]
    ours = CrossrankReranker(reranker=tiny_engine, top_n=None)
    assert_same_ranking(QUERY, docs, ours, hf_cross_encoder(tiny_model))


@pytest.mark.slow
def test_rankings_agree_on_the_starter_model_over_faiss_candidates(
    starter_model: Path, starter_engine: Reranker, faiss_store: Any, scifact_queries: list[str]
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(starter_model))
    cross_encoder = hf_cross_encoder(starter_model)
    ours = CrossrankReranker(reranker=starter_engine, top_n=None)
    compared = 0
    for query in scifact_queries[:5]:
        candidates = faiss_store.similarity_search(query, k=20)
        fitting = [
            d
            for d in candidates
            if len(tokenizer(query, d.page_content)["input_ids"]) <= starter_engine.max_length
        ]
        assert_same_ranking(query, fitting, ours, cross_encoder)
        compared += len(fitting)
    assert compared >= 50  # most 400-character chunks fit the starter's 128 tokens
