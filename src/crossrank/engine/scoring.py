"""The engine's inner loop: plan pairs, pack length-sorted batches, run the model, aggregate.

:class:`PairScorer` turns requests ``(query, documents)`` into one raw score per document. It
knows nothing of ranking, fusion or top-n; :class:`crossrank.Reranker` builds on it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crossrank.engine.batching import plan_batches, run_with_oom_split
from crossrank.engine.pairs import Window, plan_pairs
from crossrank.engine.score_cache import ScoreCache
from crossrank.errors import CrossrankError, NonFiniteScoreError
from crossrank.fingerprint import text_key
from crossrank.types import Aggregate, DocRead, Overflow

if TYPE_CHECKING:
    from crossrank.engine.loading import LoadedModel

__all__ = ["Aggregate", "DocScore", "PairScorer", "ScoringStats"]

logger = logging.getLogger(__name__)

Request = tuple[str, Sequence[str]]


@dataclass(frozen=True, slots=True)
class DocScore:
    """Raw (pre-activation) score of one document, and how it was read."""

    logit: float
    truncated: bool
    n_windows: int
    span: tuple[int, int] | None = None

    @property
    def read(self) -> DocRead:
        return DocRead(self.truncated, self.n_windows, self.span)


@dataclass
class ScoringStats:
    """Counters of the last call, for benchmarks and padding-efficiency reports."""

    pairs: int = 0
    windows: int = 0
    batches: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    query_tokens_cut: int = 0

    @property
    def padding_efficiency(self) -> float:
        return self.real_tokens / self.padded_tokens if self.padded_tokens else 1.0


def _aggregate(logits: Sequence[float], how: Aggregate) -> float:
    if how == "max":
        return max(logits)
    if how == "first":
        return logits[0]
    return math.fsum(logits) / len(logits)


class PairScorer:
    """Scores requests with one loaded model under fixed truncation and batching settings."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        max_length: int,
        query_max_tokens: int,
        overflow: Overflow,
        stride: int | None,
        aggregate: Aggregate,
        token_budget: int,
        max_batch_size: int,
        batch_overhead: int,
        cache_size: int,
        progress_threshold: int | None,
    ) -> None:
        self.loaded = loaded
        self.max_length = max_length
        self.query_max_tokens = query_max_tokens
        self.overflow: Overflow = overflow
        self.stride = stride
        self.aggregate: Aggregate = aggregate
        self.token_budget = token_budget
        self.max_batch_size = max_batch_size
        self.batch_overhead = batch_overhead
        self.progress_threshold = progress_threshold
        self.cache: ScoreCache[DocScore] = ScoreCache(cache_size)
        settings = (
            loaded.identity,
            loaded.backend,
            max_length,
            query_max_tokens,
            overflow,
            stride,
            aggregate,
        )
        self._cache_prefix = text_key(repr(settings))
        self.last_stats = ScoringStats()

    # -- public -------------------------------------------------------------------------------
    def score(self, requests: Sequence[Request]) -> list[list[DocScore] | CrossrankError]:
        """Score every document of every request in one length-sorted pass.

        A request whose input cannot be planned (``overflow="error"``) gets its exception in
        place of its scores; the other requests are still scored.
        """
        results: list[list[DocScore | None] | CrossrankError] = []
        keys: list[list[tuple[bytes, ...]]] = []
        for query, docs in requests:
            q_key = text_key(query)
            doc_keys: list[tuple[bytes, ...]] = [
                (self._cache_prefix, q_key, text_key(d)) for d in docs
            ]
            keys.append(doc_keys)
            results.append([self.cache.get(k) for k in doc_keys])
        with self.loaded.lock:
            windows, slots, stats = self._plan(requests, results)
            logits = self._run(windows, stats)
        per_slot: list[list[float]] = [[] for _ in slots]
        for window, logit in zip(windows, logits, strict=True):
            per_slot[window.doc].append(logit)
        for (r, d, truncated), slot_logits in zip(slots, per_slot, strict=True):
            logit = _aggregate(slot_logits, self.aggregate)
            doc_score = DocScore(logit, truncated, len(slot_logits))
            row = results[r]
            if isinstance(row, list):
                row[d] = doc_score
                self.cache.put(keys[r][d], doc_score)
        self.last_stats = stats
        return [row if isinstance(row, CrossrankError) else _complete(row) for row in results]

    # -- internals ----------------------------------------------------------------------------
    def _plan(
        self,
        requests: Sequence[Request],
        results: list[list[DocScore | None] | CrossrankError],
    ) -> tuple[list[Window], list[tuple[int, int, bool]], ScoringStats]:
        """Tokenize the documents not found in the cache; slots map windows back to documents."""
        loaded = self.loaded
        windows: list[Window] = []
        slots: list[tuple[int, int, bool]] = []
        stats = ScoringStats()
        for r, (query, docs) in enumerate(requests):
            row = results[r]
            if not isinstance(row, list):
                continue
            missing = [d for d, cached in enumerate(row) if cached is None]
            stats.pairs += len(docs)
            if not missing:
                continue
            try:
                planned, plans, query_cut = plan_pairs(
                    loaded.tokenizer,
                    loaded.template,
                    query,
                    [docs[d] for d in missing],
                    max_length=self.max_length,
                    query_max_tokens=self.query_max_tokens,
                    overflow=self.overflow,
                    stride=self.stride,
                    first_index=len(slots),
                    indices=missing,
                )
            except CrossrankError as exc:
                results[r] = exc
                continue
            stats.query_tokens_cut += query_cut
            windows.extend(planned)
            slots.extend((r, d, plan.truncated) for d, plan in zip(missing, plans, strict=True))
        return windows, slots, stats

    def _budget(self) -> int:
        safe = self.loaded.safe_batch_tokens
        return min(self.token_budget, safe) if safe else self.token_budget

    def _run(self, windows: list[Window], stats: ScoringStats) -> list[float]:
        if not windows:
            return []
        from tqdm.auto import tqdm

        lengths = [len(w.ids) for w in windows]
        batches = plan_batches(lengths, self._budget(), self.max_batch_size, self.batch_overhead)
        out: list[float] = [0.0] * len(windows)
        show = self.progress_threshold is not None and len(windows) >= self.progress_threshold
        stats.windows = len(windows)
        stats.real_tokens = sum(lengths)
        forward = _Forward(self.loaded, windows, stats)
        on_oom = _OomRecorder(self.loaded, lengths)
        with tqdm(total=len(windows), desc="Reranking", unit="pair", disable=not show) as bar:
            for batch in batches:
                # The budget may have shrunk after an OOM on an earlier batch.
                for part in _resplit(batch, lengths, self._budget()):
                    scores = run_with_oom_split(part, forward, _is_oom, on_oom)
                    for i, s in zip(part, scores, strict=True):
                        out[i] = s
                bar.update(len(batch))
        bad = [i for i, s in enumerate(out) if not math.isfinite(s)]
        if bad:
            msg = (
                f"the model produced {len(bad)} non-finite score(s) (NaN or inf); with "
                f"dtype={self.loaded.dtype} try dtype='float32', or check the model's weights"
            )
            raise NonFiniteScoreError(msg)
        return out


