"""A thread-safe LRU of pair scores with hit/miss counters."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CacheStats", "ScoreCache"]

V = TypeVar("V")


@dataclass(frozen=True)
class CacheStats:
    """Counters of a :class:`ScoreCache`."""

    hits: int
    misses: int
    size: int
    capacity: int


class ScoreCache(Generic[V]):
    """Least-recently-used mapping with a fixed capacity (0 disables it)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[bytes, ...], V] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, key: tuple[bytes, ...]) -> V | None:
        """The cached value (marked recently used), or ``None``."""
        if self.capacity <= 0:
            return None
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: tuple[bytes, ...], value: V) -> None:
        """Store a value, evicting the least recently used beyond capacity."""
        if self.capacity <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    @property
    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._items), self.capacity)
