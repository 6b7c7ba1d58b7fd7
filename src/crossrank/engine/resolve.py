"""Which reranker model to use when none is named."""

from __future__ import annotations

import os
from pathlib import Path

from crossrank.errors import ModelNotFoundError
from crossrank.paths import cache_dir, shared_starter_dir

__all__ = ["DEFAULT_HUB_RERANKER", "resolve_reranker", "starter_model_dir"]

DEFAULT_HUB_RERANKER = "cross-encoder/ms-marco-MiniLM-L-6-v2"
ENV_RERANKER = "CROSSRANK_RERANKER"


def starter_model_dir() -> Path:
    """Where ``crossrank train --preset starter`` writes the project's starter reranker."""
    return cache_dir() / "models" / "starter"


def _hub_reachable() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() not in {"1", "true", "yes", "on"}


def resolve_reranker(model: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """Return ``(model, reason)``: the model to load and why it was chosen.

    Order: the ``model`` argument; ``$CROSSRANK_RERANKER``; the starter model in crossrank's
    cache (``crossrank train --preset starter``); the project's shared starter model beside
    the checkout (:func:`crossrank.paths.shared_starter_dir`); the default hub model when the
    hub may be used. Raises :class:`ModelNotFoundError` naming these ways when none applies.
    """
    if model is not None:
        return str(model), "named by the caller"
    env = os.environ.get(ENV_RERANKER)
    if env:
        return env, f"from ${ENV_RERANKER}"
    starter = starter_model_dir()
    if (starter / "config.json").is_file():
        return str(starter), "the starter model in crossrank's cache"
    shared = shared_starter_dir()
    if (shared / "config.json").is_file():
        return str(shared), "the project's shared starter model"
    if _hub_reachable():
        return DEFAULT_HUB_RERANKER, "the default hub model (needs network access)"
    msg = (
        "no reranker model is available. Use one of: pass a model folder or hub id "
        f"(model=... or --reranker), set ${ENV_RERANKER} to a model folder, or train the "
        f"starter model into {starter} with `crossrank train --preset starter` "
        f"(with network access, the hub model {DEFAULT_HUB_RERANKER} is used by default)"
    )
    raise ModelNotFoundError(msg)
