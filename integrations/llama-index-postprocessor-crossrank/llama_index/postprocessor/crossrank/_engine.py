"""Engine options of :class:`~llama_index.postprocessor.crossrank.CrossrankRerank`, and building
the engine from them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crossrank.adapters import build_reranker, refuse_engine_and_options

if TYPE_CHECKING:
    from crossrank.engine.reranker import Reranker

__all__ = ["EngineOptions"]

# The options set through explicit fields; everything else goes through ``reranker_kwargs``.
_EXPLICIT = (
    "model",
    "device",
    "dtype",
    "max_length",
    "overflow",
    "activation",
    "trust_remote_code",
)
_OPTION_FIELDS = (*_EXPLICIT, "reranker_kwargs")


class EngineOptions(BaseModel):
    """How to build a :class:`crossrank.Reranker` when none is passed in.

    The common settings are fields; any other ``Reranker`` keyword argument (``query_max_tokens``,
    ``stride``, ``aggregate``, ``token_budget``, ``cache_size``, ``model_kwargs``, ...) goes in
    ``reranker_kwargs``, checked against the engine's signature.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    model: str | Path | None = Field(
        default=None,
        description=(
            "A local cross-encoder folder or hub id; None lets crossrank resolve it "
            "($CROSSRANK_RERANKER, then the starter model, then the default hub model)."
        ),
    )
    device: str = Field(
        default="auto",
        description=(
            "'auto' (CUDA when available, else CPU; None means the same), 'cpu', 'cuda[:N]' "
            "or 'mps'."
        ),
    )
    dtype: str = Field(
        default="auto",
        description=(
            "'auto' (bf16/fp16 on CUDA, fp32 on CPU), 'float32', 'bfloat16' or 'float16'; "
            "scores are computed in fp32 either way."
        ),
    )
    max_length: int | None = Field(
        default=None,
        ge=1,
        description="Tokens per (query, text) pair; default the model's configured length.",
    )
    overflow: Literal["truncate", "chunk", "error"] = Field(
        default="truncate",
        description="A text that does not fit is cut, scored in windows, or refused.",
    )
    activation: Literal["auto", "raw", "sigmoid"] = Field(
        default="auto",
        description="Scores as raw logits or sigmoid probabilities; 'auto' follows the model.",
    )
    trust_remote_code: bool = Field(
        default=False, description="Allow a hub model to run its own modelling code."
    )
    reranker_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Other keyword arguments for crossrank.Reranker."
    )

    @field_validator("device", mode="before")
    @classmethod
    def _none_is_auto(cls, value: object) -> object:
        # SentenceTransformerRerank takes device=None to mean "pick one".
        return "auto" if value is None else value

    def _options_set(self) -> list[str]:
        return [name for name in _OPTION_FIELDS if name in self.model_fields_set]

    def _check_not_both(self, injected: object, field: str) -> None:
        refuse_engine_and_options(injected, self._options_set(), field)

    def _build_reranker(self) -> Reranker:
        explicit = {name: getattr(self, name) for name in _EXPLICIT}
        return build_reranker(explicit, self.reranker_kwargs)
