"""CrossrankRerank mechanics, with a deterministic fake engine and with the real engine on a tiny
model."""

from __future__ import annotations

import asyncio
import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.crossrank import RETRIEVAL_SCORE_KEY, CrossrankRerank
from pydantic import Field, ValidationError

from crossrank import InvalidInputError, Reranker
from crossrank.adapters import TRUNCATED_KEY, WINDOWS_KEY
from crossrank.ranking.fusion import fuse

QUERY = "does vitamin d lower the risk of cancer"
READ = [TRUNCATED_KEY, WINDOWS_KEY]  # what the fake engine reports (it knows no span)
WHOLE = {TRUNCATED_KEY: False, WINDOWS_KEY: 1}
TEXTS = [
    "the effect of blood pressure treatment in mice",
    "vitamin d levels and cancer risk in a cohort of patients",
    "cancer cells express higher levels of a protein",
    "how genes are expressed in human cells",
    "vitamin d and the risk of cancer: a study of human patients",
]


def make_nodes() -> list[NodeWithScore]:
    """Nodes as a retriever returns them: dense scores, metadata partly hidden from the
    embedding model (``source``) and from the LLM (``section``)."""
    return [
        NodeWithScore(
            node=TextNode(
                id_=f"node-{i}",
                text=text,
                metadata={"source": f"s{i}", "section": "abstract", "tags": ["a", "b"]},
                excluded_embed_metadata_keys=["source"],
                excluded_llm_metadata_keys=["section"],
            ),
            score=0.9 - i / 10,
        )
        for i, text in enumerate(TEXTS)
    ]


def snapshot(nodes: list[NodeWithScore]) -> list[tuple[Any, ...]]:
    return [
        (
            id(n),
            id(n.node),
            n.score,
            n.node.node_id,
            n.node.get_content(),
            copy.deepcopy(n.node.metadata),
            list(n.node.excluded_llm_metadata_keys),
            list(n.node.excluded_embed_metadata_keys),
        )
        for n in nodes
    ]


def check_serialises(result: NodeWithScore) -> None:
    """``model_dump_json`` works and holds the score and the node as they are."""
    data = json.loads(result.model_dump_json())
    assert data["score"] == result.score
    assert data["node"]["id_"] == result.node.node_id
    assert data["node"]["metadata"] == result.node.metadata
    assert data["node"]["excluded_llm_metadata_keys"] == result.node.excluded_llm_metadata_keys
    assert TextNode.model_validate(data["node"]) == result.node


def embed_text(node: NodeWithScore) -> str:
    return node.node.get_content(metadata_mode=MetadataMode.EMBED)


