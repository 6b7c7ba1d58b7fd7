"""CrossrankRerank pickled, deep-copied and dumped; what it says about truncated texts; and
SentenceTransformerRerank's ``cache_folder`` and ``cross_encoder_kwargs``."""

from __future__ import annotations

import copy
import dataclasses
import logging
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.postprocessor.crossrank import CrossrankRerank

from crossrank import InvalidInputError, ModelNotFoundError, Reranker
from crossrank.adapters import SPAN_KEY, TRUNCATED_KEY, WINDOWS_KEY, EngineNotSerializableError
from crossrank.testing import FakeReranker
from crossrank.types import RerankResult

QUERY = "vitamin d and cancer risk"
SHORT = ["vitamin d lowers cancer risk", "blood pressure in mice", "genes in human cells"]
LONG = " ".join(["the effect of vitamin d on the risk of cancer in human patients"] * 40)


def nodes(texts: list[str]) -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(id_=f"n{i}", text=t, metadata={"k": i}), score=1.0 - i / 10)
        for i, t in enumerate(texts)
    ]


def ranking(rerank: CrossrankRerank) -> list[tuple[str, float | None]]:
    return [
        (n.node.node_id, n.score) for n in rerank.postprocess_nodes(nodes(SHORT), query_str=QUERY)
    ]


# -- pickle and deepcopy ----------------------------------------------------------------------
def test_pickles_with_its_engine_options_and_deep_copies_sharing_the_engine(
    tiny_model: Path,
) -> None:
    rerank = CrossrankRerank(model=tiny_model, device="cpu", max_length=64, top_n=2)
    clone = pickle.loads(pickle.dumps(rerank))
    assert (clone.model, clone.max_length, clone.top_n) == (tiny_model, 64, 2)
    assert ranking(clone) == ranking(rerank)
    assert isinstance(clone.engine, Reranker)
    assert clone.engine.max_length == 64

    twin = copy.deepcopy(rerank)
    assert twin.engine is rerank.engine
    assert ranking(twin) == ranking(rerank)


