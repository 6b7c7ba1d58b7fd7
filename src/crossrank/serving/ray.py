"""The reranking service on Ray Serve: one HTTP endpoint, many engine replicas.

Two deployments make one Serve application:

- ``CrossrankEngine`` — the replicas that score: each holds one :class:`crossrank.Reranker`
  (through :class:`~crossrank.serving.model.ServedModel`) whose coalescer batches the
  requests that replica has in flight. ``num_replicas`` or an autoscaling range (min/max
  replicas, target ongoing requests per replica) and ``ray_actor_options`` (CPUs, GPUs per
  replica) size it.
- ``CrossrankHTTP`` — the ingress: the very FastAPI app of ``crossrank serve``
  (:func:`~crossrank.serving.app.create_app`: Cohere and TEI routes, limits, keys, probes,
  ``/metrics``) wrapped with ``@serve.ingress``, whose model is a handle to the engine
  replicas. Reranking is a pure function of the request, so a request whose engine replica
  dies while it is in flight is sent again to another replica (``retries`` times): killing a
  replica loses no request.

``crossrank serve --ray`` (:func:`run_on_ray`) starts it on a local Ray instance or joins a
cluster with ``--address``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crossrank.errors import CrossrankError, DocumentTooLongError, InvalidInputError
from crossrank.ranking import check_positive_int
from crossrank.serving.config import ServeConfig
from crossrank.serving.model import ServedModel
from crossrank.types import RerankResult

__all__ = [
    "APP_NAME",
    "CrossrankEngine",
    "CrossrankHTTP",
    "EngineInfo",
    "RayServeOptions",
    "build_application",
    "run_on_ray",
]

logger = logging.getLogger(__name__)

APP_NAME = "crossrank"


def _serve() -> Any:
    try:
        from ray import serve
    except ImportError as exc:
        from crossrank.errors import MissingExtraError

        package, extra, purpose = "ray", "ray", "serving on Ray"
        raise MissingExtraError(package, extra, purpose) from exc
    return serve


@dataclass(frozen=True)
class RayServeOptions:
    """How the engine replicas are sized and scaled.

    Attributes:
        replicas: a fixed number of engine replicas (ignored when ``max_replicas`` is set).
        min_replicas / max_replicas / target_ongoing_requests: autoscaling, when
            ``max_replicas`` is set: Serve keeps about ``target_ongoing_requests`` requests
            on each replica, between ``min_replicas`` and ``max_replicas`` of them.
        cpus_per_replica / gpus_per_replica: ``ray_actor_options`` of each engine replica
            (a GPU replica runs its engine on CUDA; fractions share a GPU).
        max_ongoing_requests: requests one engine replica takes at once; those in flight
            together are batched by its coalescer.
        http_replicas: replicas of the (light) HTTP ingress.
        retries: how often a request whose engine replica died is sent to another one.
        proxy_location: where Serve runs HTTP proxies: ``"HeadOnly"`` or ``"EveryNode"``.
    """

    replicas: int = 1
    min_replicas: int = 1
    max_replicas: int | None = None
    target_ongoing_requests: float = 8.0
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    max_ongoing_requests: int = 64
    http_replicas: int = 1
    retries: int = 3
    proxy_location: str = "HeadOnly"

    def __post_init__(self) -> None:
        for name in ("replicas", "min_replicas", "max_ongoing_requests", "http_replicas"):
            check_positive_int(name, getattr(self, name))
        if self.max_replicas is not None:
            check_positive_int("max_replicas", self.max_replicas)
            if self.max_replicas < self.min_replicas:
                msg = f"max_replicas ({self.max_replicas}) is below min_replicas"
                raise InvalidInputError(msg)
        if self.cpus_per_replica < 0 or self.gpus_per_replica < 0:
            msg = "cpus_per_replica and gpus_per_replica must be non-negative"
            raise InvalidInputError(msg)
        if self.retries < 0 or self.target_ongoing_requests <= 0:
            msg = "retries must be >= 0 and target_ongoing_requests > 0"
            raise InvalidInputError(msg)

    def engine_deployment_options(self) -> dict[str, Any]:
        """Keyword arguments of ``serve.deployment`` for the engine replicas."""
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "ray_actor_options": {
                "num_cpus": self.cpus_per_replica,
                "num_gpus": self.gpus_per_replica,
            },
        }
        if self.max_replicas is not None:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


@dataclass(frozen=True)
class EngineInfo:
    """What ``GET /info`` says about the engine, as an engine replica reports it."""

    model_name: str
    model_source: str
    max_length: int
    backend: str
    device: str
    dtype: str
    activation: str | None


@dataclass(frozen=True)
class _Failure:
    """An engine error sent back as a value (crossrank's errors do not all pickle)."""

    kind: str
    message: str
    details: dict[str, int] = field(default_factory=dict)


class CrossrankEngine:
    """An engine replica: one loaded reranker; ready once the model is loaded."""

    def __init__(self, config: ServeConfig, num_threads: int | None = None) -> None:
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        self._model = ServedModel(config)
        self._model.load()

    def describe(self) -> EngineInfo:
        """The model and settings this replica serves (for ``GET /info``)."""
        reranker = self._model.reranker
        if reranker is None:  # pragma: no cover - load() raised otherwise
            msg = "the engine is not loaded"
            raise CrossrankError(msg)
        return EngineInfo(
            model_name=reranker.model_name,
            model_source=str(reranker.model_source),
            max_length=reranker.max_length,
            backend=reranker.backend,
            device=reranker.device,
            dtype=str(reranker.dtype).removeprefix("torch."),
            activation=self._model.activation,
        )

    async def rerank(
        self, query: str, texts: list[str], top_n: int | None, raw: bool
    ) -> tuple[list[RerankResult], int] | _Failure:
        """What :meth:`ServedModel.rerank` returns, or the engine's refusal as a value."""
        try:
            return await self._model.rerank(query, texts, top_n=top_n, raw=raw)
        except DocumentTooLongError as exc:
            details = {"index": exc.index, "n_tokens": exc.n_tokens, "budget": exc.budget}
            return _Failure("too_long", str(exc), details)
        except InvalidInputError as exc:
            return _Failure("invalid", str(exc))

    def check_health(self) -> None:
        """Serve's health check: raise what loading the model raised."""
        if self._model.error is not None:
            raise self._model.error


class _RemoteModel:
    """:class:`ServedModel`'s interface, scoring on the engine replicas through a handle."""

    def __init__(self, handle: Any, config: ServeConfig, info: EngineInfo, retries: int) -> None:
        self.config = config
        self.reranker = info
        self.activation = info.activation
        self.error: BaseException | None = None
        self.ready = True
        self._handle = handle
        self._retries = retries
        self.on_retry: Callable[[], None] = lambda: None

    def start_loading(self) -> None:
        """The engine replicas load their model; nothing to do here."""

    def add_pass_listener(self, listener: Callable[[Any], None]) -> None:
        """Engine passes run on the replicas; their figures are in Ray Serve's metrics."""

    async def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None, raw: bool
    ) -> tuple[list[RerankResult], int]:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        texts = list(documents)
        for attempt in range(self._retries + 1):
            try:
                outcome = await self._handle.rerank.remote(query, texts, top_n, raw)
                break
            except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
                if attempt >= self._retries:
                    raise
                logger.warning("an engine replica died (%s); sending the request again", exc)
                self.on_retry()
                await asyncio.sleep(0.05 * 2**attempt)
        if isinstance(outcome, _Failure):
            if outcome.kind == "too_long":
                raise DocumentTooLongError(outcome.message, **outcome.details)
            raise InvalidInputError(outcome.message)
        results, n_truncated = outcome
        return list(results), int(n_truncated)


