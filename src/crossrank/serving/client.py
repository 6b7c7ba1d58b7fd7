""":class:`RemoteReranker`: the engine's ``rerank``/``arerank`` against a crossrank server.

The server returns one score per document (its ``/v2/rerank`` route, all documents); the
ranking options (``top_n``, fusion with ``retrieval_scores``, ``min_score``) are applied
here by :func:`crossrank.ranking.rank_results`, the function the engine ranks with, so the
results equal an in-process :class:`crossrank.Reranker`'s.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from crossrank.errors import CrossrankError, DocumentTooLongError, InvalidInputError
from crossrank.ranking import RankOptions, rank_results
from crossrank.types import DocRead, RankArgs, RerankResult

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["RemoteReranker", "ServiceError"]

_RETRY_STATUS = frozenset({429, 502, 503, 504})
_RETRY_ERRORS = (httpx.TransportError,)


class ServiceError(CrossrankError, ConnectionError):
    """The reranking service could not be reached or refused (after the retries).

    Attributes:
        status_code: the HTTP status of the last answer, or ``None`` when none came.
    """

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RemoteReranker:
    """Rerank through a ``crossrank serve`` server; usable wherever a ``Reranker`` is.

    Args:
        url: the server's base URL, e.g. ``"http://127.0.0.1:8080"``.
        api_key: bearer key (sent as ``Authorization: Bearer <key>``).
        timeout: seconds per HTTP attempt.
        retries: extra attempts after a 429/502/503/504 answer or a connection error, with
            exponential back-off (``Retry-After`` is honoured, capped at ``max_backoff``).
        backoff: the first back-off in seconds; it doubles each retry (with jitter).
        max_backoff: the longest wait between two attempts.
        transport / async_transport: httpx transports (tests, proxies, mocks).

    Sync calls reuse one pooled connection (the client is thread-safe); each async call opens
    its own ``httpx.AsyncClient``, so it works from any event loop.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            msg = f"url must be an http(s) URL such as 'http://127.0.0.1:8080', got {url!r}"
            raise InvalidInputError(msg)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            msg = f"retries must be a non-negative integer, got {retries!r}"
            raise InvalidInputError(msg)
        for name, value in (
            ("timeout", timeout),
            ("backoff", backoff),
            ("max_backoff", max_backoff),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                msg = f"{name} must be a non-negative number of seconds, got {value!r}"
                raise InvalidInputError(msg)
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._transport = transport
        self._async_transport = async_transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RemoteReranker(url={self.url!r}, retries={self.retries})"

    # -- public API ---------------------------------------------------------------------------
    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        retrieval_scores: Sequence[float] | None = None,
        **options: Unpack[RankArgs],
    ) -> list[RerankResult]:
        """Like :meth:`crossrank.Reranker.rerank`, scored by the server."""
        opts, docs, dense = _check(query, documents, retrieval_scores, options)
        if not docs:
            return []
        body = self._post_sync("/v2/rerank", _payload(query, docs))
        return _results(body, docs, dense, opts)

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        retrieval_scores: Sequence[float] | None = None,
        **options: Unpack[RankArgs],
    ) -> list[RerankResult]:
        """Like :meth:`crossrank.Reranker.arerank`, scored by the server."""
        opts, docs, dense = _check(query, documents, retrieval_scores, options)
        if not docs:
            return []
        body = await self._post_async("/v2/rerank", _payload(query, docs))
        return _results(body, docs, dense, opts)

    def info(self) -> dict[str, Any]:
        """The server's ``GET /info``: model, max_length, backend, device, limits."""
        response = self._send_sync("GET", "/info", None)
        data: dict[str, Any] = response.json()
        return data

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> RemoteReranker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ---------------------------------------------------------------------------------
    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self.url,
                    headers=self._headers,
                    timeout=self.timeout,
                    transport=self._transport,
                )
            return self._client

    def _post_sync(self, path: str, payload: dict[str, Any]) -> Any:
        return self._send_sync("POST", path, payload).json()

    def _send_sync(self, method: str, path: str, payload: dict[str, Any] | None) -> httpx.Response:
        client = self._sync_client()
        attempt = 0
        while True:
            try:
                response = client.request(method, path, json=payload)
            except _RETRY_ERRORS as exc:
                if attempt >= self.retries:
                    raise _unreachable(self.url, exc) from exc
                time.sleep(self._delay(attempt, None))
            else:
                if response.status_code not in _RETRY_STATUS or attempt >= self.retries:
                    return _checked(response)
                time.sleep(self._delay(attempt, response))
            attempt += 1

    async def _post_async(self, path: str, payload: dict[str, Any]) -> Any:
        async with httpx.AsyncClient(
            base_url=self.url,
            headers=self._headers,
            timeout=self.timeout,
            transport=self._async_transport,
        ) as client:
            attempt = 0
            while True:
                try:
                    response = await client.post(path, json=payload)
                except _RETRY_ERRORS as exc:
                    if attempt >= self.retries:
                        raise _unreachable(self.url, exc) from exc
                    await asyncio.sleep(self._delay(attempt, None))
                else:
                    if response.status_code not in _RETRY_STATUS or attempt >= self.retries:
                        return _checked(response).json()
                    await asyncio.sleep(self._delay(attempt, response))
                attempt += 1

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                return min(float(retry_after), self.max_backoff)
        wait = min(self.backoff * 2.0**attempt, self.max_backoff)
        return wait * (0.5 + random.random() / 2)


