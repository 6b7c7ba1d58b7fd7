"""CrossrankCrossEncoder: LangChain's BaseCrossEncoder on the engine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.documents import Document
from langchain_crossrank import RELEVANCE_SCORE_KEY, CrossrankCrossEncoder, CrossrankReranker
from pydantic import ValidationError
from test_langchain_compressor import QUERY, make_docs

from crossrank import InvalidInputError, Reranker

TEXTS = [d.page_content for d in make_docs()]


class CountingScorer:
    """A deterministic SupportsScorePairs."""

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [float(len(set(q.split()) & set(d.split()))) for q, d in pairs]


def test_is_langchains_cross_encoder_in_every_import_path() -> None:
    from langchain_classic.retrievers.document_compressors.cross_encoder import (
        BaseCrossEncoder as ClassicBaseCrossEncoder,
    )
    from langchain_community.cross_encoders import BaseCrossEncoder as CommunityBaseCrossEncoder

    encoder = CrossrankCrossEncoder(reranker=CountingScorer())
    assert isinstance(encoder, BaseCrossEncoder)
    assert isinstance(encoder, ClassicBaseCrossEncoder)
    assert isinstance(encoder, CommunityBaseCrossEncoder)


def test_score_returns_python_floats_in_pair_order(tiny_engine: Reranker) -> None:
    encoder = CrossrankCrossEncoder(reranker=tiny_engine)
    pairs = [(QUERY, t) for t in TEXTS] + [("genes in cells", t) for t in TEXTS]
    scores = encoder.score(pairs)
    assert all(type(s) is float for s in scores)
    assert scores == pytest.approx(tiny_engine.score_pairs(pairs), abs=1e-6)
    assert encoder.score([]) == []


def test_builds_the_engine_from_options(tiny_model: Path, tiny_engine: Reranker) -> None:
    encoder = CrossrankCrossEncoder(model=tiny_model, device="cpu", activation="raw")
    assert isinstance(encoder.engine, Reranker)
    pairs = [(QUERY, t) for t in TEXTS]
    raw = encoder.score(pairs)
    # the tiny model's configuration asks for sigmoid probabilities; raw logits map onto them
    import math

    probabilities = [1 / (1 + math.exp(-x)) for x in raw]
    assert probabilities == pytest.approx(tiny_engine.score_pairs(pairs), abs=1e-6)
    with pytest.raises(InvalidInputError, match="not both"):
        CrossrankCrossEncoder(reranker=tiny_engine, activation="raw")
    with pytest.raises(ValidationError):
        CrossrankCrossEncoder(reranker=object())


def test_stock_cross_encoder_reranker_runs_on_the_engine(tiny_engine: Reranker) -> None:
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker

    docs = [Document(id=f"d{i}", page_content=t) for i, t in enumerate(TEXTS)]
    stock = CrossEncoderReranker(model=CrossrankCrossEncoder(reranker=tiny_engine), top_n=5)
    ours = CrossrankReranker(reranker=tiny_engine, top_n=5)
    stock_ids = [d.id for d in stock.compress_documents(docs, QUERY)]
    ours_docs = ours.compress_documents(docs, QUERY)
    assert stock_ids == [d.id for d in ours_docs]
    assert all(RELEVANCE_SCORE_KEY in d.metadata for d in ours_docs)