class CrossrankHTTP:
    """The ingress replica: ``crossrank serve``'s FastAPI app over the engine replicas."""

    async def __init__(  # type: ignore[misc]  # Serve awaits an async constructor
        self, engine: Any, config: ServeConfig, retries: int = 3
    ) -> None:
        info = await engine.describe.remote()
        self._model = _RemoteModel(engine, config, info, retries)
        self._config = config

    def __serve_build_asgi_app__(self) -> Any:
        from prometheus_client import Counter

        from crossrank.serving.app import create_app

        app = create_app(self._config, model=self._model)  # type: ignore[arg-type]
        retries = Counter(
            "crossrank_engine_retries",
            "Requests sent again because the engine replica serving them died",
            registry=app.state.crossrank.metrics.registry,
        )
        self._model.on_retry = retries.inc
        return app


def build_application(config: ServeConfig, options: RayServeOptions | None = None) -> Any:
    """The Serve application (``serve.run`` it): HTTP ingress bound to engine replicas."""
    serve = _serve()
    options = options or RayServeOptions()
    threads = max(1, int(options.cpus_per_replica)) if options.gpus_per_replica == 0 else None
    if options.gpus_per_replica > 0 and config.device == "auto":
        from dataclasses import replace

        config = replace(config, device="cuda")
    engine = serve.deployment(CrossrankEngine, **options.engine_deployment_options())
    http = serve.deployment(
        serve.ingress()(CrossrankHTTP),
        name="CrossrankHTTP",
        num_replicas=options.http_replicas,
        max_ongoing_requests=config.max_queue,
        ray_actor_options={"num_cpus": 0},
    )
    return http.bind(engine.bind(config, threads), config, options.retries)


def run_on_ray(
    config: ServeConfig,
    options: RayServeOptions | None = None,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Serve on Ray until SIGINT/SIGTERM (or ``stop`` is set); return 0.

    Joins the cluster at ``address`` (or ``$RAY_ADDRESS``), else starts a local Ray instance
    of ``num_cpus`` CPUs. Serve's HTTP proxy listens on ``config.bind_host:config.port``.
    """
    import ray

    serve = _serve()
    options = options or RayServeOptions()
    init: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address is not None:
        init["address"] = address
    elif not os.environ.get("RAY_ADDRESS"):
        # A new local instance (never one found on this machine), over loopback only.
        init.update(address="local", _node_ip_address="127.0.0.1")
        if num_cpus is not None:
            init["num_cpus"] = num_cpus
    ray.init(**init)
    done = stop or threading.Event()
    try:
        serve.start(
            http_options={"host": config.bind_host, "port": config.port},
            proxy_location=options.proxy_location,
        )
        serve.run(build_application(config, options), name=APP_NAME, route_prefix="/")
        logger.warning(
            "serving on Ray at http://%s:%d (%s engine replicas)",
            config.bind_host,
            config.port,
            options.replicas
            if options.max_replicas is None
            else f"{options.min_replicas}-{options.max_replicas}",
        )
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: done.set())
        done.wait()
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    return 0
