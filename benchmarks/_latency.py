"""The harness the adapter latency benchmarks share (llamaindex_latency.py, langchain_latency.py):
arguments, per-query timing with the contenders taking turns, concurrent timing, ranking
comparison and the printed tables."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from crossrank.paths import shared_data_dir, shared_starter_dir

TIE = 1e-4  # scores closer than this may swap places between two fp32 implementations

Item = TypeVar("Item")
Candidates = TypeVar("Candidates")


def parser(doc: str, *, top_k: int, corpus: str) -> argparse.ArgumentParser:
    """The arguments both benchmarks take; each adds its own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20, help="number of queries (N)")
    parser.add_argument("--top-k", type=int, default=top_k, help="candidates per query (K)")
    default_model = os.environ.get("CROSSRANK_RERANKER", str(shared_starter_dir()))
    parser.add_argument("--model", default=default_model)
    parser.add_argument("--docs", type=int, default=300, help=f"SciFact abstracts in the {corpus}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default=str(shared_data_dir() / "scifact"))
    return parser


def timed(
    fns: Sequence[Callable[[Candidates, str], Sequence[Item]]],
    queries: list[str],
    candidates: list[Candidates],
    *,
    fresh: Callable[[Candidates], Candidates] = lambda c: c,
) -> list[tuple[list[float], list[list[Item]]]]:
    """Per-query milliseconds and outputs of each function; the functions take turns on each
    query, so a change in machine load affects them alike. ``fresh`` gives each call its own
    copy of the candidates when a contender changes what it is given."""
    times: list[list[float]] = [[] for _ in fns]
    outputs: list[list[list[Item]]] = [[] for _ in fns]
    for query, items in zip(queries, candidates, strict=True):
        for i, fn in enumerate(fns):
            mine = fresh(items)
            start = time.perf_counter()
            outputs[i].append(list(fn(mine, query)))
            times[i].append((time.perf_counter() - start) * 1000)
    return list(zip(times, outputs, strict=True))


def concurrent_ms(calls: Callable[[], Iterable[Awaitable[Any]]]) -> float:
    """Milliseconds for the awaitables ``calls()`` makes, gathered at once."""

    async def run() -> None:
        await asyncio.gather(*calls())

    start = time.perf_counter()
    asyncio.run(run())
    return (time.perf_counter() - start) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def same_order(
    ours: list[Item], theirs: list[Item], scores: dict[Hashable, float], key: Callable[[Item], Any]
) -> bool:
    """Same items in the same order, up to swaps of scores that tie within TIE."""
    if sorted(map(key, ours)) != sorted(map(key, theirs)):
        return False
    return all(scores[key(a)] >= scores[key(b)] - TIE for a, b in itertools.pairwise(theirs))


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )


def print_latency(
    title: str,
    what: str,
    rows: dict[str, list[float]],
    gathered: dict[str, float],
    method: str,
    speedup: str,
) -> None:
    """The per-query table, the p50 speed-up (``speedup``: ours/theirs row names, "/"-joined)
    and the all-at-once table."""
    print(f"\n## {title}\n")
    print(f"| {what} | p50 ms/query | p95 ms/query | mean ms/query |")
    print("|---|---:|---:|---:|")
    for name, times in rows.items():
        print(
            f"| {name} | {percentile(times, 0.5):.1f} | {percentile(times, 0.95):.1f} | "
            f"{statistics.fmean(times):.1f} |"
        )
    ours, theirs = speedup.split("/")
    ratio = statistics.median(rows[theirs]) / statistics.median(rows[ours])
    print(f"\np50 speed-up of {ours} over {theirs}: {ratio:.2f}x")
    n = len(next(iter(rows.values())))
    print(f"\n| {n} queries at once (asyncio.gather of {method}) | total ms |")
    print("|---|---:|")
    for name, ms in gathered.items():
        print(f"| {name} | {ms:.0f} |")


@dataclass
class Agreement:
    """How two rerankers' rankings agree, query by query: on the pairs both read whole (same
    tokens) and on the full lists."""

    key: Callable[[Any], Hashable]
    score: Callable[[Any], float]
    n: int = 0
    fit_pairs: int = 0
    fit_same: int = 0
    full_same: int = 0
    max_diff: float = 0.0

    def add(
        self, mine: list[Any], stock: list[Any], reference: dict[Hashable, float], fits: set[Any]
    ) -> None:
        """One query: our ranking, the stock one, the stock scores, the keys that fit."""
        self.n += 1
        self.full_same += same_order(mine, stock, reference, self.key)
        self.fit_pairs += len(fits)
        mine_fit = [x for x in mine if self.key(x) in fits]
        stock_fit = [x for x in stock if self.key(x) in fits]
        self.fit_same += same_order(mine_fit, stock_fit, reference, self.key)
        for x in mine_fit:
            self.max_diff = max(self.max_diff, abs(self.score(x) - reference[self.key(x)]))

    def print(self, max_length: int, n_pairs: int) -> None:
        print(
            f"\nRankings on pairs that fit max_length={max_length} ({self.fit_pairs} of "
            f"{n_pairs} pairs): same order for {self.fit_same}/{self.n} queries; max |score "
            f"difference| {self.max_diff:.2e} (ties within {TIE:g} may swap)."
        )
        print(
            "Full candidate lists (longer pairs are truncated differently: crossrank keeps the "
            "query whole, sentence-transformers cuts the longest side): same order for "
            f"{self.full_same}/{self.n} queries."
        )
