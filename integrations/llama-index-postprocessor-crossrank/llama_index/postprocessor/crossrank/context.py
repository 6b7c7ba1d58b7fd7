"""``CrossrankContextPacker``: packs reranked nodes into the LLM's token budget."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import (
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    TextNode,
)
from pydantic import Field

from crossrank.adapters import SPAN_KEY as _SPAN_KEY
from crossrank.adapters import PackerOptions
from crossrank.errors import InvalidInputError
from crossrank.ranking.context import (
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


class CrossrankContextPacker(PackerOptions, BaseNodePostprocessor):
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

    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="The text of each node the passage is cut from."
    )

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serialises this component under."""
        return "CrossrankContextPacker"

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