class EventRecorder(BaseEventHandler):
    """Records the rerank instrumentation events."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, ReRankStartEvent | ReRankEndEvent):
            self.events.append(event)


@pytest.fixture
def recorder() -> Iterator[EventRecorder]:
    """An event handler on the root dispatcher, removed afterwards."""
    root = get_dispatcher()
    handler = EventRecorder()
    root.add_event_handler(handler)
    try:
        yield handler
    finally:
        root.event_handlers.remove(handler)


# -- with a fake engine -----------------------------------------------------------------------
def test_is_a_node_postprocessor(fake: Any) -> None:
    rerank = CrossrankRerank(reranker=fake)
    assert isinstance(rerank, BaseNodePostprocessor)
    assert rerank.engine is fake
    assert rerank.class_name() == "CrossrankRerank"
    assert rerank.top_n == 2  # SentenceTransformerRerank's default
    assert rerank.metadata_mode is MetadataMode.EMBED


def test_returns_new_scored_nodes_best_first_and_leaves_inputs_untouched(fake: Any) -> None:
    nodes = make_nodes()
    before = snapshot(nodes)
    out = CrossrankRerank(reranker=fake, top_n=3).postprocess_nodes(nodes, query_str=QUERY)

    assert snapshot(nodes) == before
    expected = sorted(range(len(nodes)), key=lambda i: -fake.score(QUERY, embed_text(nodes[i])))
    assert [n.node.node_id for n in out] == [nodes[i].node.node_id for i in expected[:3]]
    originals = {n.node.node_id: n for n in nodes}
    for result in out:
        original = originals[result.node.node_id]
        assert result is not original
        assert result.node is not original.node
        assert result.node.metadata is not original.node.metadata
        assert result.node.metadata == {**original.node.metadata, **WHOLE}
        for mode in (MetadataMode.LLM, MetadataMode.EMBED):
            text = result.node.get_content(metadata_mode=mode)
            assert text == original.node.get_content(metadata_mode=mode)
        assert type(result.score) is float
        assert result.score == fake.score(QUERY, embed_text(original))
        check_serialises(result)
    scores = [n.score for n in out]
    assert scores == sorted(scores, reverse=True)


def test_scores_the_embed_text_by_default(fake: Any) -> None:
    nodes = make_nodes()
    CrossrankRerank(reranker=fake).postprocess_nodes(nodes, query_str=QUERY)
    documents = fake.calls[-1]["documents"]
    assert documents == [embed_text(n) for n in nodes]
    assert all("section: abstract" in d and "s0" not in d for d in documents)


@pytest.mark.parametrize("mode", [MetadataMode.NONE, MetadataMode.LLM, "all"])
def test_metadata_mode_is_configurable(fake: Any, mode: Any) -> None:
    nodes = make_nodes()
    CrossrankRerank(reranker=fake, metadata_mode=mode).postprocess_nodes(nodes, query_str=QUERY)
    expected = [n.node.get_content(metadata_mode=MetadataMode(mode)) for n in nodes]
    assert fake.calls[-1]["documents"] == expected


@pytest.mark.parametrize("top_n", [1, 2, 5, 50, None])
def test_top_n(fake: Any, top_n: int | None) -> None:
    nodes = make_nodes()
    out = CrossrankRerank(reranker=fake, top_n=top_n).postprocess_nodes(nodes, query_str=QUERY)
    assert len(out) == min(top_n or len(nodes), len(nodes))
    assert fake.calls[-1]["top_n"] == top_n
    assert fake.calls[-1]["retrieval_scores"] is None
    assert fake.calls[-1]["fusion"] is None


def test_min_score_drops_low_nodes(fake: Any) -> None:
    nodes = make_nodes()
    out = CrossrankRerank(reranker=fake, top_n=None, min_score=2.0).postprocess_nodes(
        nodes, query_str=QUERY
    )
    assert fake.calls[-1]["min_score"] == 2.0
    assert out
    assert all(n.score is not None and n.score >= 2.0 for n in out)
    assert len(out) < len(nodes)


def test_keep_retrieval_score_hides_it_from_the_llm_and_the_embedding(fake: Any) -> None:
    nodes = make_nodes()
    before = snapshot(nodes)
    rerank = CrossrankRerank(reranker=fake, top_n=None, keep_retrieval_score=True)
    out = rerank.postprocess_nodes(nodes, query_str=QUERY)

    assert snapshot(nodes) == before
    originals = {n.node.node_id: n for n in nodes}
    for result in out:
        original = originals[result.node.node_id]
        assert result.node.metadata[RETRIEVAL_SCORE_KEY] == original.score
        assert type(result.node.metadata[RETRIEVAL_SCORE_KEY]) is float
        assert result.score != original.score
        for mode in (MetadataMode.LLM, MetadataMode.EMBED):
            assert RETRIEVAL_SCORE_KEY not in result.node.get_content(metadata_mode=mode)
            assert result.node.get_content(metadata_mode=mode) == original.node.get_content(
                metadata_mode=mode
            )
        assert RETRIEVAL_SCORE_KEY in result.node.get_content(metadata_mode=MetadataMode.ALL)
        assert result.node.excluded_llm_metadata_keys == ["section", RETRIEVAL_SCORE_KEY, *READ]
        assert result.node.excluded_embed_metadata_keys == ["source", RETRIEVAL_SCORE_KEY, *READ]
        check_serialises(result)

    # a second rerank reads the same text as the first: the kept score does not leak into it
    first_input = fake.calls[-1]["documents"]
    again = CrossrankRerank(reranker=fake, top_n=None, keep_retrieval_score=True)
    second = again.postprocess_nodes(out, query_str=QUERY)
    by_id = {n.node.node_id: embed_text(n) for n in nodes}
    assert fake.calls[-1]["documents"] == [by_id[n.node.node_id] for n in out]
    assert sorted(fake.calls[-1]["documents"]) == sorted(first_input)
    # it keeps the first rerank's score as the retrieval score, listed once among the exclusions
    assert [n.node.metadata[RETRIEVAL_SCORE_KEY] for n in second] == [n.score for n in second]
    for node in second:
        for key in (RETRIEVAL_SCORE_KEY, *READ):
            assert node.node.excluded_llm_metadata_keys.count(key) == 1


def test_without_keep_retrieval_score_only_the_read_keys_are_added(fake: Any) -> None:
    nodes = make_nodes()
    out = CrossrankRerank(reranker=fake, top_n=None).postprocess_nodes(nodes, query_str=QUERY)
    assert all(RETRIEVAL_SCORE_KEY not in n.node.metadata for n in out)
    assert all(n.node.excluded_llm_metadata_keys == ["section", *READ] for n in out)


@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
def test_fusion_passes_the_retrieval_scores(fake: Any, fusion: Any) -> None:
    nodes = make_nodes()
    rerank = CrossrankRerank(reranker=fake, top_n=None, fusion=fusion, alpha=0.7)
    out = rerank.postprocess_nodes(nodes, query_str=QUERY)

    call = fake.calls[-1]
    assert call["retrieval_scores"] == [n.score for n in nodes]
    assert call["fusion"] == fusion
    assert call["alpha"] == 0.7
    expected = fuse(
        [fake.score(QUERY, embed_text(n)) for n in nodes], [n.score for n in nodes], fusion, 0.7
    )
    got = {n.node.node_id: n.score for n in out}
    assert got == pytest.approx({n.node.node_id: s for n, s in zip(nodes, expected)})
    assert all(type(s) is float for s in got.values())


def test_fusion_needs_every_node_scored(fake: Any) -> None:
    nodes = make_nodes()
    nodes[2] = NodeWithScore(node=nodes[2].node, score=None)
    with pytest.raises(InvalidInputError, match=r"node 2 \(node-2\) has no score.*fusion=None"):
        CrossrankRerank(reranker=fake, fusion="rrf").postprocess_nodes(nodes, query_str=QUERY)
    assert fake.calls == []
    # without fusion a missing retrieval score is fine
    out = CrossrankRerank(reranker=fake, keep_retrieval_score=True).postprocess_nodes(
        nodes, query_str=QUERY
    )
    assert len(out) == 2


def test_empty_node_list_returns_empty_list(fake: Any, recorder: EventRecorder) -> None:
    rerank = CrossrankRerank(reranker=fake)
    assert rerank.postprocess_nodes([], query_str=QUERY) == []
    assert asyncio.run(rerank.apostprocess_nodes([], query_str=QUERY)) == []
    assert fake.calls == []
    assert recorder.events == []


# -- errors -----------------------------------------------------------------------------------
def test_missing_query_bundle(fake: Any) -> None:
    rerank = CrossrankRerank(reranker=fake)
    with pytest.raises(InvalidInputError, match="needs the query"):
        rerank.postprocess_nodes(make_nodes())
    with pytest.raises(InvalidInputError, match="needs the query"):
        asyncio.run(rerank.apostprocess_nodes(make_nodes()))
    with pytest.raises(InvalidInputError, match="needs the query"):
        rerank.postprocess_nodes([])


@pytest.mark.parametrize("query", ["", "   \n"])
def test_empty_query(fake: Any, query: str) -> None:
    rerank = CrossrankRerank(reranker=fake)
    with pytest.raises(InvalidInputError, match="query is empty"):
        rerank.postprocess_nodes(make_nodes(), query_bundle=QueryBundle(query))
    with pytest.raises(InvalidInputError, match="query is empty"):
        asyncio.run(rerank.apostprocess_nodes(make_nodes(), query_str=query))
    assert fake.calls == []


@pytest.mark.parametrize("top_n", [0, -1, 2.5, 2.0, "3", True])
def test_bad_top_n(fake: Any, top_n: Any) -> None:
    with pytest.raises(InvalidInputError, match="top_n must be a positive integer"):
        CrossrankRerank(reranker=fake, top_n=top_n)


def test_bad_top_n_set_later_is_refused_at_call_time(fake: Any) -> None:
    rerank = CrossrankRerank(reranker=fake)
    rerank.top_n = 0
    with pytest.raises(InvalidInputError, match="top_n must be a positive integer"):
        rerank.postprocess_nodes(make_nodes(), query_str=QUERY)


@pytest.mark.parametrize(
    "options",
    [
        {"model": "some/model"},
        {"device": "cpu"},
        {"dtype": "float32"},
        {"max_length": 64},
        {"reranker_kwargs": {"cache_size": 10}},
    ],
)
def test_engine_and_engine_options_together_are_refused(fake: Any, options: Any) -> None:
    with pytest.raises(InvalidInputError, match="not both"):
        CrossrankRerank(reranker=fake, **options)


def test_unknown_options_are_refused(tiny_model: Path, fake: Any) -> None:
    with pytest.raises(InvalidInputError, match="does not take: bogus"):
        CrossrankRerank(model=str(tiny_model), reranker_kwargs={"bogus": 1})
    with pytest.raises(ValidationError):
        CrossrankRerank(reranker=fake, topn=3)
    with pytest.raises(ValidationError):
        CrossrankRerank(reranker=fake, alpha=1.5)


# -- events -----------------------------------------------------------------------------------
def check_events(
    recorder: EventRecorder,
    debug: LlamaDebugHandler,
    nodes: list[NodeWithScore],
    out: list[NodeWithScore],
    bundle: QueryBundle,
    top_n: int,
) -> None:
    start, end = recorder.events
    assert isinstance(start, ReRankStartEvent)
    assert start.query == bundle
    assert start.nodes == nodes
    assert start.top_n == top_n
    assert start.model_name == "fake-cross-encoder"
    assert isinstance(end, ReRankEndEvent)
    assert end.nodes == out

    (pair,) = debug.get_event_pairs(CBEventType.RERANKING)
    begin, finish = pair
    assert begin.payload == {
        EventPayload.NODES: nodes,
        EventPayload.MODEL_NAME: "fake-cross-encoder",
        EventPayload.QUERY_STR: bundle.query_str,
        EventPayload.TOP_K: top_n,
    }
    assert finish.payload == {EventPayload.NODES: out}


@pytest.mark.parametrize("top_n", [3, None])
def test_sync_call_sends_the_rerank_events(
    fake: Any, recorder: EventRecorder, top_n: int | None
) -> None:
    debug = LlamaDebugHandler(print_trace_on_end=False)
    rerank = CrossrankRerank(reranker=fake, top_n=top_n, callback_manager=CallbackManager([debug]))
    nodes = make_nodes()
    bundle = QueryBundle(QUERY)
    out = rerank.postprocess_nodes(nodes, query_bundle=bundle)
    check_events(recorder, debug, nodes, out, bundle, top_n or len(nodes))


def test_async_call_sends_the_rerank_events(fake: Any, recorder: EventRecorder) -> None:
    debug = LlamaDebugHandler(print_trace_on_end=False)
    rerank = CrossrankRerank(reranker=fake, top_n=3, callback_manager=CallbackManager([debug]))
    nodes = make_nodes()
    bundle = QueryBundle(QUERY)
    out = asyncio.run(rerank.apostprocess_nodes(nodes, query_bundle=bundle))
    check_events(recorder, debug, nodes, out, bundle, 3)


def test_a_failing_engine_ends_the_callback_event(recorder: EventRecorder) -> None:
    class Broken:
        model_name = "broken"

        def rerank(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("boom")

        async def arerank(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("boom")

    debug = LlamaDebugHandler(print_trace_on_end=False)
    rerank = CrossrankRerank(reranker=Broken(), callback_manager=CallbackManager([debug]))
    with pytest.raises(RuntimeError, match="boom"):
        rerank.postprocess_nodes(make_nodes(), query_str=QUERY)
    (pair,) = debug.get_event_pairs(CBEventType.RERANKING)
    assert isinstance(pair[-1].payload[EventPayload.EXCEPTION], RuntimeError)
    assert [type(e) for e in recorder.events] == [ReRankStartEvent]


def test_sync_and_async_calls_run_in_dispatcher_spans(fake: Any) -> None:
    from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler

    root = get_dispatcher()
    spans = SimpleSpanHandler()
    root.add_span_handler(spans)
    try:
        rerank = CrossrankRerank(reranker=fake)
        rerank.postprocess_nodes(make_nodes(), query_str=QUERY)
        asyncio.run(rerank.apostprocess_nodes(make_nodes(), query_str=QUERY))
    finally:
        root.span_handlers.remove(spans)
    names = [span.id_.split("-")[0] for span in spans.completed_spans]
    assert "CrossrankRerank._postprocess_nodes" in names
    assert "CrossrankRerank._apostprocess_nodes" in names


# -- async ------------------------------------------------------------------------------------
def test_async_awaits_the_engines_arerank(fake: Any) -> None:
    nodes = make_nodes()
    rerank = CrossrankRerank(reranker=fake, top_n=3)
    sync = rerank.postprocess_nodes(nodes, query_str=QUERY)
    result = asyncio.run(rerank.apostprocess_nodes(nodes, query_str=QUERY))
    assert [c["method"] for c in fake.calls] == ["rerank", "arerank"]
    assert result == sync


def concurrent_requests() -> list[tuple[str, list[NodeWithScore]]]:
    """Twenty different (query, nodes) requests."""
    words = ["vitamin", "cancer", "cells", "mice", "genes", "protein", "risk", "blood"]
    requests = []
    for i in range(20):
        query = f"{words[i % 8]} {words[(i * 3 + 1) % 8]} and {words[(i + 5) % 8]}"
        nodes = make_nodes()[i % 3 :] + make_nodes()[: i % 3]
        requests.append((query, nodes))
    return requests


def run_concurrently(
    rerank: CrossrankRerank, requests: list[tuple[str, list[NodeWithScore]]]
) -> list[list[NodeWithScore]]:
    async def together() -> list[list[NodeWithScore]]:
        calls = (rerank.apostprocess_nodes(nodes, query_str=q) for q, nodes in requests)
        return list(await asyncio.gather(*calls))

    return asyncio.run(together())


def test_concurrent_calls_equal_sequential_ones_with_the_fake(fake: Any) -> None:
    rerank = CrossrankRerank(reranker=fake, top_n=3, keep_retrieval_score=True)
    requests = concurrent_requests()
    sequential = [rerank.postprocess_nodes(nodes, query_str=q) for q, nodes in requests]
    concurrent = run_concurrently(rerank, requests)
    assert concurrent == sequential
    assert [c["method"] for c in fake.calls] == ["rerank"] * 20 + ["arerank"] * 20


# -- with the real engine on a tiny model -------------------------------------------------------
def test_tiny_model_scores_equal_the_engines(tiny_engine: Reranker) -> None:
    nodes = make_nodes()
    before = snapshot(nodes)
    rerank = CrossrankRerank(reranker=tiny_engine, top_n=None)
    out = rerank.postprocess_nodes(nodes, query_str=QUERY)

    assert snapshot(nodes) == before
    expected = tiny_engine.rerank(QUERY, [embed_text(n) for n in nodes])
    assert [n.node.node_id for n in out] == [nodes[r.index].node.node_id for r in expected]
    assert [n.score for n in out] == pytest.approx([r.score for r in expected], abs=1e-6)
    assert all(type(n.score) is float for n in out)
    scores = [n.score for n in out]
    assert scores == sorted(scores, reverse=True)
    assert rerank.model_name == tiny_engine.model_name
    for result in out:
        check_serialises(result)


def test_tiny_model_concurrent_calls_equal_sequential_ones(tiny_engine: Reranker) -> None:
    rerank = CrossrankRerank(reranker=tiny_engine, top_n=4)
    requests = concurrent_requests()
    sequential = [rerank.postprocess_nodes(nodes, query_str=q) for q, nodes in requests]
    concurrent = run_concurrently(rerank, requests)
    for seq, con in zip(sequential, concurrent, strict=True):
        assert [n.node.node_id for n in con] == [n.node.node_id for n in seq]
        assert [n.score for n in con] == pytest.approx([n.score for n in seq], abs=1e-5)
        assert all(type(n.score) is float for n in con)


def test_built_from_sentence_transformer_rerank_arguments(tiny_model: Path) -> None:
    # SentenceTransformerRerank(model=..., top_n=..., device=..., keep_retrieval_score=...)
    rerank = CrossrankRerank(
        model=str(tiny_model), top_n=3, device="cpu", keep_retrieval_score=True
    )
    assert isinstance(rerank.engine, Reranker)
    assert rerank.engine.device == "cpu"
    out = rerank.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert len(out) == 3
    assert all(RETRIEVAL_SCORE_KEY in n.node.metadata for n in out)
    # device=None (SentenceTransformerRerank's default) picks the device like "auto"
    assert CrossrankRerank(model=str(tiny_model), device=None).device == "auto"


def test_one_engine_serves_many_postprocessors(tiny_engine: Reranker) -> None:
    first = CrossrankRerank(reranker=tiny_engine, top_n=1)
    second = CrossrankRerank(reranker=tiny_engine, top_n=3, keep_retrieval_score=True)
    assert first.engine is second.engine is tiny_engine
    one = first.postprocess_nodes(make_nodes(), query_str=QUERY)
    three = second.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert one[0].node.node_id == three[0].node.node_id
    assert one[0].score == three[0].score


def test_engine_options_are_passed_to_the_engine(tiny_model: Path) -> None:
    rerank = CrossrankRerank(
        model=tiny_model,
        device="cpu",
        dtype="float32",
        max_length=64,
        overflow="chunk",
        activation="raw",
        reranker_kwargs={"query_max_tokens": 16},
    )
    engine = rerank.engine
    assert isinstance(engine, Reranker)
    assert (engine.max_length, engine.query_max_tokens) == (64, 16)
    assert (engine.overflow, engine.activation) == ("chunk", "raw")
    # the postprocessor serialises like other LlamaIndex components
    data = rerank.to_dict()
    assert data["class_name"] == "CrossrankRerank"
    assert data["reranker"] is None
    assert data["max_length"] == 64
    assert data["metadata_mode"] == "embed"


def test_rankings_agree_with_sentence_transformer_rerank_on_the_tiny_model(
    tiny_model: Path, tiny_engine: Reranker
) -> None:
    """LlamaIndex's own SentenceTransformerRerank on the same folder (fp32 on disk, the same
    max_length of 512, short texts that fit) ranks the nodes the same way, same scores."""
    from llama_index.core.postprocessor import SentenceTransformerRerank

    stock = SentenceTransformerRerank(model=str(tiny_model), top_n=len(TEXTS), device="cpu")
    assert tiny_engine.max_length == 512
    theirs = stock.postprocess_nodes(make_nodes(), query_str=QUERY)  # it mutates its input
    ours = CrossrankRerank(reranker=tiny_engine, top_n=None).postprocess_nodes(
        make_nodes(), query_str=QUERY
    )
    assert [n.node.node_id for n in ours] == [n.node.node_id for n in theirs]
    assert [n.score for n in ours] == pytest.approx([float(n.score) for n in theirs], abs=1e-4)


def test_missing_extra_names_the_install_line(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crossrank import MissingExtraError

    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    with pytest.raises(MissingExtraError, match=r'pip install "crossrank\[onnx\]"'):
        CrossrankRerank(model=str(tiny_model), device="cpu", reranker_kwargs={"backend": "onnx"})
