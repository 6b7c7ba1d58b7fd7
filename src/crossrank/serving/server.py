"""Running the service with uvicorn: in the foreground (the CLI) or in a thread (tests,
benchmarks, notebooks)."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

import uvicorn

from crossrank.errors import CrossrankError
from crossrank.serving.app import create_app
from crossrank.serving.config import API_KEY_ENV, ServeConfig

__all__ = ["ServerThread", "run_server", "running_server"]

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server, but SIGTERM/SIGINT end it with exit code 0.

    uvicorn stops accepting, lets in-flight requests finish (up to the graceful timeout) and
    then re-raises the signal, which would kill the process with it; a service stopped on
    purpose should exit 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _uvicorn_config(config: ServeConfig, app: Any, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=config.bind_host,
        port=config.port,
        log_level=log_level,
        timeout_graceful_shutdown=int(config.graceful_timeout_s),
        lifespan="on",
        access_log=False,
    )


def announce(config: ServeConfig) -> None:
    """Log how the server is reachable, and warn when it is open without a key."""
    host = config.bind_host
    if config.api_keys:
        logger.warning("API keys required (%d configured); binding %s", len(config.api_keys), host)
    elif _is_loopback(host):
        logger.warning(
            "no API key configured: binding %s only, reachable from this machine alone "
            "(pass --api-key or set $%s to serve other machines)",
            host,
            API_KEY_ENV,
        )
    else:
        logger.warning(
            "no API key configured and binding %s: anyone who reaches this address can "
            "use the model; pass --api-key or set $%s",
            host,
            API_KEY_ENV,
        )


def run_server(config: ServeConfig, *, log_level: str = "info") -> int:
    """Serve in the foreground until SIGTERM/SIGINT; load the model first. Returns 0."""
    app = create_app(config)
    announce(config)
    # Each result says whether its document was cut and /metrics counts them; the engine's
    # warning on every call that truncates would flood a service's log.
    logging.getLogger("crossrank.engine.reranker").setLevel(logging.ERROR)
    model = app.state.crossrank.model
    model.load()  # fail fast on a bad model, before binding
    server = _Server(_uvicorn_config(config, app, log_level))
    server.run()
    if not server.started:
        msg = f"the server could not start on {config.bind_host}:{config.port}"
        raise CrossrankError(msg)
    logger.warning("stopped: in-flight requests finished")
    return 0


class ServerThread:
    """A server on a free loopback port in a background thread (``port=0`` picks one).

    >>> with running_server(ServeConfig(model="path/to/model", port=0)) as url:  # doctest: +SKIP
    ...     httpx.post(f"{url}/v2/rerank", json={...})
    """

    def __init__(self, config: ServeConfig, *, log_level: str = "warning") -> None:
        self.config = config
        self.app = create_app(config)
        self.server = _Server(_uvicorn_config(config, self.app, log_level))
        self._thread = threading.Thread(target=self.server.run, name="crossrank-serve", daemon=True)

    @property
    def url(self) -> str:
        sockets = self.server.servers[0].sockets
        host, port = sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 120.0) -> str:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                msg = "the server thread did not start"
                raise CrossrankError(msg)
            time.sleep(0.01)
        model = self.app.state.crossrank.model
        if not model.wait(max(0.0, deadline - time.monotonic())) or model.error is not None:
            self.stop()
            msg = f"the model did not load: {model.error}"
            raise CrossrankError(msg)
        return self.url

    def stop(self, timeout: float = 60.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)


@contextlib.contextmanager
def running_server(config: ServeConfig, *, log_level: str = "warning") -> Iterator[str]:
    """Start a :class:`ServerThread`, yield its base URL, stop it on exit."""
    thread = ServerThread(config, log_level=log_level)
    url = thread.start()
    try:
        yield url
    finally:
        thread.stop()
