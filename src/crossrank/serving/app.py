"""The FastAPI app: Cohere- and TEI-shaped rerank routes, probes, metrics and info."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

import crossrank
from crossrank.errors import DocumentTooLongError, InvalidInputError, NonFiniteScoreError
from crossrank.serving.config import ServeConfig
from crossrank.serving.guards import Admission, BodyLimit, KeyCheck, MetricsMiddleware, error_body
from crossrank.serving.metrics import Metrics
from crossrank.serving.model import ServedModel
from crossrank.serving.schemas import (
    ApiVersion,
    BilledUnits,
    CohereMeta,
    CohereRerankRequest,
    CohereRerankResponse,
    CohereResult,
    ErrorResponse,
    InfoResponse,
    ResultDocument,
    StatusResponse,
    TeiRank,
    TeiRerankRequest,
)
from crossrank.types import RerankResult

__all__ = ["ApiError", "create_app"]

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the service answers with :class:`ErrorResponse` and ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        error_type: str,
        *,
        headers: dict[str, str] | None = None,
        **details: int | None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.details = details
        self.headers = headers


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: _doc("Missing or wrong API key.")}
_RERANK_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _doc("A document does not fit (`overflow=error`, `index` names it) or bad input."),
    **_AUTH_ERRORS,
    413: _doc("Too many documents or too large a body."),
    429: _doc("The queue is full; retry after `Retry-After` seconds."),
    503: _doc("The model is still loading; retry after `Retry-After` seconds."),
}


_BEARER = HTTPBearer(auto_error=False, description="An API key the server was started with.")
_Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


class _State:
    def __init__(self, config: ServeConfig, model: ServedModel) -> None:
        self.config = config
        self.model = model
        self.admission = Admission(config.max_queue)
        self.keys = KeyCheck(config.api_keys)
        self.metrics = Metrics(lambda: float(self.admission.active))

    async def rerank(
        self, query: str, texts: Sequence[str], *, top_n: int | None, raw: bool
    ) -> list[RerankResult]:
        retry = {"Retry-After": str(self.config.retry_after_s)}
        if not self.model.ready:
            raise ApiError(
                503, "the model is still loading; retry shortly", "not_ready", headers=retry
            )
        if len(texts) > self.config.max_documents:
            msg = (
                f"{len(texts)} documents exceed the server's limit of "
                f"{self.config.max_documents} per request; split the request"
            )
            raise ApiError(413, msg, "too_many_documents")
        if not self.admission.try_enter():
            self.metrics.rejected.inc()
            msg = (
                f"the server's queue is full ({self.config.max_queue} requests); retry after "
                f"{self.config.retry_after_s} s"
            )
            raise ApiError(429, msg, "queue_full", headers=retry)
        try:
            results, n_truncated, stats = await self.model.rerank(
                query, texts, top_n=top_n, raw=raw
            )
        except DocumentTooLongError as exc:
            raise ApiError(
                400,
                str(exc),
                "document_too_long",
                index=exc.index,
                n_tokens=exc.n_tokens,
                budget=exc.budget,
            ) from None
        except InvalidInputError as exc:
            raise ApiError(400, str(exc), "invalid_input") from None
        except NonFiniteScoreError as exc:  # the model's fault, not the request's
            raise ApiError(500, str(exc), "non_finite_score") from None
        finally:
            self.admission.leave()
        self.metrics.observe_rerank(len(texts), n_truncated, stats)
        return results


def create_app(config: ServeConfig | None = None, *, model: ServedModel | None = None) -> FastAPI:
    """The reranking service as an ASGI app; the model loads in the background at start-up.

    ``GET /health`` answers at once, ``GET /ready`` once the model is loaded; rerank routes
    answer 503 (with ``Retry-After``) until then.
    """
    config = config or ServeConfig()
    state = _State(config, model or ServedModel(config))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.model.start_loading()
        yield

    app = FastAPI(
        title="crossrank",
        version=crossrank.__version__,
        summary="Cross-encoder reranking with Cohere- and TEI-compatible APIs.",
        lifespan=lifespan,
    )
    app.state.crossrank = state

    async def authorize(request: Request, credentials: _Credentials) -> None:
        # The bearer scheme documents the header in the OpenAPI schema; the raw header is
        # checked (in constant time) so that a malformed one is a 401 too.
        if state.keys.enabled and not state.keys.allows(request.headers.get("authorization")):
            raise ApiError(
                401,
                "missing or wrong API key; send 'Authorization: Bearer <key>'",
                "unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )

    guarded = [Depends(authorize)] if state.keys.enabled else []

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not read the body (not UTF-8, not JSON)
            detail = [{"type": "body_unreadable", "loc": ["body"], "msg": str(exc.detail)}]
            return JSONResponse({"detail": detail}, status_code=422)
        return JSONResponse(
            error_body(str(exc.detail), "http_error"),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.message, exc.error_type, **exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

    async def cohere(body: CohereRerankRequest, version: str) -> CohereRerankResponse:
        texts = body.texts()
        results = await state.rerank(body.query, texts, top_n=body.top_n, raw=False)
        return CohereRerankResponse(
            id=uuid.uuid4().hex,
            results=[
                CohereResult(
                    index=r.index,
                    relevance_score=r.score,
                    document=ResultDocument(text=r.document) if body.return_documents else None,
                    truncated=r.truncated,
                    n_windows=r.n_windows,
                    span=r.span,
                )
                for r in results
            ],
            meta=CohereMeta(
                api_version=ApiVersion(version=version),
                billed_units=BilledUnits(search_units=max(1, math.ceil(len(texts) / 100))),
            ),
        )

    @app.post(
        "/v1/rerank",
        response_model=CohereRerankResponse,
        response_model_exclude_none=True,
        responses=_RERANK_ERRORS,
        dependencies=guarded,
        tags=["rerank"],
        summary="Rerank (Cohere v1)",
    )
    async def rerank_v1(body: CohereRerankRequest) -> CohereRerankResponse:
        """Cohere's v1 rerank: `cohere.Client(base_url=...).rerank` works unchanged."""
        return await cohere(body, "1")

    @app.post(
        "/v2/rerank",
        response_model=CohereRerankResponse,
        response_model_exclude_none=True,
        responses=_RERANK_ERRORS,
        dependencies=guarded,
        tags=["rerank"],
        summary="Rerank (Cohere v2)",
    )
    async def rerank_v2(body: CohereRerankRequest) -> CohereRerankResponse:
        """Cohere's v2 rerank: `cohere.ClientV2(base_url=...).rerank` works unchanged."""
        return await cohere(body, "2")

    @app.post(
        "/rerank",
        response_model=list[TeiRank],
        response_model_exclude_none=True,
        responses=_RERANK_ERRORS,
        dependencies=guarded,
        tags=["rerank"],
        summary="Rerank (text-embeddings-inference)",
    )
    async def rerank_tei(body: TeiRerankRequest) -> list[TeiRank]:
        """TEI's `/rerank`: every text, best first; `raw_scores` gives logits."""
        results = await state.rerank(body.query, body.texts, top_n=None, raw=body.raw_scores)
        if body.truncate is False:
            cut = [r.index for r in results if r.truncated]
            if cut:
                msg = (
                    f"text {min(cut)} does not fit in the model's max_length with the query "
                    "and truncate=false was asked; shorten it or send truncate=true"
                )
                raise ApiError(400, msg, "document_too_long", index=min(cut))
        return [
            TeiRank(
                index=r.index,
                score=r.score,
                text=r.document if body.return_text else None,
                truncated=r.truncated,
                n_windows=r.n_windows,
                span=r.span,
            )
            for r in results
        ]

    @app.get("/health", response_model=StatusResponse, tags=["probes"])
    async def health() -> StatusResponse:
        """Liveness: the process answers."""
        return StatusResponse(status="ok")

    @app.get(
        "/ready",
        response_model=StatusResponse,
        responses={503: {"model": StatusResponse, "description": "Loading, or loading failed."}},
        tags=["probes"],
    )
    async def ready() -> Any:
        """Readiness: the model is loaded and requests are served."""
        if state.model.ready:
            return StatusResponse(status="ready")
        status = "failed" if state.model.error is not None else "loading"
        return JSONResponse({"status": status}, status_code=503)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **_AUTH_ERRORS,
        },
        dependencies=guarded,
        tags=["probes"],
    )
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/info",
        response_model=InfoResponse,
        response_model_exclude_none=True,
        responses=_AUTH_ERRORS,
        dependencies=guarded,
        tags=["probes"],
    )
    async def info() -> InfoResponse:
        """The model and settings served."""
        return _info(state)

    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)  # outermost: sees every answer
    return app


def _info(state: _State) -> InfoResponse:
    c = state.config
    reranker = state.model.reranker
    return InfoResponse(
        model=reranker.model_name if reranker else str(c.model),
        model_source=str(reranker.model_source) if reranker else None,
        max_length=reranker.max_length if reranker else c.max_length,
        backend=reranker.backend if reranker else c.backend,
        device=reranker.device if reranker else None,
        dtype=str(reranker.dtype).removeprefix("torch.") if reranker else None,
        overflow=c.overflow,
        activation=state.model.activation,
        ready=state.model.ready,
        max_documents=c.max_documents,
        max_request_bytes=c.max_request_bytes,
        max_queue=c.max_queue,
        crossrank_version=crossrank.__version__,
    )
