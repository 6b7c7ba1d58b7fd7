"""``CrossrankCrossEncoder``: LangChain's cross-encoder interface on the crossrank engine."""

from __future__ import annotations

from typing import Any

from langchain_core.cross_encoders import BaseCrossEncoder
from pydantic import ConfigDict, PrivateAttr

from crossrank.types import SupportsScorePairs
from langchain_crossrank._engine import EngineOptions

__all__ = ["CrossrankCrossEncoder"]


class CrossrankCrossEncoder(EngineOptions, BaseCrossEncoder):
    """Scores (query, document) pairs with the crossrank engine.

    It implements ``langchain_core.cross_encoders.BaseCrossEncoder`` (the class that
    ``langchain_classic``'s and ``langchain_community``'s ``BaseCrossEncoder`` re-export), so
    LangChain's stock ``CrossEncoderReranker(model=CrossrankCrossEncoder(...))`` runs on the
    engine: truncation-safe, length-sorted batches, scores as Python floats.

    Pass an engine (``reranker=crossrank.Reranker(...)``, or anything with ``score_pairs``) or
    the engine options to have one built. Scores are raw logits or probabilities as the
    engine's ``activation`` says.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    reranker: SupportsScorePairs | None = None
    """An engine to use (e.g. a shared :class:`crossrank.Reranker`); built from the engine
    options when ``None``."""

    _engine: SupportsScorePairs | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._check_not_both(self.reranker, "reranker")
        self._engine = self.reranker if self.reranker is not None else self._build_reranker()

    @property
    def engine(self) -> SupportsScorePairs:
        """The engine this cross-encoder scores with."""
        if self._engine is None:
            self._engine = self.reranker if self.reranker is not None else self._build_reranker()
        return self._engine

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        """One score per pair, in the given order; higher means more relevant."""
        if not text_pairs:
            return []
        return [float(s) for s in self.engine.score_pairs(text_pairs)]
