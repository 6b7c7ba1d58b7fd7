"""Rankings agree with LlamaIndex's own ``SentenceTransformerRerank`` on the same local model
folder (the starter cross-encoder, loaded offline by both) and the same SciFact candidates, on
pairs both read whole: short passages at crossrank's default max_length, and whole abstracts
with both at max_length=512 (SentenceTransformerRerank's fixed length)."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.postprocessor.crossrank import CrossrankRerank

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4  # fp32 scores of two implementations; closer scores may swap places


@pytest.fixture(scope="module")
def stock(starter_model: Path) -> Any:
    """SentenceTransformerRerank on the starter folder, in fp32 on the CPU.

    It takes no dtype, and sentence-transformers 6 loads the starter's fp16 weights as stored
    (fp16 on the CPU), so the reference is cast to fp32 to compare like with like.
    """
    import torch
    from llama_index.core.postprocessor import SentenceTransformerRerank

    reranker = SentenceTransformerRerank(model=str(starter_model), top_n=1000, device="cpu")
    reranker._model.to(torch.float32)
    return reranker


@pytest.fixture(scope="module")
def tokenizer(starter_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(starter_model))


def fitting(
    nodes: list[NodeWithScore], query: str, tokenizer: Any, max_length: int
) -> list[NodeWithScore]:
    """The nodes whose (query, embed text) pair fits max_length tokens whole."""
    return [
        n
        for n in nodes
        if len(
            tokenizer(query, n.node.get_content(metadata_mode=MetadataMode.EMBED), verbose=False)[
                "input_ids"
            ]
        )
        <= max_length
    ]


def assert_same_ranking(
    ours: CrossrankRerank, stock: Any, query: str, nodes: list[NodeWithScore]
) -> None:
    # SentenceTransformerRerank writes its scores into the nodes it is given: give it copies
    theirs = stock.postprocess_nodes(copy.deepcopy(nodes), query_str=query)
    mine = ours.postprocess_nodes(nodes, query_str=query)
    reference = {n.node.node_id: float(n.score) for n in theirs}
    got = {n.node.node_id: n.score for n in mine}
    assert len(mine) == len(theirs) == len(nodes)
    assert got == pytest.approx(reference, abs=TOLERANCE)
    # the same order, up to swaps of nodes whose scores tie within the tolerance
    for earlier, later in itertools.pairwise(theirs):
        assert got[earlier.node.node_id] >= got[later.node.node_id] - TOLERANCE
    for earlier, later in itertools.pairwise(mine):
        assert reference[earlier.node.node_id] >= reference[later.node.node_id] - TOLERANCE


def test_short_passages_at_the_default_max_length(
    scifact_index: Any, starter_model: Path, stock: Any, tokenizer: Any, scifact_queries: list[str]
) -> None:
    from llama_index.core.node_parser import SentenceSplitter

    ours = CrossrankRerank(model=starter_model, dtype="float32", top_n=None)
    splitter = SentenceSplitter(chunk_size=64, chunk_overlap=0)
    compared = 0
    for query in scifact_queries[:2]:
        hits = scifact_index.as_retriever(similarity_top_k=3).retrieve(query)
        passages = [
            NodeWithScore(node=TextNode(id_=f"{hit.node.node_id}-{j}", text=text), score=hit.score)
            for hit in hits
            for j, text in enumerate(splitter.split_text(hit.node.get_content()))
        ]
        nodes = fitting(passages, query, tokenizer, ours.engine.max_length)  # type: ignore[attr-defined]
        assert len(nodes) >= 6
        assert_same_ranking(ours, stock, query, nodes)
        compared += len(nodes)
    assert compared >= 15


def test_whole_abstracts_with_both_at_max_length_512(
    scifact_index: Any, starter_model: Path, stock: Any, tokenizer: Any, scifact_queries: list[str]
) -> None:
    ours = CrossrankRerank(model=starter_model, dtype="float32", max_length=512, top_n=None)
    compared = 0
    for query in scifact_queries[2:4]:
        hits = scifact_index.as_retriever(similarity_top_k=8).retrieve(query)
        nodes = fitting(hits, query, tokenizer, 512)  # SciFact abstracts: about half fit
        assert len(nodes) >= 2
        assert_same_ranking(ours, stock, query, nodes)
        compared += len(nodes)
    assert compared >= 6
