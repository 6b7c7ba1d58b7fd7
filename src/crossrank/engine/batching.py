"""Length-sorted, token-budget batches, and splitting a batch that runs out of GPU memory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["padded_tokens", "plan_batches", "run_with_oom_split"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def plan_batches(
    lengths: Sequence[int],
    token_budget: int,
    max_batch_size: int,
    batch_overhead: int = 0,
) -> list[list[int]]:
    """Group item positions into batches, longest first, with as little padding as pays.

    Items are sorted by length (descending, ties in input order) and cut into contiguous
    batches that minimise ``padded tokens + batch_overhead * number of batches``, where a
    batch is padded to its longest item, holds at most ``max_batch_size`` items, and stays
    within ``token_budget`` padded tokens (an item longer than the budget gets a batch alone).
    ``batch_overhead`` is the cost of one more forward pass, in tokens: small on a CPU, where
    padding is the main waste, large on a GPU, where launches cost more than padding.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    n = len(order)
    sizes = [lengths[i] for i in order]
    # best[j]: least cost of batching the first j items; cut[j]: where the last batch starts.
    best = [0] + [0] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        best_cost, best_start = -1, j - 1
        # The batch (i..j-1) is padded to sizes[i], its first (longest) item.
        for i in range(j - 1, -1, -1):
            count = j - i
            padded = count * sizes[i]
            if count > 1 and (padded > token_budget or count > max_batch_size):
                break
            cost = best[i] + padded + batch_overhead
            if best_cost < 0 or cost < best_cost:
                best_cost, best_start = cost, i
        best[j], cut[j] = best_cost, best_start
    batches: list[list[int]] = []
    j = n
    while j > 0:
        batches.append(order[cut[j] : j])
        j = cut[j]
    batches.reverse()
    return batches


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Tokens the model processes for these batches, padding included."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches if b)


def run_with_oom_split(
    batch: list[int],
    forward: Callable[[list[int]], list[T]],
    is_oom: Callable[[BaseException], bool],
    on_oom: Callable[[list[int]], None],
) -> list[T]:
    """Run ``forward`` on ``batch``; on an out-of-memory error split it in halves and retry.

    ``on_oom(batch)`` is told the batch that failed (so the caller can lower its budget for
    the rest of the process). A single item that still runs out of memory re-raises.
    """
    try:
        return forward(batch)
    except Exception as exc:
        if not is_oom(exc) or len(batch) == 1:
            raise
        on_oom(batch)
        logger.warning("out of memory on a batch of %d pairs; splitting it", len(batch))
    half = len(batch) // 2
    return run_with_oom_split(batch[:half], forward, is_oom, on_oom) + run_with_oom_split(
        batch[half:], forward, is_oom, on_oom
    )
