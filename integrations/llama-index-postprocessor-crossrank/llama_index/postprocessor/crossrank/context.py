"""``CrossrankContextPacker``: packs reranked nodes into the LLM's token budget."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import (
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    TextNode,
)
from pydantic import ConfigDict, Field, PrivateAttr

from crossrank.adapters import SPAN_KEY as _SPAN_KEY
from crossrank.errors import InvalidInputError
from crossrank.ranking.context import (
    DEFAULT_SEPARATOR,
    DEFAULT_TEMPLATE,
    ContextPacker,
    PackedContext,
)
from crossrank.types import RerankResult

__all__ = [
    "CITATION_KEY",
    "SOURCE_NODE_KEY",
    "SPAN_KEY",
    "CrossrankContextPacker",
]

logger = logging.getLogger(__name__)

SPAN_KEY = _SPAN_KEY
"""Metadata key of a ``[start, end]`` character span: read from the nodes passed in (the
reranker's best window, when the reranker before writes it), written on the nodes returned
(where the passage lies in its source node's text)."""
SOURCE_NODE_KEY = "crossrank_source_node_id"
"""Metadata key of the returned node's source node id."""
CITATION_KEY = "crossrank_citation"
"""Metadata key of the returned node's citation number (``[n]`` in the context)."""


class CrossrankContextPacker(BaseNodePostprocessor):
    """Packs reranked nodes into a context that fits the LLM's token budget.

    Put it after :class:`CrossrankRerank` (give the reranker ``top_n=None`` or a generous
    ``top_n``, so the packer chooses what fits): ``node_postprocessors=[rerank, packer]``.
    It returns new nodes, one per passage, in reading order: each node's text is the rendered
    passage (``"[1] (source: <node id>)\\n<text>"`` by default), so the context the response
    synthesizer joins (with ``"\\n\\n"``) is exactly the packed context, within
    ``budget_tokens`` counted with ``tokenizer``. A passage is the node's best window when the
    node's metadata holds ``crossrank_span`` (widened to whole sentences), else the node's
    text from its start; it is trimmed at a sentence boundary to fit. Near-duplicates are
    dropped (the higher-scored copy stays). Each returned node keeps its source node's
    metadata (hidden from the LLM and the embedding model) plus ``crossrank_source_node_id``,
    ``crossrank_span`` and ``crossrank_citation``, and a ``SOURCE`` relationship to it. The
    nodes passed in are not changed.

    The options are those of :class:`crossrank.ContextPacker`; ``metadata_mode`` is the text
    each node is cut from (keep it equal to the reranker's, so its spans line up).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    budget_tokens: int = Field(default=1024, ge=1, description="Most tokens in the context.")
    tokenizer: Any = Field(
        default=None,
        exclude=True,
        description="The LLM's tokenizer: a Hugging Face folder or hub id, a tokenizer object or "
        "a callable text -> token count (default: crossrank's offline WordPiece tokenizer).",
    )
    passage: Literal["window", "document"] = Field(
        default="window", description="The best window when known, or the node from its start."
    )
    max_passage_share: float | None = Field(
        default=0.25, description="The most of the budget one passage may take (None: no limit)."
    )
    dedup_threshold: float | None = Field(
        default=0.6, description="Shingle Jaccard similarity at which a passage is a duplicate."
    )
    min_score: float | None = Field(default=None, description="Drop nodes scoring below this.")
    max_score_gap: float | None = Field(
        default=None, description="Drop nodes scoring more than this below the best node."
    )
    order: Literal["score", "lost_in_the_middle", "source"] = Field(
        default="score", description="Reading order of the passages."
    )
    template: str = Field(default=DEFAULT_TEMPLATE, description="How each passage is rendered.")
    separator: str = Field(
        default=DEFAULT_SEPARATOR,
        description="Between passages; LlamaIndex's synthesizers join nodes with '\\n\\n'.",
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="The text of each node the passage is cut from."
    )

    _packer: ContextPacker = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._packer = ContextPacker(
            self.budget_tokens,
            tokenizer=self.tokenizer,
            passage=self.passage,
            max_passage_share=self.max_passage_share,
            dedup_threshold=self.dedup_threshold,
            min_score=self.min_score,
            max_score_gap=self.max_score_gap,
            order=self.order,
            template=self.template,
            separator=self.separator,
        )

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serialises this component under."""
        return "CrossrankContextPacker"

    @property
    def packer(self) -> ContextPacker:
        """The framework-free packer doing the work."""
        return self._packer

    def pack_nodes(self, nodes: Sequence[NodeWithScore], query: str) -> PackedContext:
        """The packed context of ``nodes`` (the string and its passages) for ``query``."""
        results = [_result(i, n, self.metadata_mode) for i, n in enumerate(nodes)]
        return self._packer.pack(query, results, ids=[n.node.node_id for n in nodes])

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """New nodes holding the packed passages, in reading order."""
        query = "" if query_bundle is None else query_bundle.query_str
        packed = self.pack_nodes(nodes, query)
        out = []
        for p in packed.passages:
            source = nodes[p.index].node
            metadata = dict(source.metadata)
            metadata.update(
                {SOURCE_NODE_KEY: source.node_id, SPAN_KEY: list(p.span), CITATION_KEY: p.citation}
            )
            node = TextNode(
                text=self.template.format(
                    n=p.citation, id=p.source_id, text=p.text, score=p.score, index=p.index
                ),
                metadata=metadata,
                excluded_llm_metadata_keys=list(metadata),
                excluded_embed_metadata_keys=list(metadata),
                relationships={NodeRelationship.SOURCE: source.as_related_node_info()},
            )
            out.append(NodeWithScore(node=node, score=p.score))
        logger.debug(
            "packed %d of %d nodes into %d/%d tokens (%d dropped)",
            len(out),
            len(nodes),
            packed.n_tokens,
            packed.budget_tokens,
            len(packed.dropped),
        )
        return out


def _result(i: int, node: NodeWithScore, mode: MetadataMode) -> RerankResult:
    if node.score is None:
        msg = (
            f"node {i} ({node.node.node_id}) has no score; put CrossrankRerank (or a retriever "
            "that scores) before CrossrankContextPacker"
        )
        raise InvalidInputError(msg)
    raw = node.node.metadata.get(SPAN_KEY)
    span = (int(raw[0]), int(raw[1])) if isinstance(raw, list | tuple) and len(raw) == 2 else None
    score = float(node.score)
    return RerankResult(
        index=i,
        score=score,
        rerank_score=score,
        retrieval_score=None,
        truncated=False,
        n_windows=1,
        document=node.node.get_content(metadata_mode=mode),
        span=span,
    )
