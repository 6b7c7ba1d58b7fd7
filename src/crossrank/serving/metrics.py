"""Prometheus metrics of one app (its own registry, so several apps can live in a process)."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["KNOWN_PATHS", "Metrics"]

#: Paths labelled by name; anything else is counted as ``other`` (bounded label values).
KNOWN_PATHS = (
    "/v1/rerank",
    "/v2/rerank",
    "/rerank",
    "/health",
    "/ready",
    "/metrics",
    "/info",
)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_PAIR_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
_TOKEN_BUCKETS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144)


class _Rate:
    """Pairs per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._events: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self._events.append((time.monotonic(), n))

    def value(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._events and self._events[0][0] < now - self.window_s:
                self._events.popleft()
            return sum(n for _, n in self._events) / self.window_s


class Metrics:
    """What ``GET /metrics`` shows: requests by path and status, latency, queue, batches."""

    def __init__(self, queue_depth: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "crossrank_requests",
            "HTTP requests answered, by path and status code",
            ["path", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "crossrank_request_latency_seconds",
            "Time from receiving a request to its last response byte, by path",
            ["path"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "crossrank_queue_rejections",
            "Rerank requests refused with 429 because the queue was full",
            registry=r,
        )
        self.queue = Gauge(
            "crossrank_queue_depth",
            "Rerank requests admitted and not yet answered (running or waiting for the model)",
            registry=r,
        )
        self.queue.set_function(queue_depth)
        self.pairs = Counter(
            "crossrank_pairs_scored", "(query, document) pairs reranked", registry=r
        )
        self.truncated = Counter(
            "crossrank_documents_truncated",
            "Documents the model did not read whole (each result says which)",
            registry=r,
        )
        self.request_pairs = Histogram(
            "crossrank_request_pairs",
            "Documents per rerank request",
            buckets=_PAIR_BUCKETS,
            registry=r,
        )
        self.pass_pairs = Histogram(
            "crossrank_pass_pairs",
            "Pairs per engine pass (concurrent requests coalesced into one length-sorted pass)",
            buckets=_PAIR_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "crossrank_batch_padded_tokens",
            "Padded tokens per model batch (average of the batches of one pass)",
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.batch_pairs = Histogram(
            "crossrank_batch_pairs",
            "Windows (pairs) per model batch (average of the batches of one pass)",
            buckets=_PAIR_BUCKETS,
            registry=r,
        )
        self.padding_efficiency = Gauge(
            "crossrank_padding_efficiency",
            "Real over padded tokens in the most recent engine pass",
            registry=r,
        )
        self._rate = _Rate()
        rate = Gauge(
            "crossrank_pairs_per_second",
            "Pairs reranked per second over the last 10 seconds",
            registry=r,
        )
        rate.set_function(self._rate.value)
        self._last_stats: Any = None

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        label = path if path in KNOWN_PATHS else "other"
        self.requests.labels(path=label, status=str(status)).inc()
        self.latency.labels(path=label).observe(seconds)

    def observe_rerank(self, n_pairs: int, n_truncated: int, stats: Any) -> None:
        """Count one answered request; record the engine pass ``stats`` once per pass."""
        self.pairs.inc(n_pairs)
        self.truncated.inc(n_truncated)
        self.request_pairs.observe(n_pairs)
        self._rate.add(n_pairs)
        # The engine keeps the stats of its latest pass; each pass is a new object.
        if stats is None or stats is self._last_stats:
            return
        self._last_stats = stats
        self.pass_pairs.observe(stats.pairs)
        if stats.batches:
            self.batch_tokens.observe(stats.padded_tokens / stats.batches)
            self.batch_pairs.observe(stats.windows / stats.batches)
            self.padding_efficiency.set(stats.padding_efficiency)
