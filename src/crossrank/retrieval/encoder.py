"""Loading sentence-transformers bi-encoders, one shared instance per (model, device)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["load_encoder", "resolve_device"]

_ENCODERS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when CUDA is available, else ``"cpu"``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder(source: str, device: str, model_kwargs: Mapping[str, Any]) -> Any:
    """A ``SentenceTransformer`` for ``source`` on ``device``.

    Without ``model_kwargs`` the instance is shared by every retriever of the process
    (encoding does not modify it); with them, each call loads its own.
    """
    from sentence_transformers import SentenceTransformer

    resolved = resolve_device(device)
    if model_kwargs:
        return SentenceTransformer(source, device=resolved, **dict(model_kwargs))
    with _LOCK:
        encoder = _ENCODERS.get((source, resolved))
        if encoder is None:
            encoder = SentenceTransformer(source, device=resolved)
            _ENCODERS[(source, resolved)] = encoder
        return encoder
