"""``crossrank serve``: a reranking service with Cohere- and TEI-compatible APIs.

Needs the ``serve`` extra (``pip install "crossrank[serve]"``): FastAPI, uvicorn,
prometheus-client and httpx. :class:`RemoteReranker` (httpx only) calls such a server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crossrank.errors import MissingExtraError

if TYPE_CHECKING:
    from crossrank.serving.app import create_app
    from crossrank.serving.client import RemoteReranker, ServiceError
    from crossrank.serving.config import ServeConfig
    from crossrank.serving.server import ServerThread, run_server, running_server

__all__ = [
    "RemoteReranker",
    "ServeConfig",
    "ServerThread",
    "ServiceError",
    "create_app",
    "run_server",
    "running_server",
]

_LAZY = {
    "RemoteReranker": "crossrank.serving.client",
    "ServiceError": "crossrank.serving.client",
    "ServeConfig": "crossrank.serving.config",
    "create_app": "crossrank.serving.app",
    "ServerThread": "crossrank.serving.server",
    "run_server": "crossrank.serving.server",
    "running_server": "crossrank.serving.server",
}
_PACKAGES = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "prometheus_client": "prometheus-client",
    "httpx": "httpx",
    "pydantic": "pydantic",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'crossrank.serving' has no attribute {name!r}"
        raise AttributeError(msg)
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        package = _PACKAGES.get((exc.name or "").split(".")[0])
        if package is None:
            raise
        raise MissingExtraError(package, "serve", "crossrank's reranking service") from exc
    globals()[name] = value
    return value
