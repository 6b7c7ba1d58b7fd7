"""The engine's inner loop: plan pairs, pack length-sorted batches, run the model, aggregate.

:class:`PairScorer` turns requests ``(query, documents)`` into one raw score per document. It
knows nothing of ranking, fusion or top-n; :class:`crossrank.Reranker` builds on it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crossrank.engine.batching import BatchPolicy, plan_batches, run_with_oom_split
from crossrank.engine.geometry import PairGeometry
from crossrank.engine.pairs import Window, plan_pairs
from crossrank.engine.score_cache import ScoreCache
from crossrank.errors import CrossrankError, InvalidInputError, NonFiniteScoreError
from crossrank.fingerprint import text_key
from crossrank.types import Aggregate, DocRead, Overflow

if TYPE_CHECKING:
    from crossrank.engine.loading import LoadedModel

__all__ = ["DocScore", "PairScorer", "Prepared", "ScoringStats"]

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
        """How the document was read, as results report it."""
        return DocRead(self.truncated, self.n_windows, self.span)


@dataclass
class ScoringStats:
    """What one scoring call did, for benchmarks and padding-efficiency reports.

    Attributes:
        pairs: documents asked for (cache hits and duplicates included).
        distinct: distinct (query, document) pairs that reached the model.
        windows: model inputs (more than ``distinct`` when chunking).
        batches: forward passes.
        real_tokens / padded_tokens: tokens read, without and with padding.
        truncated: documents cut to fit.
        queries_cut: pairs whose query was cut to leave the document room.
    """

    pairs: int = 0
    distinct: int = 0
    windows: int = 0
    batches: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    truncated: int = 0
    queries_cut: int = 0

    @property
    def padding_efficiency(self) -> float:
        """Share of the tokens the model processed that were not padding."""
        return self.real_tokens / self.padded_tokens if self.padded_tokens else 1.0


def _aggregate(logits: Sequence[float], how: Aggregate) -> float:
    if how == "max":
        return max(logits)
    if how == "first":
        return logits[0]
    return math.fsum(logits) / len(logits)


@dataclass
class _Pair:
    """One distinct (query, document) pair waiting for the model."""

    key: tuple[bytes, ...]
    windows: list[Window]
    truncated: bool
    query_cut: bool


@dataclass
class Prepared:
    """One request, validated and tokenized, ready to join a batch.

    ``scores`` holds cache hits; ``todo`` maps each distinct missing pair to the positions
    of the documents it scores. A request that could not be planned carries ``error``.
    """

    n_docs: int
    scores: list[DocScore | None] = field(default_factory=list)
    todo: dict[tuple[bytes, ...], tuple[_Pair, list[int]]] = field(default_factory=dict)
    error: CrossrankError | None = None

    @property
    def n_windows(self) -> int:
        """Model inputs this request still needs (0 when all came from the cache)."""
        return sum(len(pair.windows) for pair, _ in self.todo.values())


class PairScorer:
    """Scores requests with one loaded model under fixed truncation and batching settings.

    Work is split in two so that concurrent callers can share batches: :meth:`prepare`
    (checks, cache look-ups and tokenization of one request, outside the model's lock) and
    :meth:`run` (one length-sorted pass over the distinct pairs of many prepared requests,
    under the lock). Each distinct (query, document) pair is scored once per pass, so
    identical documents always get identical scores.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        geometry: PairGeometry,
        overflow: Overflow,
        aggregate: Aggregate,
        policy: BatchPolicy,
        cache_size: int,
        progress_threshold: int | None,
    ) -> None:
        self.loaded = loaded
        self.geometry = geometry
        self.overflow: Overflow = overflow
        self.aggregate: Aggregate = aggregate
        self.policy = policy
        self.progress_threshold = progress_threshold
        self.cache: ScoreCache[DocScore] = ScoreCache(cache_size)
        settings = (loaded.identity, loaded.backend, geometry, overflow, aggregate)
        self._cache_prefix = text_key(repr(settings))

    # -- public -------------------------------------------------------------------------------
    def score(
        self, requests: Sequence[Request]
    ) -> tuple[list[list[DocScore] | CrossrankError], ScoringStats]:
        """Score every document of every request in one length-sorted pass.

        A request that cannot be planned (``overflow="error"``) gets its exception in place
        of its scores; the other requests are still scored.
        """
        return self.run([self.prepare(query, docs) for query, docs in requests])

    def prepare(self, query: str, documents: Sequence[str]) -> Prepared:
        """Look up the cache and tokenize what is missing; never raises for bad input."""
        prepared = Prepared(n_docs=len(documents))
        q_key = text_key(query)
        missing: dict[tuple[bytes, ...], list[int]] = {}
        for d, doc in enumerate(documents):
            key: tuple[bytes, ...] = (self._cache_prefix, q_key, text_key(doc))
            cached = self.cache.get(key)
            prepared.scores.append(cached)
            if cached is None:
                missing.setdefault(key, []).append(d)
        if not missing:
            return prepared
        firsts = [positions[0] for positions in missing.values()]
        try:
            windows, plans = plan_pairs(
                self.loaded.tokenizer,
                self.loaded.template,
                self.geometry,
                query,
                [documents[d] for d in firsts],
                overflow=self.overflow,
                indices=firsts,
            )
        except CrossrankError as exc:
            prepared.error = exc
            return prepared
        except (ValueError, TypeError, RuntimeError) as exc:  # the tokenizer's own errors
            msg = f"could not tokenize this request: {exc}"
            prepared.error = InvalidInputError(msg)
            return prepared
        by_doc: list[list[Window]] = [[] for _ in firsts]
        for window in windows:
            by_doc[window.doc].append(window)
        for (key, positions), doc_windows, plan in zip(missing.items(), by_doc, plans, strict=True):
            pair = _Pair(key, doc_windows, plan.truncated, plan.query_cut)
            prepared.todo[key] = (pair, positions)
        return prepared

    def run(
        self, batch: Sequence[Prepared]
    ) -> tuple[list[list[DocScore] | CrossrankError], ScoringStats]:
        """Score the distinct pairs of several prepared requests in one pass."""
        stats = ScoringStats(pairs=sum(p.n_docs for p in batch))
        distinct: dict[tuple[bytes, ...], _Pair] = {}
        for prepared in batch:
            if prepared.error is None:
                for key, (pair, _positions) in prepared.todo.items():
                    distinct.setdefault(key, pair)
        pairs = list(distinct.values())
        windows = [w for pair in pairs for w in pair.windows]
        with self.loaded.lock:
            logits = self._run(windows, stats)
        done: dict[tuple[bytes, ...], DocScore] = {}
        start = 0
        for pair in pairs:
            end = start + len(pair.windows)
            pair_logits = logits[start:end]
            best = max(range(len(pair_logits)), key=pair_logits.__getitem__)
            score = DocScore(
                _aggregate(pair_logits, self.aggregate),
                pair.truncated,
                len(pair_logits),
                pair.windows[best].span,
            )
            done[pair.key] = score
            if math.isfinite(score.logit):
                self.cache.put(pair.key, score)
            start = end
        stats.distinct = len(pairs)
        stats.truncated = sum(p.truncated for p in pairs)
        stats.queries_cut = sum(p.query_cut for p in pairs)
        return [self._complete(p, done) for p in batch], stats

    # -- internals ----------------------------------------------------------------------------
    def _complete(
        self, prepared: Prepared, done: dict[tuple[bytes, ...], DocScore]
    ) -> list[DocScore] | CrossrankError:
        if prepared.error is not None:
            return prepared.error
        scores = list(prepared.scores)
        for key, (_pair, positions) in prepared.todo.items():
            for d in positions:
                scores[d] = done[key]
        bad = [d for d, s in enumerate(scores) if s is None or not math.isfinite(s.logit)]
        if bad:
            return NonFiniteScoreError(self._non_finite_hint(bad))
        return [s for s in scores if s is not None]

    def _non_finite_hint(self, bad: list[int]) -> str:
        import torch

        head = f"the model produced non-finite scores (NaN or inf) for documents {bad[:10]}"
        if self.loaded.dtype in (torch.float16, torch.bfloat16):
            return f"{head}; with dtype={self.loaded.dtype} try dtype='float32'"
        return (
            f"{head} in float32: the model's weights are probably damaged or badly trained; "
            "re-copy or re-train the model"
        )

    def _run(self, windows: list[Window], stats: ScoringStats) -> list[float]:
        if not windows:
            return []
        from tqdm.auto import tqdm

        lengths = [len(w.ids) for w in windows]
        policy = self.policy
        batches = plan_batches(
            lengths, policy.budget(self.loaded), policy.max_batch_size, policy.batch_overhead
        )
        out: list[float] = [0.0] * len(windows)
        show = self.progress_threshold is not None and len(windows) >= self.progress_threshold
        stats.windows = len(windows)
        stats.real_tokens = sum(lengths)
        forward = _Forward(self.loaded, windows, stats)
        on_oom = _OomRecorder(self.loaded, lengths)
        with tqdm(total=len(windows), desc="Reranking", unit="pair", disable=not show) as bar:
            for batch in batches:
                # The budget may have shrunk after an OOM on an earlier batch.
                for part in _resplit(batch, lengths, policy.budget(self.loaded)):
                    scores = run_with_oom_split(part, forward, _is_oom, on_oom)
                    for i, s in zip(part, scores, strict=True):
                        out[i] = s
                bar.update(len(batch))
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
