"""CrossrankReranker and CrossrankCrossEncoder pickled, deep-copied and validated from a dump;
the read keys of the returned documents; the Cohere-style ``rerank``."""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_crossrank import RELEVANCE_SCORE_KEY, CrossrankCrossEncoder, CrossrankReranker

from crossrank import InvalidInputError, Reranker
from crossrank.adapters import SPAN_KEY, TRUNCATED_KEY, WINDOWS_KEY, EngineNotSerializableError

QUERY = "vitamin d and cancer risk"
TEXTS = ["vitamin d lowers cancer risk", "blood pressure in mice", "genes in human cells"]
LONG = " ".join(["the effect of vitamin d on the risk of cancer in human patients"] * 40)
PAIRS = [(QUERY, t) for t in TEXTS]


def documents(texts: list[str]) -> list[Document]:
    return [Document(id=f"d{i}", page_content=t, metadata={"i": i}) for i, t in enumerate(texts)]


def scored(compressor: CrossrankReranker) -> list[tuple[str | None, float]]:
    out = compressor.compress_documents(documents(TEXTS), QUERY)
    return [(d.id, d.metadata[RELEVANCE_SCORE_KEY]) for d in out]


# -- pickle, deepcopy, dumps ------------------------------------------------------------------
def test_compressor_and_cross_encoder_pickle_with_their_engine_options(tiny_model: Path) -> None:
    compressor = CrossrankReranker(model=tiny_model, device="cpu", max_length=64, top_n=2)
    clone = pickle.loads(pickle.dumps(compressor))
    assert scored(clone) == scored(compressor)
    assert clone.engine.max_length == 64  # type: ignore[attr-defined]
    twin = copy.deepcopy(compressor)
    assert twin.engine is compressor.engine
    assert scored(twin) == scored(compressor)

    encoder = CrossrankCrossEncoder(model=tiny_model, device="cpu")
    assert pickle.loads(pickle.dumps(encoder)).score(PAIRS) == encoder.score(PAIRS)
    assert copy.deepcopy(encoder).engine is encoder.engine


def test_an_injected_real_engine_refuses_pickling_but_deep_copies(tiny_engine: Reranker) -> None:
    for component in (
        CrossrankReranker(reranker=tiny_engine),
        CrossrankCrossEncoder(reranker=tiny_engine),
    ):
        name = type(component).__name__
        with pytest.raises(EngineNotSerializableError, match=rf"Build the {name} from engine"):
            pickle.dumps(component)
        assert copy.deepcopy(component).engine is tiny_engine


def test_a_picklable_injected_engine_travels(fake: Any) -> None:
    clone = pickle.loads(pickle.dumps(CrossrankReranker(reranker=fake, top_n=1)))
    assert type(clone.engine) is type(fake)
    assert len(clone.compress_documents(documents(TEXTS), QUERY)) == 1


def test_model_validate_of_a_dump(tiny_model: Path, fake: Any) -> None:
    compressor = CrossrankReranker(model=tiny_model, device="cpu", top_n=None)
    assert scored(CrossrankReranker.model_validate(compressor.model_dump())) == scored(compressor)

    injected = CrossrankReranker(reranker=fake).model_dump(mode="json")
    assert injected["reranker"] == "<injected engine crossrank.testing.FakeReranker>"
    with pytest.raises(EngineNotSerializableError, match="pass it again"):
        CrossrankReranker.model_validate(injected)
    with pytest.raises(EngineNotSerializableError, match="pass it again"):
        CrossrankReranker(**injected)
    assert CrossrankReranker(**{**injected, "reranker": fake}).engine is fake


# -- what the model read ----------------------------------------------------------------------
def test_documents_say_what_the_model_read_and_one_warning_is_logged(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    compressor = CrossrankReranker(model=tiny_model, device="cpu", max_length=32, top_n=None)
    given = documents([LONG, *TEXTS])
    given[1].metadata[TRUNCATED_KEY] = "stale"
    logger = "langchain_crossrank.compressor"
    with caplog.at_level(logging.WARNING, logger=logger):
        out = compressor.compress_documents(given, QUERY)
        asyncio.run(compressor.acompress_documents(given, QUERY))
        compressor.compress_documents(given, QUERY)
    assert len([r for r in caplog.records if r.name == logger]) == 1

    by_id = {d.id: d.metadata for d in out}
    assert (by_id["d0"][TRUNCATED_KEY], by_id["d0"][WINDOWS_KEY]) == (True, 1)
    assert (by_id["d1"][TRUNCATED_KEY], by_id["d1"][WINDOWS_KEY]) == (False, 1)
    assert list(by_id["d1"]) == ["i", TRUNCATED_KEY, WINDOWS_KEY, SPAN_KEY, RELEVANCE_SCORE_KEY]
    # The engine's span: the kept head of the truncated document, the whole of the other.
    start, end = by_id["d0"][SPAN_KEY]
    assert start == 0 and 0 < end < len(LONG)
    assert by_id["d1"][SPAN_KEY] == [0, len(given[1].page_content)]
    assert given[1].metadata[TRUNCATED_KEY] == "stale"

    chunked = CrossrankReranker(
        model=tiny_model, device="cpu", max_length=32, overflow="chunk", top_n=None
    )
    best = {d.id: d.metadata for d in chunked.compress_documents(given, QUERY)}
    assert best["d0"][TRUNCATED_KEY] is False
    assert best["d0"][WINDOWS_KEY] > 1
    assert best["d1"][WINDOWS_KEY] == 1


# -- rerank(documents, query, top_n) ----------------------------------------------------------
def test_rerank_returns_indices_and_scores_like_cohere(fake: Any) -> None:
    compressor = CrossrankReranker(reranker=fake, top_n=1)
    given: list[Any] = [TEXTS[0], Document(page_content=TEXTS[1]), {"text": TEXTS[2], "x": 1}]
    ranked = compressor.rerank(given, QUERY)
    assert len(ranked) == 3  # top_n=None: all of them, whatever the compressor's top_n
    assert sorted(r["index"] for r in ranked) == [0, 1, 2]
    assert [set(r) for r in ranked] == [{"index", "relevance_score"}] * 3
    for r in ranked:
        assert type(r["relevance_score"]) is float
        assert r["relevance_score"] == fake.score(QUERY, TEXTS[r["index"]])
    assert compressor.rerank(given, QUERY, top_n=2) == ranked[:2]
    assert compressor.rerank([], QUERY) == []


@pytest.mark.parametrize("top_n", [0, -1, 2.0, True])
def test_rerank_checks_top_n_as_the_constructor_does(fake: Any, top_n: Any) -> None:
    message = f"top_n must be a positive integer, got {top_n!r}"
    with pytest.raises(InvalidInputError, match=message):
        CrossrankReranker(reranker=fake).rerank(TEXTS, QUERY, top_n=top_n)
    with pytest.raises(InvalidInputError, match=message):
        CrossrankReranker(reranker=fake, top_n=top_n)
    assert fake.calls == []


def test_rerank_refuses_what_is_not_a_document(fake: Any) -> None:
    with pytest.raises(InvalidInputError, match="document 1 must be a string"):
        CrossrankReranker(reranker=fake).rerank(["fine", {"title": "no text"}], QUERY)
