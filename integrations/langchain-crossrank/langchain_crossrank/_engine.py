"""Engine options shared by the compressor and the cross-encoder, and building the engine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crossrank.adapters import build_reranker, refuse_engine_and_options

if TYPE_CHECKING:
    from crossrank.engine.reranker import Reranker

__all__ = ["EngineOptions"]

# The options set through explicit fields; everything else goes through ``reranker_kwargs``.
_EXPLICIT = ("model", "device", "dtype", "max_length", "overflow", "activation")
_OPTION_FIELDS = (*_EXPLICIT, "reranker_kwargs")


class EngineOptions(BaseModel):
    """How to build a :class:`crossrank.Reranker` when none is passed in.

    The common settings are fields; any other ``Reranker`` keyword argument (``query_max_tokens``,
    ``stride``, ``aggregate``, ``token_budget``, ``cache_size``, ``model_kwargs``, ...) goes in
    ``reranker_kwargs``, checked against the engine's signature.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    model: str | Path | None = None
    """A local model folder or hub id; ``None`` lets crossrank resolve it
    (``$CROSSRANK_RERANKER``, then the starter model, then the default hub model)."""
    device: str = "auto"
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda[:N]"`` or ``"mps"``."""
    dtype: str = "auto"
    """``"auto"`` (bf16/fp16 on CUDA, fp32 on CPU), ``"float32"``, ``"bfloat16"`` or
    ``"float16"``; scores are computed in fp32 either way."""
    max_length: int | None = Field(default=None, ge=1)
    """Tokens per (query, document) pair; default the model's configured length."""
    overflow: Literal["truncate", "chunk", "error"] = "truncate"
    """What happens to a document that does not fit: cut, scored in windows, or refused."""
    activation: Literal["auto", "raw", "sigmoid"] = "auto"
    """Scores as raw logits or sigmoid probabilities; ``"auto"`` follows the model's config."""
    reranker_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other keyword arguments for :class:`crossrank.Reranker`."""

    def _options_set(self) -> list[str]:
        return [name for name in _OPTION_FIELDS if name in self.model_fields_set]

    def _check_not_both(self, injected: object, field: str) -> None:
        refuse_engine_and_options(injected, self._options_set(), field)

    def _build_reranker(self) -> Reranker:
        explicit = {name: getattr(self, name) for name in _EXPLICIT}
        return build_reranker(explicit, self.reranker_kwargs)
