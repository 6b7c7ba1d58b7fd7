"""Settings of ``crossrank serve``: one frozen dataclass the CLI and the library share."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from crossrank.errors import InvalidInputError
from crossrank.ranking import check_choice, check_positive_int
from crossrank.types import OVERFLOWS, Overflow

__all__ = ["API_KEY_ENV", "LOOPBACK", "ServeConfig"]

#: Environment variable read for the API key when none is passed.
API_KEY_ENV = "CROSSRANK_API_KEY"
LOOPBACK = "127.0.0.1"
_ACTIVATIONS = ("auto", "raw", "sigmoid")


@dataclass(frozen=True)
class ServeConfig:
    """What the reranking service loads and how it guards itself.

    Attributes:
        model: model folder or hub id (``None``: crossrank's default resolution).
        host: address to bind; ``None`` binds 127.0.0.1 unless API keys are set (then
            0.0.0.0), so an unauthenticated server is only reachable from this machine.
        port: TCP port.
        backend / device / dtype / max_length / overflow / token_budget: passed to
            :class:`crossrank.Reranker`.
        activation: scores served by default: ``"auto"`` (what the model's configuration
            says), ``"raw"`` logits or ``"sigmoid"`` probabilities. TEI's ``raw_scores``
            asks for logits per request.
        api_keys: bearer tokens accepted (empty: no authentication).
        max_documents: most documents in one request (more: 413).
        max_request_bytes: largest request body (larger: 413).
        max_queue: most rerank requests admitted at once, running or waiting for the model
            (more: 429 with ``Retry-After``).
        retry_after_s: the ``Retry-After`` value sent with a 429.
        graceful_timeout_s: how long SIGTERM waits for in-flight requests.
    """

    model: str | None = None
    host: str | None = None
    port: int = 8080
    backend: str = "torch"
    device: str = "auto"
    dtype: str = "auto"
    max_length: int | None = None
    overflow: Overflow = "truncate"
    activation: str = "auto"
    token_budget: int | None = None
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    max_documents: int = 1000
    max_request_bytes: int = 8 * 1024 * 1024
    max_queue: int = 256
    retry_after_s: int = 1
    graceful_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        check_choice("overflow", self.overflow, OVERFLOWS)
        check_choice("activation", self.activation, _ACTIVATIONS)
        for name in ("max_documents", "max_request_bytes", "max_queue", "retry_after_s"):
            check_positive_int(name, getattr(self, name))
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            msg = f"port must be an integer, got {self.port!r}"
            raise InvalidInputError(msg)
        if not 0 <= self.port <= 65535:
            msg = f"port must be between 0 and 65535, got {self.port}"
            raise InvalidInputError(msg)
        if self.max_length is not None:
            check_positive_int("max_length", self.max_length)
        if any(not isinstance(k, str) or not k for k in self.api_keys):
            msg = "api_keys must be non-empty strings"
            raise InvalidInputError(msg)

    @property
    def bind_host(self) -> str:
        """The address actually bound (see ``host``)."""
        if self.host:
            return self.host
        return "0.0.0.0" if self.api_keys else LOOPBACK

    @staticmethod
    def keys_from(explicit: Sequence[str] | None) -> tuple[str, ...]:
        """The API keys passed, else ``$CROSSRANK_API_KEY`` (comma-separated), else none."""
        if explicit:
            return tuple(explicit)
        env = os.environ.get(API_KEY_ENV, "")
        return tuple(k.strip() for k in env.split(",") if k.strip())
