"""``CrossrankRerank``: a LlamaIndex node postprocessor backed by the crossrank engine."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from llama_index.postprocessor.crossrank._engine import LlamaIndexEngineOptions
from pydantic import ConfigDict, Field, model_validator

from crossrank.adapters import READ_KEYS, check_top_n, read_metadata
from crossrank.errors import InvalidInputError
from crossrank.types import FusionMethod, RerankResult, SupportsRerank

__all__ = ["RETRIEVAL_SCORE_KEY", "CrossrankRerank"]

logger = logging.getLogger(__name__)
# (llama_index.core re-exports get_dispatcher implicitly, hence the type: ignore above)
dispatcher = get_dispatcher(__name__)

# turns the engine's results into the returned nodes and ends the events
_Finish = Callable[[Sequence[RerankResult]], list[NodeWithScore]]

RETRIEVAL_SCORE_KEY = "retrieval_score"
"""The metadata key the retriever's score is kept under with ``keep_retrieval_score=True``."""


@dataclass(frozen=True)
class _Request:
    """One checked call: the query, the texts to score and the engine's keyword arguments."""

    query: str
    texts: list[str]
    top_n: int
    options: dict[str, Any]
    nodes: list[NodeWithScore]


class CrossrankRerank(LlamaIndexEngineOptions, BaseNodePostprocessor):
    """Reorders retrieved nodes by a cross-encoder's relevance to the query.

    Pass it in ``node_postprocessors=[...]`` of a query engine. Give it an engine
    (``reranker=crossrank.Reranker(...)``, or anything implementing
    :class:`crossrank.SupportsRerank`, so one loaded model serves many postprocessors) or the
    engine options (``model=...``, ``device=...``, ``dtype=...``, ``reranker_kwargs={...}``)
    to have one built. The keyword arguments of LlamaIndex's ``SentenceTransformerRerank``
    (``model``, ``top_n``, ``device``, ``keep_retrieval_score``, ``cache_folder``,
    ``cross_encoder_kwargs``, and the older ``trust_remote_code``) mean the same here.

    Each node is scored on the text LlamaIndex would embed for it
    (``node.get_content(metadata_mode=MetadataMode.EMBED)``; see ``metadata_mode``). The nodes
    returned are new ``NodeWithScore`` objects holding deep copies of the nodes, best first;
    their ``score`` is a Python float: the cross-encoder's score (raw logit or sigmoid
    probability, as the engine's ``activation`` says) or, with ``fusion``, the fused score.
    Each copy's metadata says how the model read the text: ``crossrank_truncated``,
    ``crossrank_n_windows`` and (when known) ``crossrank_span``, hidden from the LLM and the
    embedding text. The nodes passed in, their scores and their metadata are not changed.

    Each call sends LlamaIndex's instrumentation events ``ReRankStartEvent`` and
    ``ReRankEndEvent`` and the callback event ``CBEventType.RERANKING``. It can be pickled
    (carrying its engine options, not the loaded model) and deep-copied (sharing the engine).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    reranker: SupportsRerank | None = Field(
        default=None,
        description="An engine to use (e.g. a shared crossrank.Reranker); built from the engine "
        "options when None. A dump names it instead of holding it.",
    )
    top_n: int | None = Field(
        default=2, description="How many nodes to return, best first; None returns them all."
    )
    keep_retrieval_score: bool = Field(
        default=False,
        description=(
            "Keep each node's retriever score in metadata['retrieval_score'], excluded from the "
            "text the LLM and the embedding model (and so a later rerank) see."
        ),
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED,
        description="Which of the node's metadata goes into the text the cross-encoder reads.",
    )
    fusion: Literal["weighted", "rrf"] | None = Field(
        default=None,
        description=(
            "Combine the cross-encoder score with each node's retriever score: 'weighted' "
            "(min-max normalised, weighted by alpha) or 'rrf' (reciprocal-rank fusion); None "
            "uses the cross-encoder alone."
        ),
    )
    alpha: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Weight of the cross-encoder with fusion='weighted' (1.0 = it alone).",
    )
    min_score: float | None = Field(
        default=None, description="Drop nodes whose final score is below this value."
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_class_name(cls, data: Any) -> Any:
        # model_dump() adds it (BaseComponent); model_validate(dump) must take it back
        if isinstance(data, dict) and data.get("class_name") == cls.class_name():
            return {k: v for k, v in data.items() if k != "class_name"}
        return data

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serialises this component under."""
        return "CrossrankRerank"

    @property
    def engine(self) -> SupportsRerank:
        """The engine this postprocessor scores with."""
        engine: SupportsRerank = self._current_engine()
        return engine

    @property
    def model_name(self) -> str:
        """The model's name as the engine reports it (events carry it)."""
        name = getattr(self.engine, "model_name", None)
        if isinstance(name, str):
            return name
        return str(self.model) if self.model is not None else type(self.engine).__name__

    # -- the postprocessor ----------------------------------------------------------------------
    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """Return copies of the best ``top_n`` nodes with their new scores, best first."""
        request = self._request(nodes, query_bundle)
        if request is None:
            return []
        with self._reranking(request) as finish:
            return finish(self.engine.rerank(request.query, request.texts, **request.options))

    @dispatcher.span
    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """:meth:`_postprocess_nodes` through the engine's ``arerank``: the event loop is not
        blocked, and concurrent calls share the engine's batches."""
        request = self._request(nodes, query_bundle)
        if request is None:
            return []
        with self._reranking(request) as finish:
            return finish(
                await self.engine.arerank(request.query, request.texts, **request.options)
            )

    # -- internals ----------------------------------------------------------------------------
    def _request(
        self, nodes: Sequence[NodeWithScore], query_bundle: QueryBundle | None
    ) -> _Request | None:
        """Check the call; ``None`` when there is nothing to rerank. Sends the start event."""
        if query_bundle is None:
            msg = (
                "CrossrankRerank needs the query: call postprocess_nodes(nodes, "
                "query_bundle=QueryBundle(query)) or postprocess_nodes(nodes, query_str=query)"
            )
            raise InvalidInputError(msg)
        query = query_bundle.query_str
        if not isinstance(query, str) or not query.strip():
            msg = "the query is empty; pass the user's question as a non-empty string"
            raise InvalidInputError(msg)
        check_top_n(self.top_n)
        if not nodes:
            return None
        fusion: FusionMethod | None = self.fusion
        options = {
            "top_n": self.top_n,
            "retrieval_scores": self._retrieval_scores(nodes) if fusion else None,
            "fusion": fusion,
            "alpha": self.alpha,
            "min_score": self.min_score,
        }
        texts = [n.node.get_content(metadata_mode=self.metadata_mode) for n in nodes]
        top_n = len(nodes) if self.top_n is None else min(self.top_n, len(nodes))
        request = _Request(
            query=query, texts=texts, top_n=top_n, options=options, nodes=list(nodes)
        )
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle, nodes=request.nodes, top_n=top_n, model_name=self.model_name
            )
        )
        return request

    @contextmanager
    def _reranking(self, request: _Request) -> Iterator[_Finish]:
        """The callback event around one engine call; yields the step that turns the engine's
        results into the returned nodes and ends the events."""
        payload: dict[str, Any] = {
            EventPayload.NODES: request.nodes,
            EventPayload.MODEL_NAME: self.model_name,
            EventPayload.QUERY_STR: request.query,
            EventPayload.TOP_K: request.top_n,
        }
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:

            def finish(results: Sequence[RerankResult]) -> list[NodeWithScore]:
                out = self._scored_copies(request.nodes, results)
                event.on_end(payload={EventPayload.NODES: out})
                dispatcher.event(ReRankEndEvent(nodes=out))
                return out

            yield finish

    def _retrieval_scores(self, nodes: Sequence[NodeWithScore]) -> list[float]:
        scores: list[float] = []
        for i, node in enumerate(nodes):
            if node.score is None:
                msg = (
                    f"node {i} ({node.node.node_id}) has no score, and fusion={self.fusion!r} "
                    "needs each node's retriever score (higher is better); rerank the nodes a "
                    "retriever returned, or set fusion=None"
                )
                raise InvalidInputError(msg)
            scores.append(float(node.score))
        return scores

    def _scored_copies(
        self, nodes: Sequence[NodeWithScore], results: Sequence[RerankResult]
    ) -> list[NodeWithScore]:
        out = [self._scored_copy(nodes[r.index], r) for r in results]
        self._warn_truncation_once(results, logger)
        logger.debug(
            "reranked %d nodes, returned %d (top score %s, %d truncated)",
            len(nodes),
            len(out),
            out[0].score if out else None,
            sum(bool(r.truncated) for r in results),
        )
        return out

    def _scored_copy(self, original: NodeWithScore, result: RerankResult) -> NodeWithScore:
        node = original.node.model_copy(deep=True)
        hidden: list[str] = []
        if self.keep_retrieval_score:
            retrieval = None if original.score is None else float(original.score)
            node.metadata[RETRIEVAL_SCORE_KEY] = retrieval
            hidden.append(RETRIEVAL_SCORE_KEY)
        for key in READ_KEYS:
            node.metadata.pop(key, None)
        read = read_metadata(result)
        node.metadata.update(read)
        hidden.extend(read)
        for excluded in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
            excluded.extend(key for key in hidden if key not in excluded)
        return NodeWithScore(node=node, score=float(result.score))
