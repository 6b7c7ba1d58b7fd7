"""Context assembly after reranking: the best evidence that fits the LLM's token budget.

:class:`ContextPacker` turns a reranked list into the text that enters the prompt: cut-offs,
near-duplicates removed (the higher-scored copy kept), each document's best window (or the
whole document) trimmed at a sentence boundary to its share of the budget, the passages
ordered for the reader and numbered ``[1]``, ``[2]`` … so the answer can cite them. The budget
counts the whole packed text, templates and separators included, with the target LLM's
tokenizer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from crossrank.errors import InvalidInputError
from crossrank.ranking.results import check_choice, check_positive_int, check_real
from crossrank.ranking.text import (
    TokenizerLike,
    exact_key,
    jaccard,
    sentence_ends,
    sentence_starts,
    shingles,
    token_counter,
    word_ends,
)
from crossrank.types import RerankResult

__all__ = [
    "DEFAULT_SEPARATOR",
    "DEFAULT_TEMPLATE",
    "ContextPacker",
    "DropReason",
    "DroppedResult",
    "PackOrder",
    "PackedContext",
    "PackedPassage",
    "PassageChoice",
]

logger = logging.getLogger(__name__)

PackOrder = Literal["score", "lost_in_the_middle", "source"]
PassageChoice = Literal["window", "document"]
DropReason = Literal["empty", "min_score", "score_gap", "duplicate", "budget"]
_ORDERS: tuple[str, ...] = ("score", "lost_in_the_middle", "source")
_CHOICES: tuple[str, ...] = ("window", "document")

DEFAULT_TEMPLATE = "[{n}] (source: {id})\n{text}"
"""Each passage: its citation number, its source id, its text."""
DEFAULT_SEPARATOR = "\n\n"
"""Between passages (what LlamaIndex's and LangChain's prompts join documents with)."""


@dataclass(frozen=True, slots=True)
class PackedPassage:
    """One passage of a packed context.

    Attributes:
        citation: its number in the context (``[citation]``), 1 first in reading order.
        index: the result's ``index`` (position of the document in the reranker's input).
        source_id: the document's id (the ``ids`` passed to ``pack``, else ``str(index)``).
        span: ``(start, end)`` character offsets of ``text`` in the document.
        text: ``document[span[0]:span[1]]``.
        score: the result's score.
        n_tokens: tokens of the rendered passage (template included, separator not).
        from_window: the passage was cut around the reranker's best window (``span`` of the
            result), not from the start of the document.
        trimmed: part of the chosen window or document was left out to fit.
    """

    citation: int
    index: int
    source_id: str
    span: tuple[int, int]
    text: str
    score: float
    n_tokens: int
    from_window: bool
    trimmed: bool


@dataclass(frozen=True, slots=True)
class DroppedResult:
    """A result left out of the context, and why: ``"empty"`` (no text), ``"min_score"``,
    ``"score_gap"`` (too far below the best), ``"duplicate"`` (of ``duplicate_of``, the
    index of the higher-scored copy kept) or ``"budget"`` (no room left)."""

    index: int
    source_id: str
    score: float
    reason: DropReason
    duplicate_of: int | None = None


@dataclass(frozen=True, slots=True)
class PackedContext:
    """The text for the prompt and how it was made.

    Attributes:
        text: the passages rendered with the template, joined by the separator.
        passages: the passages in the order they appear in ``text``.
        n_tokens: tokens of ``text`` (never above ``budget_tokens``).
        budget_tokens: the budget it was packed to.
        dropped: the results left out, best first, each with its reason.
    """

    text: str
    passages: tuple[PackedPassage, ...]
    n_tokens: int
    budget_tokens: int
    dropped: tuple[DroppedResult, ...] = ()

    @property
    def trimmed(self) -> bool:
        """True when a passage was cut to fit (its window or document did not fit whole)."""
        return any(p.trimmed for p in self.passages)

    @property
    def citations(self) -> dict[int, str]:
        """Citation number → source id."""
        return {p.citation: p.source_id for p in self.passages}


@dataclass(slots=True)
class _Candidate:
    result: RerankResult
    source_id: str
    region: tuple[int, int]  # the text it may use: the best window (sentences) or the document
    from_window: bool
    start: int = 0
    end: int = 0
    n_tokens: int = 0
    capped: bool = False  # cut by the per-passage share, may grow if room is left
    extra: dict[str, object] = field(default_factory=dict)


class ContextPacker:
    """Packs reranked results into a context string that fits a token budget.

    Args:
        budget_tokens: the most tokens the packed text may have (templates and separators
            included), counted with ``tokenizer``.
        tokenizer: the target LLM's tokenizer: a Hugging Face tokenizer folder or hub id, a
            tokenizer object (``transformers``, ``tokenizers``, ``tiktoken``), or a callable
            ``text -> token count``. Default: the offline all-MiniLM-L6-v2 WordPiece tokenizer
            (``crossrank.paths.default_biencoder()``, the vocabulary of crossrank's starter
            reranker); pass your LLM's for exact budgets.
        passage: ``"window"`` (default): each document's best window as the reranker reports it
            in ``RerankResult.span``, widened to whole sentences (the document from its start
            when the span is unknown); ``"document"``: the document from its start.
        max_passage_share: the most of the budget one passage may take (default a quarter, so
            at least four sources fit; never less than ``min_passage_tokens``); room left at
            the end goes back to the passages that were cut. ``None``: no limit.
        min_passage_tokens: a passage cut to fit keeps at least this many tokens (template
            included), else it is dropped (the best passage is always kept, trimmed to fit).
        dedup_threshold: drop a passage whose word-shingle Jaccard similarity with a
            higher-scored kept passage is at least this (exact duplicates always go); ``None``
            keeps near-duplicates.
        shingle_size: words per shingle for near-duplicate detection.
        min_score: drop results scoring below this.
        max_score_gap: drop results scoring more than this below the best result (in the
            scores' own units: logits or probabilities).
        order: ``"score"`` (best first), ``"lost_in_the_middle"`` (best at both ends, as
            LangChain's ``LongContextReorder``) or ``"source"`` (input order).
        template: how each passage is rendered; fields ``{n}`` (citation number), ``{id}``,
            ``{text}``, ``{score}``, ``{index}``.
        separator: between passages.
    """

    def __init__(
        self,
        budget_tokens: int = 1024,
        *,
        tokenizer: TokenizerLike | None = None,
        passage: PassageChoice = "window",
        max_passage_share: float | None = 0.25,
        min_passage_tokens: int = 48,
        dedup_threshold: float | None = 0.6,
        shingle_size: int = 3,
        min_score: float | None = None,
        max_score_gap: float | None = None,
        order: PackOrder = "score",
        template: str = DEFAULT_TEMPLATE,
        separator: str = DEFAULT_SEPARATOR,
    ) -> None:
        self.budget_tokens = check_positive_int("budget_tokens", budget_tokens)
        check_choice("passage", passage, _CHOICES)
        check_choice("order", order, _ORDERS)
        self.passage: PassageChoice = passage
        self.order: PackOrder = order
        self.max_passage_share = _share(max_passage_share)
        self.min_passage_tokens = check_positive_int("min_passage_tokens", min_passage_tokens)
        if dedup_threshold is not None:
            dedup_threshold = check_real("dedup_threshold", dedup_threshold)
            if not 0.0 < dedup_threshold <= 1.0:
                msg = f"dedup_threshold must be in (0, 1] or None, got {dedup_threshold}"
                raise InvalidInputError(msg)
        self.dedup_threshold = dedup_threshold
        self.shingle_size = check_positive_int("shingle_size", shingle_size)
        self.min_score = None if min_score is None else check_real("min_score", min_score)
        self.max_score_gap = (
            None if max_score_gap is None else check_real("max_score_gap", max_score_gap)
        )
        _check_template(template)
        if not isinstance(separator, str):
            msg = f"separator must be a string, got {type(separator).__name__}"
            raise InvalidInputError(msg)
        self.template = template
        self.separator = separator
        if tokenizer is None:
            from crossrank.paths import default_biencoder

            tokenizer = default_biencoder()
        self.tokenizer = tokenizer
        self._count_raw: Callable[[str], int] = token_counter(tokenizer)

    def __repr__(self) -> str:
        name = (
            self.tokenizer
            if isinstance(self.tokenizer, str | os.PathLike)
            else type(self.tokenizer).__name__
        )
        return (
            f"ContextPacker(budget_tokens={self.budget_tokens}, passage={self.passage!r}, "
            f"order={self.order!r}, tokenizer={str(name)!r})"
        )

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the budget counts them."""
        return self._count_raw(text) if text else 0

    # -- packing ------------------------------------------------------------------------------
    def pack(
        self,
        query: str,
        results: Sequence[RerankResult],
        *,
        ids: Sequence[str] | None = None,
    ) -> PackedContext:
        """Pack ``results`` (a reranker's output for ``query``) into a context.

        ``ids[result.index]`` names each result's source (default ``str(result.index)``).
        The results are not changed. Raises :class:`~crossrank.InvalidInputError` on a
        non-string query or a result that is not a :class:`~crossrank.RerankResult`.
        """
        if not isinstance(query, str):
            msg = f"query must be a string, got {type(query).__name__}"
            raise InvalidInputError(msg)
        ranked = _ranked(results)
        counter = _CachedCounter(self.count_tokens)
        dropped: list[DroppedResult] = []
        candidates = self._candidates(ranked, ids, dropped)
        chosen = self._choose(candidates, counter, dropped)
        text, passages = self._render(chosen, counter)
        n_tokens = counter(text)
        logger.debug(
            "packed %d of %d results into %d/%d tokens for %r",
            len(passages),
            len(ranked),
            n_tokens,
            self.budget_tokens,
            query[:60],
        )
        dropped.sort(key=lambda d: (-d.score, d.index))
        return PackedContext(text, tuple(passages), n_tokens, self.budget_tokens, tuple(dropped))

    def _candidates(
        self, ranked: list[RerankResult], ids: Sequence[str] | None, dropped: list[DroppedResult]
    ) -> list[_Candidate]:
        """Cut-offs and near-duplicates, best first."""
        best = ranked[0].score if ranked else 0.0
        kept: list[tuple[_Candidate, str, frozenset[tuple[str, ...]]]] = []
        for r in ranked:
            source_id = _source_id(r, ids)
            drop = None
            if self.min_score is not None and r.score < self.min_score:
                drop = "min_score"
            elif self.max_score_gap is not None and best - r.score > self.max_score_gap:
                drop = "score_gap"
            region, from_window = self._region(r)
            if drop is None and not r.document[region[0] : region[1]].strip():
                drop = "empty"
            if drop is not None:
                dropped.append(DroppedResult(r.index, source_id, r.score, drop))  # type: ignore[arg-type]
                continue
            text = r.document[region[0] : region[1]]
            key, grams = exact_key(text), shingles(text, self.shingle_size)
            twin = self._duplicate_of(key, grams, kept)
            if twin is not None:
                dropped.append(DroppedResult(r.index, source_id, r.score, "duplicate", twin))
                continue
            kept.append((_Candidate(r, source_id, region, from_window), key, grams))
        return [c for c, _, _ in kept]

    def _duplicate_of(
        self,
        key: str,
        grams: frozenset[tuple[str, ...]],
        kept: list[tuple[_Candidate, str, frozenset[tuple[str, ...]]]],
    ) -> int | None:
        for other, other_key, other_grams in kept:
            if key == other_key:
                return other.result.index
            if (
                self.dedup_threshold is not None
                and jaccard(grams, other_grams) >= self.dedup_threshold
            ):
                return other.result.index
        return None

    def _region(self, r: RerankResult) -> tuple[tuple[int, int], bool]:
        """The text a result may contribute: its best window widened to whole sentences, or
        the document, without surrounding whitespace."""
        doc = r.document
        if self.passage == "window" and r.span is not None:
            start, end = _clamp_span(r.span, len(doc))
            starts = [s for s in sentence_starts(doc) if s <= start]
            ends = [e for e in sentence_ends(doc) if e >= end]
            start = starts[-1] if starts else start
            end = ends[0] if ends else end
            if (start, end) != (0, len(doc)) or r.truncated or r.n_windows > 1:
                return _strip(doc, start, end), True
        return _strip(doc, 0, len(doc)), False

    def _choose(
        self,
        candidates: list[_Candidate],
        count: Callable[[str], int],
        dropped: list[DroppedResult],
    ) -> list[_Candidate]:
        """Greedy by score: each passage gets its share of the budget or the room left."""
        budget = self.budget_tokens
        share = (
            budget
            if self.max_passage_share is None
            else max(self.min_passage_tokens, int(budget * self.max_passage_share))
        )
        sep = count(self.separator)
        n_max = len(candidates)
        floor = min(self.min_passage_tokens, share)
        chosen: list[_Candidate] = []
        used = 0
        for c in candidates:
            room = budget - used - (sep if chosen else 0)
            limit = min(share, room)
            fitted = self._fit(c, limit, n_max, count, min_tokens=floor if chosen else 0)
            if fitted is None and not chosen:  # the best passage alone is citation [1]
                fitted = self._fit(c, room, 1, count, min_tokens=0)
            if fitted is None:
                dropped.append(DroppedResult(c.result.index, c.source_id, c.result.score, "budget"))
                continue
            fitted.capped = fitted.end < c.region[1] and limit == share and room > share
            chosen.append(fitted)
            used += fitted.n_tokens + (sep if len(chosen) > 1 else 0)
        # room left: give it back to passages cut by their share, best first
        for i, c in enumerate(chosen):
            left = budget - used
            if left <= 0:
                break
            if c.capped:
                grown = self._fit(c, c.n_tokens + left, n_max, count, min_tokens=0)
                if grown is not None and grown.n_tokens >= c.n_tokens:
                    used += grown.n_tokens - c.n_tokens
                    chosen[i] = grown
        return chosen

    def _fit(
        self, c: _Candidate, limit: int, n_max: int, count: Callable[[str], int], *, min_tokens: int
    ) -> _Candidate | None:
        """``c`` cut at the last sentence (else word, else character) boundary whose rendered
        passage has at most ``limit`` tokens; ``None`` when too little fits."""
        doc = c.result.document
        start, end = c.region

        def rendered_tokens(stop: int) -> int:
            return count(self._render_one(n_max, c, doc[start:stop]))

        if limit <= 0:
            return None
        if rendered_tokens(end) <= limit:
            return replace(c, start=start, end=end, n_tokens=rendered_tokens(end))
        # a sentence boundary when the passage keeps min_tokens there, else a word, else a
        # character boundary
        stop = None
        for cuts in (
            sentence_ends(doc, start, end)[:-1],
            word_ends(doc, start, end)[:-1],
            list(range(start + 1, end)),
        ):
            found = _last_fitting(cuts, lambda s: rendered_tokens(s) <= limit)
            if found is not None:
                stop = _strip(doc, start, found)[1]
                if rendered_tokens(stop) >= min_tokens:
                    break
        if stop is None:
            return None
        n_tokens = rendered_tokens(stop)
        if n_tokens < min_tokens:
            return None
        return replace(c, start=start, end=stop, n_tokens=n_tokens)

    def _render(
        self, chosen: list[_Candidate], count: Callable[[str], int]
    ) -> tuple[str, list[PackedPassage]]:
        """Order the passages, number them, and make sure the whole text fits."""
        while True:
            ordered = _reorder(chosen, self.order)
            texts = [
                self._render_one(n, c, c.result.document[c.start : c.end])
                for n, c in enumerate(ordered, 1)
            ]
            text = self.separator.join(texts)
            excess = count(text) - self.budget_tokens
            if excess <= 0 or not chosen:
                break
            # token counts are not always additive: trim the weakest passage and try again
            last = chosen[-1]
            smaller = self._fit(last, last.n_tokens - excess, len(chosen), count, min_tokens=0)
            if smaller is None or (len(chosen) > 1 and smaller.n_tokens < self.min_passage_tokens):
                chosen = chosen[:-1]
            else:
                chosen = [*chosen[:-1], smaller]
        passages = [
            PackedPassage(
                citation=n,
                index=c.result.index,
                source_id=c.source_id,
                span=(c.start, c.end),
                text=c.result.document[c.start : c.end],
                score=c.result.score,
                n_tokens=count(t),
                from_window=c.from_window,
                trimmed=c.end < c.region[1],
            )
            for n, (c, t) in enumerate(zip(ordered, texts, strict=True), 1)
        ]
        return text, passages

    def _render_one(self, n: int, c: _Candidate, text: str) -> str:
        return self.template.format(
            n=n, id=c.source_id, text=text, score=c.result.score, index=c.result.index
        )


class _CachedCounter:
    """Counts each distinct text once per ``pack`` call."""

    def __init__(self, count: Callable[[str], int]) -> None:
        self._count = count
        self._seen: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        n = self._seen.get(text)
        if n is None:
            n = self._seen[text] = self._count(text)
        return n


def _ranked(results: object) -> list[RerankResult]:
    if isinstance(results, str) or not isinstance(results, Sequence):
        msg = f"results must be a list of RerankResult, got {type(results).__name__}"
        raise InvalidInputError(msg)
    for i, r in enumerate(results):
        if not isinstance(r, RerankResult):
            msg = f"results[{i}] must be a RerankResult, got {type(r).__name__}"
            raise InvalidInputError(msg)
    # best first, ties in the order given (a stable sort of what the reranker returned)
    return sorted(results, key=lambda r: -r.score)


def _source_id(r: RerankResult, ids: Sequence[str] | None) -> str:
    if ids is None:
        return str(r.index)
    if not 0 <= r.index < len(ids):
        msg = f"result index {r.index} has no id: ids holds {len(ids)} values"
        raise InvalidInputError(msg)
    return str(ids[r.index])


def _reorder(chosen: list[_Candidate], order: PackOrder) -> list[_Candidate]:
    if order == "source":
        return sorted(chosen, key=lambda c: c.result.index)
    if order == "lost_in_the_middle":
        # best first, second best last, third second, …: the weakest end up in the middle
        return chosen[0::2] + chosen[1::2][::-1]
    return list(chosen)


def _last_fitting(cuts: list[int], fits: Callable[[int], bool]) -> int | None:
    """The largest cut that fits (fitting is monotone in the cut), by binary search."""
    lo, hi, best = 0, len(cuts) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(cuts[mid]):
            best, lo = cuts[mid], mid + 1
        else:
            hi = mid - 1
    return best


def _strip(doc: str, start: int, end: int) -> tuple[int, int]:
    while start < end and doc[start].isspace():
        start += 1
    while end > start and doc[end - 1].isspace():
        end -= 1
    return start, end


def _clamp_span(span: tuple[int, int], length: int) -> tuple[int, int]:
    start, end = (max(0, min(int(v), length)) for v in span)
    return (start, end) if start < end else (0, length)


def _share(value: float | None) -> float | None:
    if value is None:
        return None
    share = check_real("max_passage_share", value)
    if not 0.0 < share <= 1.0:
        msg = f"max_passage_share must be in (0, 1] or None, got {share}"
        raise InvalidInputError(msg)
    return share


def _check_template(template: object) -> None:
    if not isinstance(template, str) or "{text}" not in template:
        msg = (
            "template must be a string with a {text} field "
            "(and optionally {n}, {id}, {score}, {index})"
        )
        raise InvalidInputError(msg)
    try:
        template.format(n=1, id="id", text="text", score=0.0, index=0)
    except (KeyError, IndexError, ValueError) as exc:
        msg = (
            f"template {template!r} cannot be filled ({exc}); "
            "its fields are n, id, text, score, index"
        )
        raise InvalidInputError(msg) from exc
