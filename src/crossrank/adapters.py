"""What every framework adapter does the same way: take an engine, or build one from options.

The adapters declare their options in their host's style (pydantic fields, docs); this module
holds the checks and the building, so the LlamaIndex and LangChain packages agree.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from crossrank.errors import InvalidInputError

if TYPE_CHECKING:
    from crossrank.engine.reranker import Reranker

__all__ = ["build_reranker", "refuse_engine_and_options"]


def refuse_engine_and_options(injected: object, options_set: Sequence[str], field: str) -> None:
    """Raise when both an engine (``field=``) and engine options were given."""
    if injected is not None and options_set:
        msg = (
            f"pass either {field}= (an engine already configured) or engine options "
            f"({', '.join(options_set)}), not both; set those options on the engine you pass"
        )
        raise InvalidInputError(msg)


def build_reranker(explicit: Mapping[str, Any], reranker_kwargs: Mapping[str, Any]) -> Reranker:
    """A :class:`~crossrank.Reranker` from an adapter's explicit options (``model`` and keyword
    arguments) plus ``reranker_kwargs``, whose names are checked against the engine's own."""
    from crossrank.engine.reranker import Reranker

    allowed = set(inspect.signature(Reranker).parameters) - set(explicit)
    unknown = sorted(set(reranker_kwargs) - allowed)
    if unknown:
        msg = (
            f"reranker_kwargs has options crossrank.Reranker does not take: "
            f"{', '.join(unknown)}; use the fields {', '.join(explicit)} or one of "
            f"{', '.join(sorted(allowed))}"
        )
        raise InvalidInputError(msg)
    options = dict(explicit)
    model = options.pop("model", None)
    return Reranker(model, **options, **reranker_kwargs)
