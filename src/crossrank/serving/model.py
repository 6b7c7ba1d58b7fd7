"""The served model: one :class:`crossrank.Reranker` behind the engine's coalescer.

The reranker runs with raw logits; each request picks its score (the configured activation,
or TEI's ``raw_scores``) and is then ranked by :func:`crossrank.ranking.rank_results`, the
same function the engine ranks with, so served results equal ``Reranker.rerank``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crossrank.ranking import RankOptions, rank_results
from crossrank.types import DocRead, RerankResult

if TYPE_CHECKING:
    from crossrank.engine.reranker import Reranker
    from crossrank.serving.config import ServeConfig

__all__ = ["ServedModel"]

logger = logging.getLogger(__name__)


def _sigmoid(x: float) -> float:
    # The engine's formula, so served probabilities equal Reranker.rerank's bit for bit.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class ServedModel:
    """Loads the reranker in a background thread and reranks requests through it."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.reranker: Reranker | None = None
        self.activation: str | None = None
        self.error: BaseException | None = None
        self._loaded = threading.Event()
        self._thread: threading.Thread | None = None

    # -- loading ------------------------------------------------------------------------------
    def start_loading(self) -> None:
        if self._thread is None and not self._loaded.is_set():
            self._thread = threading.Thread(target=self._load, name="crossrank-load", daemon=True)
            self._thread.start()

    def load(self) -> None:
        """Load in the calling thread (raises what loading raised)."""
        if not self._loaded.is_set():
            self._load()
        if self.error is not None:
            raise self.error

    def wait(self, timeout: float | None = None) -> bool:
        return self._loaded.wait(timeout)

    @property
    def ready(self) -> bool:
        return self.reranker is not None

    def _load(self) -> None:
        from crossrank.engine.reranker import Reranker

        c = self.config
        try:
            kwargs: dict[str, Any] = {
                "device": c.device,
                "dtype": c.dtype,
                "max_length": c.max_length,
                "overflow": c.overflow,
                "token_budget": c.token_budget,
                "backend": c.backend,
                "progress_threshold": None,
            }
            reranker = Reranker(c.model, activation="raw", **kwargs)
            activation = c.activation
            if activation == "auto":
                # Same settings: the registry hands back the model already loaded.
                activation = Reranker(c.model, activation="auto", **kwargs).activation
            self.activation = activation
            self.reranker = reranker
            logger.info("serving %r (scores: %s)", reranker, activation)
        except Exception as exc:  # noqa: BLE001 - reported by /ready and the CLI
            self.error = exc
            logger.error("could not load the reranker: %s", exc)
        finally:
            self._loaded.set()

    # -- scoring ------------------------------------------------------------------------------
    async def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None, raw: bool
    ) -> tuple[list[RerankResult], int, Any]:
        """Rank ``documents``; return the results, how many documents were truncated, and
        the engine's stats of the pass that scored them."""
        reranker = self.reranker
        if reranker is None:  # pragma: no cover - the routes check readiness first
            msg = "the model is not loaded yet"
            raise RuntimeError(msg)
        docs = list(documents)
        options = RankOptions.parse(top_n=top_n)
        if not docs:
            return [], 0, None
        scored = await reranker.arerank(query, docs)
        stats = reranker.last_stats
        logits = [0.0] * len(docs)
        reads = [DocRead(False, 1)] * len(docs)
        for r in scored:
            logits[r.index] = r.rerank_score
            reads[r.index] = DocRead(r.truncated, r.n_windows, r.span)
        scores = logits if raw or self.activation == "raw" else [_sigmoid(x) for x in logits]
        n_truncated = sum(r.truncated for r in scored)
        return rank_results(docs, scores, options, reads=reads), n_truncated, stats