def _check(
    query: object,
    documents: object,
    retrieval_scores: Sequence[float] | None,
    options: Mapping[str, Any],
) -> tuple[RankOptions, list[str], list[float] | None]:
    opts = RankOptions.parse(options)  # type: ignore[arg-type]
    if not isinstance(query, str) or not query.strip():
        msg = "query must be a non-empty string"
        raise InvalidInputError(msg)
    if isinstance(documents, str | bytes) or not isinstance(documents, Sequence):
        msg = f"documents must be a list of strings, got {type(documents).__name__}"
        raise InvalidInputError(msg)
    docs = list(documents)
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            msg = f"document {i} must be a string, got {type(doc).__name__}"
            raise InvalidInputError(msg)
    return opts, docs, opts.check_request(retrieval_scores, len(docs))


def _payload(query: str, docs: list[str]) -> dict[str, Any]:
    return {"model": "crossrank", "query": query, "documents": docs}


def _unreachable(url: str, exc: Exception) -> ServiceError:
    return ServiceError(f"could not reach the reranking service at {url}: {exc!r}")


def _checked(response: httpx.Response) -> httpx.Response:
    status = response.status_code
    if status < 400:
        return response
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text}
    message = _message(body) or f"HTTP {status}"
    if status in (400, 413, 422):
        if isinstance(body, dict) and body.get("error_type") == "document_too_long":
            raise DocumentTooLongError(
                message,
                index=int(body.get("index") or 0),
                n_tokens=int(body.get("n_tokens") or 0),
                budget=int(body.get("budget") or 0),
            )
        msg = f"the reranking service refused the request ({status}): {message}"
        raise InvalidInputError(msg)
    msg = f"the reranking service answered {status}: {message}"
    raise ServiceError(msg, status)


def _message(body: Any) -> str:
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return str(body["message"])
        detail = body.get("detail")
        if isinstance(detail, list):
            return "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}"
                for d in detail
                if isinstance(d, dict)
            )
        if detail is not None:
            return str(detail)
    return ""


def _results(
    body: Any, docs: list[str], dense: list[float] | None, opts: RankOptions
) -> list[RerankResult]:
    scores: list[float | None] = [None] * len(docs)
    reads: list[DocRead] = [DocRead(False, 1)] * len(docs)
    try:
        for item in body["results"]:
            i = int(item["index"])
            scores[i] = float(item["relevance_score"])
            span = item.get("span")
            reads[i] = DocRead(
                bool(item.get("truncated", False)),
                int(item.get("n_windows", 1)),
                None if span is None else (int(span[0]), int(span[1])),
            )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        msg = f"the reranking service sent a malformed answer: {exc!r}"
        raise ServiceError(msg) from exc
    if any(s is None for s in scores):
        msg = "the reranking service did not score every document"
        raise ServiceError(msg)
    return rank_results(
        docs, [float(s) for s in scores if s is not None], opts, retrieval_scores=dense, reads=reads
    )
