"""CrossrankContextPacker: new nodes holding the packed passages, within the budget, after
CrossrankRerank; end to end, the prompt the LLM receives holds the packed context."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.crossrank import (
    CITATION_KEY,
    SOURCE_NODE_KEY,
    SPAN_KEY,
    CrossrankContextPacker,
    CrossrankRerank,
)

from crossrank.errors import InvalidInputError
from crossrank.testing import FakeReranker


def words(text: str) -> int:
    return len(text.split())


def sentences(tag: str, n: int) -> str:
    return " ".join(f"Sentence {i} about {tag} holds a {tag} fact." for i in range(n))


def nodes_with_scores() -> list[NodeWithScore]:
    texts = [
        sentences("aspirin", 20),
        sentences("coffee", 4),
        sentences("aspirin", 20),
        sentences("tea", 4),
    ]
    return [
        NodeWithScore(node=TextNode(id_=f"n{i}", text=t, metadata={"title": f"T{i}"}), score=s)
        for i, (t, s) in enumerate(zip(texts, [3.0, 2.0, 1.0, 0.5]))
    ]


def test_new_nodes_hold_the_packed_passages() -> None:
    nodes = nodes_with_scores()
    before = copy.deepcopy(nodes)
    packer = CrossrankContextPacker(budget_tokens=120, tokenizer=words, metadata_mode="none")
    out = packer.postprocess_nodes(nodes, query_str="aspirin")
    assert [n.node.metadata[SOURCE_NODE_KEY] for n in out] == ["n0", "n1", "n3"]  # n2 duplicates n0
    assert [n.node.metadata[CITATION_KEY] for n in out] == [1, 2, 3]
    assert all(type(n.score) is float for n in out)
    context = "\n\n".join(n.node.get_content(metadata_mode="llm") for n in out)
    assert context == packer.pack_nodes(nodes, "aspirin").text
    assert words(context) <= 120
    assert context.startswith("[1] (source: n0)\nSentence 0 about aspirin")
    for n in out:
        source = nodes[int(n.node.metadata[SOURCE_NODE_KEY][1:])].node
        start, end = n.node.metadata[SPAN_KEY]
        assert n.node.get_content().endswith(source.get_content()[start:end])
        assert n.node.relationships[NodeRelationship.SOURCE].node_id == source.node_id
        assert n.node.metadata["title"] == source.metadata["title"]
        assert n.node.get_content(metadata_mode="embed") == n.node.get_content()
    assert [(n.node.node_id, n.node.text, n.node.metadata, n.score) for n in nodes] == [
        (n.node.node_id, n.node.text, n.node.metadata, n.score) for n in before
    ]


def test_a_span_in_the_metadata_picks_the_window() -> None:
    text = sentences("intro", 30) + " The key finding is here. " + sentences("outro", 30)
    at = text.index("The key finding")
    node = TextNode(id_="long", text=text, metadata={SPAN_KEY: [at, at + 10]})
    node.excluded_embed_metadata_keys = [SPAN_KEY]
    packer = CrossrankContextPacker(budget_tokens=40, tokenizer=words)
    (out,) = packer.postprocess_nodes([NodeWithScore(node=node, score=1.0)], query_str="q")
    assert out.node.get_content().startswith("[1] (source: long)\nThe key finding is here.")
    start, _ = out.node.metadata[SPAN_KEY]
    assert start == at


def test_after_crossrank_rerank_sync_and_async(fake: FakeReranker, minilm_path: Path) -> None:
    from transformers import AutoTokenizer

    nodes = [
        NodeWithScore(
            node=TextNode(id_=f"d{i}", text=sentences(f"topic{i} aspirin" * (i % 3 + 1), 12)),
            score=0.1,
        )
        for i in range(12)
    ]
    rerank = CrossrankRerank(reranker=fake, top_n=None)
    packer = CrossrankContextPacker(budget_tokens=256, tokenizer=minilm_path)
    bundle = QueryBundle("aspirin topic3")
    ranked = rerank.postprocess_nodes(nodes, bundle)
    out = packer.postprocess_nodes(ranked, bundle)
    aout = asyncio.run(packer.apostprocess_nodes(ranked, bundle))
    assert [n.node.text for n in out] == [n.node.text for n in aout]
    assert out[0].node.metadata[SOURCE_NODE_KEY] == ranked[0].node.node_id
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path))
    context = "\n\n".join(n.node.get_content(metadata_mode="llm") for n in out)
    assert len(tokenizer(context, add_special_tokens=False)["input_ids"]) <= 256


def test_needs_scores_and_checks_options() -> None:
    node = NodeWithScore(node=TextNode(text="a b c"), score=None)
    with pytest.raises(InvalidInputError, match="CrossrankRerank"):
        CrossrankContextPacker(tokenizer=words).postprocess_nodes([node], query_str="q")
    with pytest.raises(ValueError, match="order"):  # pydantic checks it
        CrossrankContextPacker(tokenizer=words, order="random")  # type: ignore[arg-type]
    assert CrossrankContextPacker(tokenizer=words).postprocess_nodes([], query_str="q") == []


# -- end to end ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_index(scifact: Any, minilm_path: Path) -> Any:
    """30 SciFact abstracts (the judged ones of two claims first) in a VectorStoreIndex."""
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    claims = scifact.judged_queries(2)
    ids = scifact.judged_first_ids(claims, 30)
    docs = [
        Document(id_=i, text=scifact.corpus[i].text, metadata={"title": scifact.corpus[i].title})
        for i in ids
    ]
    embed = HuggingFaceEmbedding(model_name=str(minilm_path), device="cpu", max_length=128)
    return VectorStoreIndex.from_documents(docs, embed_model=embed), [c.text for c in claims]


@pytest.mark.slow
def test_query_engine_prompt_holds_the_packed_context(
    small_index: Any, starter_model: Path, minilm_path: Path
) -> None:
    from llama_index.core.llms import MockLLM

    index, claims = small_index
    rerank = CrossrankRerank(model=starter_model, top_n=None, dtype="float32", device="cpu")
    packer = CrossrankContextPacker(budget_tokens=300, tokenizer=minilm_path)
    for mode in ("compact", "refine", "tree_summarize"):
        engine = index.as_query_engine(
            similarity_top_k=10,
            node_postprocessors=[rerank, packer],
            llm=MockLLM(),  # with no max_tokens, MockLLM answers with the prompt it received
            response_mode=mode,
        )
        query = claims[0]
        response = engine.query(query)
        candidates = index.as_retriever(similarity_top_k=10).retrieve(query)
        packed = packer.pack_nodes(rerank.postprocess_nodes(candidates, query_str=query), query)
        assert packed.n_tokens <= 300 and len(packed.passages) >= 2
        prompt = str(response)
        if mode != "refine":  # refine sends one node per LLM call
            assert packed.text in prompt
        for p in packed.passages:
            assert f"[{p.citation}] (source: {p.source_id})" in prompt or mode == "refine"
        assert [n.node.metadata[CITATION_KEY] for n in response.source_nodes] == [
            p.citation for p in packed.passages
        ]
        aresponse = asyncio.run(engine.aquery(query))
        assert str(aresponse) == prompt
