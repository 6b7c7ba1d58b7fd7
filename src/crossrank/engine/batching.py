"""Length-sorted, token-budget batches; the device batching policy; splitting a batch that
runs out of GPU memory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from crossrank.ranking.results import check_positive_int

if TYPE_CHECKING:
    from crossrank.engine.loading import LoadedModel

__all__ = ["BatchPolicy", "plan_batches", "run_with_oom_split"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Padded tokens per CPU batch: small enough for a batch's activations to stay in cache.
# On 2 cores at max_length 256, torch fp32 reranked 10% faster at 4096 than at 8192 (ONNX
# int8: within noise); `crossrank bench --token-budget 4096 --token-budget 8192` compares them.
CPU_TOKEN_BUDGET = 4096
# What one more forward pass costs, in padded tokens, when choosing batch boundaries: on a
# CPU padding dominates, on a GPU kernel launches do.
_CPU_BATCH_OVERHEAD = 32
_CUDA_BATCH_OVERHEAD = 4096


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How one engine cuts work into forward passes on its device.

    Attributes:
        token_budget: padded tokens per batch (at least one full-length pair).
        max_batch_size: pairs per batch at most.
        batch_overhead: the cost of one more forward pass, in padded tokens.
        max_pass_windows: model inputs one coalesced pass of concurrent requests takes at
            most (a request waits for a bounded share of the backlog, not all of it).
    """

    token_budget: int
    max_batch_size: int
    batch_overhead: int
    max_pass_windows: int = 512

    @classmethod
    def for_device(
        cls,
        device: str,
        *,
        max_length: int,
        token_budget: object = None,
        max_batch_size: object = 512,
    ) -> BatchPolicy:
        """The policy for ``device``: a cache-sized budget on a CPU, half the free memory
        on a CUDA device (lowered later by out-of-memory errors)."""
        on_cuda = device.startswith("cuda")
        budget = check_positive_int(
            "token_budget",
            _cuda_budget(device)
            if token_budget is None and on_cuda
            else CPU_TOKEN_BUDGET
            if token_budget is None
            else token_budget,
        )
        token_budget = max(budget, max_length)
        return cls(
            token_budget=token_budget,
            max_batch_size=check_positive_int("max_batch_size", max_batch_size),
            batch_overhead=_CUDA_BATCH_OVERHEAD if on_cuda else _CPU_BATCH_OVERHEAD,
            max_pass_windows=max(512, 4 * token_budget // max_length),
        )

    def budget(self, loaded: LoadedModel) -> int:
        """The budget now: lower than configured after an out-of-memory error."""
        safe = loaded.safe_batch_tokens
        return min(self.token_budget, safe) if safe else self.token_budget


def _cuda_budget(device: str) -> int:
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    # About 64 KiB of activations per token for a base-size encoder in half precision.
    return max(16_384, min(262_144, int(free * 0.5) // 65_536))


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