class _OomRecorder:
    """Lowers the model's process-wide safe batch size after an out-of-memory error."""

    def __init__(self, loaded: LoadedModel, lengths: list[int]) -> None:
        self.loaded = loaded
        self.lengths = lengths

    def __call__(self, failed: list[int]) -> None:
        longest = max(self.lengths[i] for i in failed)
        tokens = max(longest, (len(failed) // 2) * longest)
        current = self.loaded.safe_batch_tokens
        self.loaded.safe_batch_tokens = min(current, tokens) if current else tokens


class _Forward:
    """Pads one batch of windows and runs the model; returns fp32 logits as Python floats."""

    def __init__(self, loaded: LoadedModel, windows: list[Window], stats: ScoringStats) -> None:
        self.loaded = loaded
        self.windows = windows
        self.stats = stats

    def __call__(self, batch: list[int]) -> list[float]:
        import numpy as np

        loaded = self.loaded
        rows = [self.windows[i] for i in batch]
        width = max(len(w.ids) for w in rows)
        ids: Any = np.full((len(rows), width), loaded.pad_id, dtype=np.int64)
        mask: Any = np.zeros((len(rows), width), dtype=np.int64)
        types: Any = np.zeros((len(rows), width), dtype=np.int64)
        for row, window in enumerate(rows):
            n = len(window.ids)
            ids[row, :n] = window.ids
            mask[row, :n] = 1
            types[row, :n] = window.type_ids
        features = {"input_ids": ids, "attention_mask": mask}
        if loaded.uses_token_type_ids:
            features["token_type_ids"] = types
        logits = loaded.runner(features)
        self.stats.batches += 1
        self.stats.padded_tokens += width * len(rows)
        values: list[float] = logits.tolist()
        return values


def _resplit(batch: list[int], lengths: list[int], budget: int) -> list[list[int]]:
    """Split a planned batch (longest first) again if the budget dropped since planning."""
    longest = lengths[batch[0]]
    size = max(1, budget // max(longest, 1))
    return [batch[i : i + size] for i in range(0, len(batch), size)]


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _complete(row: list[DocScore | None]) -> list[DocScore]:
    done = [s for s in row if s is not None]
    if len(done) != len(row):  # pragma: no cover - every slot is filled by score()
        msg = "internal error: a document was not scored"
        raise RuntimeError(msg)
    return done
