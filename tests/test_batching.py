from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from crossrank import Reranker
from crossrank.engine.batching import BatchPolicy, plan_batches, run_with_oom_split


def padded_tokens(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(len(b) * max(lengths[i] for i in b) for b in batches if b)


@pytest.mark.parametrize("seed", range(5))
def test_batches_respect_the_budget_and_keep_every_item(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(3, 500) for _ in range(rng.randint(1, 300))]
    budget = rng.choice([512, 2048, 8192])
    batches = plan_batches(lengths, budget, max_batch_size=64)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= budget
        assert len(batch) <= 64
    # Length-sorted: every item of a batch is at least as long as every item of the next.
    for a, b in zip(batches, batches[1:], strict=False):
        assert min(lengths[i] for i in a) >= max(lengths[i] for i in b)
    assert padded_tokens(lengths, batches) >= sum(lengths)


def test_item_longer_than_the_budget_gets_its_own_batch() -> None:
    assert plan_batches([100, 10, 10], token_budget=50, max_batch_size=8, batch_overhead=1) == [
        [0],
        [1, 2],
    ]


def test_batch_cuts_trade_padding_against_forward_passes() -> None:
    lengths = [500, 480, 300, 290, 100, 90]
    # Tiny overhead: padding 20 tokens costs more than a pass, so every item runs alone.
    assert plan_batches(lengths, 10_000, 64, batch_overhead=1) == [[i] for i in range(6)]
    # Overhead 30: pairing near-equal lengths (10-20 padded tokens) pays; more does not.
    cheap = plan_batches(lengths, 10_000, 64, batch_overhead=30)
    assert cheap == [[0, 1], [2, 3], [4, 5]]
    assert plan_batches(lengths, 10_000, 64, batch_overhead=5_000) == [[0, 1, 2, 3, 4, 5]]
    assert padded_tokens(lengths, cheap) == 2 * 500 + 2 * 300 + 2 * 100


def _oom_when_larger_than(limit: int, calls: list[int]):  # type: ignore[no-untyped-def]
    def forward(batch: list[int]) -> list[int]:
        calls.append(len(batch))
        if len(batch) > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [i * 10 for i in batch]

    return forward


def test_oom_splits_and_retries() -> None:
    calls: list[int] = []
    failed: list[list[int]] = []
    out = run_with_oom_split(
        list(range(8)),
        _oom_when_larger_than(2, calls),
        lambda e: isinstance(e, torch.cuda.OutOfMemoryError),
        failed.append,
    )
    assert out == [i * 10 for i in range(8)]
    assert [len(b) for b in failed] == [8, 4, 4]
    assert calls == [8, 4, 2, 2, 4, 2, 2]


def test_other_errors_and_single_items_are_not_retried() -> None:
    def broken(batch: list[int]) -> list[int]:
        raise ValueError("not memory")

    with pytest.raises(ValueError, match="not memory"):
        run_with_oom_split([1, 2], broken, lambda e: False, lambda n: None)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_with_oom_split([1], _oom_when_larger_than(0, []), lambda e: True, lambda n: None)


class _OomAbove(torch.nn.Module):
    """Wraps a real model; raises CUDA OOM above a padded-token count, like a small GPU."""

    def __init__(self, model: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.model = model
        self.limit = limit
        self.sizes: list[int] = []

    def forward(self, **features: torch.Tensor):  # type: ignore[no-untyped-def]
        size = features["input_ids"].numel()
        self.sizes.append(size)
        if size > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.model(**features)


def test_engine_survives_oom_and_remembers_the_safe_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crossrank.testing import build_tiny_cross_encoder

    folder = build_tiny_cross_encoder(tmp_path / "oom")
    reranker = Reranker(folder, token_budget=100_000)
    docs = [f"document number {i} " + "text " * (i % 7) for i in range(40)]
    expected = reranker.score_pairs([("query", d) for d in docs])
    runner = reranker._loaded.runner
    wrapper = _OomAbove(reranker.cross_encoder.model, limit=60)
    monkeypatch.setattr(runner, "model", wrapper)
    assert reranker.score_pairs([("query", d) for d in docs]) == pytest.approx(expected, abs=1e-6)
    assert wrapper.sizes[0] > 60  # the first batch really ran out of memory
    safe = reranker._loaded.safe_batch_tokens
    assert safe is not None
    assert safe <= 60
    # Later calls start from the remembered safe size instead of failing again.
    wrapper.sizes.clear()
    reranker.score_pairs([("another query", d) for d in docs])
    assert wrapper.sizes
    assert max(wrapper.sizes) <= 60


@pytest.mark.parametrize(
    ("free_gib", "expected"),
    [(0.5, 16_384), (4.0, 32_768), (40.0, 262_144)],
)
def test_cuda_token_budget_follows_free_memory(
    monkeypatch: pytest.MonkeyPatch, free_gib: float, expected: int
) -> None:
    """The CUDA budget is sized from free memory, within a floor and a ceiling (runs on CPU)."""
    free = int(free_gib * 2**30)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 2 * free))
    assert BatchPolicy.for_device("cuda:0", max_length=512).token_budget == expected
    # CPU batches stay small (cache-sized)
    assert BatchPolicy.for_device("cpu", max_length=512).token_budget < 16_384


@pytest.mark.gpu
def test_oom_back_off_on_a_real_gpu(tmp_path: Path) -> None:
    """On a real GPU (OOM simulated above 200 tokens): batches split, scores match the CPU's."""
    from crossrank.testing import build_tiny_cross_encoder

    folder = build_tiny_cross_encoder(tmp_path / "gpu-oom")
    docs = [f"document number {i} " + "text " * (i % 7) for i in range(64)]
    cpu = Reranker(folder, device="cpu").score_pairs([("query", d) for d in docs])
    gpu = Reranker(folder, device="cuda", dtype="float32", token_budget=100_000)
    runner = gpu._loaded.runner
    wrapper = _OomAbove(gpu.cross_encoder.model, limit=200)
    runner.model = wrapper
    got = gpu.score_pairs([("query", d) for d in docs])
    assert got == pytest.approx(cpu, abs=1e-4)
    assert gpu._loaded.safe_batch_tokens is not None
    assert gpu._loaded.safe_batch_tokens <= 200


@pytest.mark.gpu
def test_cuda_half_precision_and_compile_keep_the_ranking(tmp_path: Path) -> None:
    from crossrank.testing import build_tiny_cross_encoder

    folder = build_tiny_cross_encoder(tmp_path / "gpu-dtype")
    docs = [f"gene {i} " + "protein " * (i % 5) for i in range(20)]
    reference = Reranker(folder, device="cpu", activation="raw").score_pairs(
        [("which gene", d) for d in docs]
    )
    for options in ({}, {"compile": True}):
        reranker = Reranker(folder, device="cuda", activation="raw", **options)
        assert reranker.dtype in (torch.bfloat16, torch.float16)
        scores = reranker.score_pairs([("which gene", d) for d in docs])
        assert all(isinstance(s, float) for s in scores)
        assert scores == pytest.approx(reference, abs=5e-2)