def test_pickle_carries_the_model_the_original_resolved(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROSSRANK_RERANKER", str(tiny_model))
    rerank = CrossrankRerank(device="cpu", top_n=None)
    data = pickle.dumps(rerank)
    monkeypatch.setenv("CROSSRANK_RERANKER", str(tmp_path / "elsewhere"))
    clone = pickle.loads(data)
    assert clone.model == str(tiny_model)
    assert ranking(clone) == ranking(rerank)


def test_an_injected_engine_travels_only_when_it_pickles(fake: Any, tiny_engine: Reranker) -> None:
    clone = pickle.loads(pickle.dumps(CrossrankRerank(reranker=fake, top_n=1)))
    assert type(clone.engine) is type(fake)
    assert len(clone.postprocess_nodes(nodes(SHORT), query_str=QUERY)) == 1

    shared = CrossrankRerank(reranker=tiny_engine)
    with pytest.raises(EngineNotSerializableError, match=r"CrossrankRerank\(model=\.\.\."):
        pickle.dumps(shared)
    assert copy.deepcopy(shared).engine is tiny_engine


# -- dumps ------------------------------------------------------------------------------------
def test_a_dump_of_engine_options_rebuilds_the_same_postprocessor(tiny_model: Path) -> None:
    rerank = CrossrankRerank(model=tiny_model, device="cpu", top_n=None, max_length=64)
    again = CrossrankRerank.from_dict(rerank.to_dict())
    validated = CrossrankRerank.model_validate(rerank.model_dump())
    for other in (again, validated):
        assert other.engine.max_length == 64  # type: ignore[attr-defined]
        assert ranking(other) == ranking(rerank)


def test_a_dump_of_an_injected_engine_asks_for_the_engine(fake: Any) -> None:
    rerank = CrossrankRerank(reranker=fake, top_n=1)
    data = rerank.to_dict()
    assert data["reranker"] == "<injected engine crossrank.testing.FakeReranker>"
    with pytest.raises(EngineNotSerializableError, match="pass it again"):
        CrossrankRerank.from_dict(data)
    with pytest.raises(EngineNotSerializableError, match="pass it again"):
        CrossrankRerank.model_validate(rerank.model_dump())
    restored = CrossrankRerank.from_dict(data, reranker=fake)
    assert restored.engine is fake
    assert len(restored.postprocess_nodes(nodes(SHORT), query_str=QUERY)) == 1


# -- truncation -------------------------------------------------------------------------------
def test_returned_nodes_say_what_the_model_read_and_one_warning_is_logged(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rerank = CrossrankRerank(model=tiny_model, device="cpu", max_length=32, top_n=None)
    given = nodes([LONG, *SHORT])
    before = [(n.node.metadata.copy(), list(n.node.excluded_llm_metadata_keys)) for n in given]
    logger = "llama_index.postprocessor.crossrank.base"
    with caplog.at_level(logging.WARNING, logger=logger):
        outs = [rerank.postprocess_nodes(given, query_str=QUERY) for _ in range(3)]
    warnings = [r for r in caplog.records if r.name == logger]
    assert len(warnings) == 1
    assert TRUNCATED_KEY in warnings[0].getMessage()

    by_id = {n.node.node_id: n for n in outs[0]}
    long_node = by_id["n0"].node
    assert long_node.metadata[TRUNCATED_KEY] is True
    assert long_node.metadata[WINDOWS_KEY] == 1
    for i in (1, 2, 3):
        assert by_id[f"n{i}"].node.metadata[TRUNCATED_KEY] is False
    # the keys stay out of what the LLM and the embedding model read; the inputs are unchanged
    for mode in (MetadataMode.LLM, MetadataMode.EMBED):
        assert "crossrank" not in long_node.get_content(metadata_mode=mode)
    assert [(n.node.metadata, n.node.excluded_llm_metadata_keys) for n in given] == before


class SpanFake(FakeReranker):
    """Says it read the first 20 characters of each document."""

    def rerank(self, *args: Any, **kwargs: Any) -> list[RerankResult]:
        return [
            dataclasses.replace(
                r, truncated=len(r.document) > 20, span=(0, min(20, len(r.document)))
            )
            for r in super().rerank(*args, **kwargs)
        ]


def test_the_span_is_written_and_stale_read_keys_are_replaced() -> None:
    given = nodes(SHORT)
    given[0].node.metadata.update({SPAN_KEY: [5, 6], TRUNCATED_KEY: "stale"})
    out = CrossrankRerank(reranker=SpanFake(), top_n=None).postprocess_nodes(given, query_str=QUERY)
    by_id = {n.node.node_id: n.node.metadata for n in out}
    assert by_id["n0"][SPAN_KEY] == [0, 20]
    assert by_id["n0"][TRUNCATED_KEY] is True
    assert by_id["n2"][SPAN_KEY] == [0, len(SHORT[2])]
    plain = CrossrankRerank(reranker=FakeReranker(), top_n=None).postprocess_nodes(
        given, query_str=QUERY
    )
    stale = next(n.node.metadata for n in plain if n.node.node_id == "n0")
    assert SPAN_KEY not in stale
    assert stale[TRUNCATED_KEY] is False
    assert given[0].node.metadata[TRUNCATED_KEY] == "stale"


def test_chunked_texts_report_their_windows(tiny_model: Path) -> None:
    rerank = CrossrankRerank(
        model=tiny_model, device="cpu", max_length=32, overflow="chunk", top_n=None
    )
    out = {
        n.node.node_id: n.node
        for n in rerank.postprocess_nodes(nodes([LONG, *SHORT]), query_str=QUERY)
    }
    assert out["n0"].metadata[TRUNCATED_KEY] is False
    assert out["n0"].metadata[WINDOWS_KEY] > 1
    assert out["n1"].metadata[WINDOWS_KEY] == 1


# -- SentenceTransformerRerank's cache_folder and cross_encoder_kwargs -----------------------
def test_cross_encoder_kwargs_map_to_the_engine(tiny_model: Path) -> None:
    rerank = CrossrankRerank(
        model=str(tiny_model),
        device="cpu",
        cross_encoder_kwargs={"max_length": 48, "num_labels": 1, "trust_remote_code": False},
    )
    assert rerank.engine.max_length == 48  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "cpu"}, "use the top-level device="),
        ({"activation_fn": None}, r"no crossrank equivalent \(use activation="),
        ({"num_labels": 3}, "num_labels=1"),
        ({"backend": "openvino"}, "use 'torch' or 'onnx'"),
    ],
)
def test_cross_encoder_kwargs_that_cannot_map_are_refused(
    tiny_model: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        CrossrankRerank(model=str(tiny_model), cross_encoder_kwargs=kwargs)


def test_an_option_given_twice_is_refused(tiny_model: Path) -> None:
    with pytest.raises(InvalidInputError, match="sets max_length, and so does max_length="):
        CrossrankRerank(
            model=str(tiny_model), max_length=64, cross_encoder_kwargs={"max_length": 32}
        )


def test_cache_folder_is_where_a_hub_model_is_found(tiny_model: Path, tmp_path: Path) -> None:
    # a Hugging Face cache holding "crossrank-test/tiny", as a download would leave it
    repo = tmp_path / "hub" / "models--crossrank-test--tiny"
    commit = "0" * 40
    shutil.copytree(tiny_model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)

    rerank = CrossrankRerank(
        model="crossrank-test/tiny", cache_folder=tmp_path / "hub", device="cpu"
    )
    reference = CrossrankRerank(model=tiny_model, device="cpu")
    assert ranking(rerank) == ranking(reference)
    with pytest.raises(ModelNotFoundError, match="not in cache_folder"):
        CrossrankRerank(model="crossrank-test/absent", cache_folder=tmp_path / "hub")
