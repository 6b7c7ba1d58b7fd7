"""``CrossrankCrossEncoder``: LangChain's cross-encoder interface on the crossrank engine."""

from __future__ import annotations

from langchain_core.cross_encoders import BaseCrossEncoder
from pydantic import ConfigDict

from crossrank.adapters import EngineOptions
from crossrank.types import SupportsScorePairs

__all__ = ["CrossrankCrossEncoder"]


class CrossrankCrossEncoder(EngineOptions, BaseCrossEncoder):
    """Scores (query, document) pairs with the crossrank engine.

    It implements ``langchain_core.cross_encoders.BaseCrossEncoder`` (the class that
    ``langchain_classic``'s and ``langchain_community``'s ``BaseCrossEncoder`` re-export), so
    LangChain's stock ``CrossEncoderReranker(model=CrossrankCrossEncoder(...))`` runs on the
    engine: truncation-safe, length-sorted batches, scores as Python floats.

    Pass an engine (``reranker=crossrank.Reranker(...)``, or anything with ``score_pairs``) or
    the engine options to have one built. Scores are raw logits or probabilities as the
    engine's ``activation`` says. It can be pickled (carrying its engine options, not the
    loaded model) and deep-copied (sharing the engine).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    reranker: SupportsScorePairs | None = None
    """An engine to use (e.g. a shared :class:`crossrank.Reranker`); built from the engine
    options when ``None``."""

    @property
    def engine(self) -> SupportsScorePairs:
        """The engine this cross-encoder scores with."""
        engine: SupportsScorePairs = self._current_engine()
        return engine

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        """One score per pair, in the given order; higher means more relevant."""
        if not text_pairs:
            return []
        return [float(s) for s in self.engine.score_pairs(text_pairs)]
