"""From scores to the ranked list: options, their checks, and the one ranking function.

Every reranker in crossrank (the engine, :class:`crossrank.testing.FakeReranker`, the
training evaluator, the remote client) turns per-document scores into results here, so
``top_n``, fusion, ``min_score`` and tie-breaking behave identically everywhere.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crossrank.errors import InvalidInputError
from crossrank.ranking.fusion import fuse
from crossrank.types import FUSION_METHODS, DocRead, FusionMethod, RankArgs, RerankResult

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "RankArgs",
    "RankOptions",
    "check_choice",
    "check_positive_int",
    "check_real",
    "check_retrieval_scores",
    "rank_results",
]


def check_positive_int(name: str, value: object) -> int:
    """``value`` as an ``int`` when it is a positive integer (NumPy integers too)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        msg = f"{name} must be a positive integer, got {value!r}"
        raise InvalidInputError(msg)
    return int(value)


def check_real(name: str, value: object, *, finite: bool = True) -> float:
    """``value`` as a ``float`` when it is a real number (NumPy scalars too), finite by default."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a number, got {value!r}"
        raise InvalidInputError(msg)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf if value > 0 else -math.inf  # type: ignore[operator]
    if finite and not math.isfinite(number):
        msg = f"{name} must be a finite number, got {value!r}"
        raise InvalidInputError(msg)
    return number


def check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    """Raise unless ``value`` is one of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        msg = f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}"
        raise InvalidInputError(msg)


def check_retrieval_scores(scores: object, n_docs: int) -> list[float]:
    """One finite first-stage score per document, as floats (NumPy values accepted)."""
    if isinstance(scores, str | bytes) or not _is_vector(scores):
        msg = f"retrieval_scores must be a list of numbers, got {type(scores).__name__}"
        raise InvalidInputError(msg)
    values = list(scores)  # type: ignore[call-overload]
    if len(values) != n_docs:
        msg = (
            f"retrieval_scores has {len(values)} values for {n_docs} documents; "
            "pass one first-stage score per document"
        )
        raise InvalidInputError(msg)
    return [check_real(f"retrieval score {i}", v) for i, v in enumerate(values)]


def _is_vector(value: object) -> bool:
    """A sequence, or a one-dimensional NumPy array (what first stages often return)."""
    if isinstance(value, Sequence):
        return True
    return getattr(value, "ndim", None) == 1 and hasattr(value, "__iter__")


@dataclass(frozen=True, slots=True)
class RankOptions:
    """Checked ranking options (see :class:`RankArgs`); build with :meth:`parse`."""

    top_n: int | None = None
    fusion: FusionMethod | None = None
    alpha: float = 1.0
    min_score: float | None = None

    @classmethod
    def parse(cls, args: RankArgs | None = None, /, **kwargs: Unpack[RankArgs]) -> RankOptions:
        """Check the options and return them normalised (Python ints and floats)."""
        merged: dict[str, object] = {**(args or {}), **kwargs}
        unknown = sorted(set(merged) - set(RankArgs.__annotations__))
        if unknown:
            msg = (
                f"unknown ranking option(s) {', '.join(unknown)}; use "
                f"{', '.join(RankArgs.__annotations__)}"
            )
            raise InvalidInputError(msg)
        top_n = merged.get("top_n")
        fusion = merged.get("fusion")
        min_score = merged.get("min_score")
        if fusion is not None:
            check_choice("fusion", fusion, FUSION_METHODS)
        alpha = check_real("alpha", merged.get("alpha", 1.0))
        if not 0.0 <= alpha <= 1.0:
            msg = f"alpha must be between 0 and 1 (weight of the cross-encoder), got {alpha}"
            raise InvalidInputError(msg)
        return cls(
            top_n=None if top_n is None else check_positive_int("top_n", top_n),
            fusion=fusion,  # type: ignore[arg-type]
            alpha=alpha,
            min_score=None if min_score is None else check_real("min_score", min_score),
        )

    def check_request(self, retrieval_scores: object, n_docs: int) -> list[float] | None:
        """Check one request's first-stage scores against these options, before scoring."""
        if retrieval_scores is None:
            if self.fusion is not None:
                msg = (
                    f"fusion={self.fusion!r} needs retrieval_scores "
                    "(one first-stage score per document)"
                )
                raise InvalidInputError(msg)
            return None
        return check_retrieval_scores(retrieval_scores, n_docs)


_WHOLE = DocRead(truncated=False, n_windows=1)


def rank_results(
    documents: Sequence[str],
    rerank_scores: Sequence[float],
    options: RankOptions,
    *,
    retrieval_scores: Sequence[float] | None = None,
    reads: Sequence[DocRead] | None = None,
) -> list[RerankResult]:
    """Order one query's documents: fuse (when asked), sort best first with ties in input
    order, drop scores below ``min_score``, keep ``top_n``.

    ``retrieval_scores`` must already be checked (:meth:`RankOptions.check_request`);
    ``reads`` says how each document was read (default: whole, one window).
    """
    rerank = [float(s) for s in rerank_scores]
    dense = None if retrieval_scores is None else [float(s) for s in retrieval_scores]
    final = rerank
    if options.fusion is not None and dense is not None:
        final = fuse(rerank, dense, options.fusion, options.alpha)
    order = sorted(range(len(documents)), key=lambda i: (-final[i], i))
    if options.min_score is not None:
        order = [i for i in order if final[i] >= options.min_score]
    if options.top_n is not None:
        order = order[: options.top_n]
    results = []
    for i in order:
        read = _WHOLE if reads is None else reads[i]
        results.append(
            RerankResult(
                index=i,
                score=float(final[i]),
                rerank_score=rerank[i],
                retrieval_score=None if dense is None else dense[i],
                truncated=read.truncated,
                n_windows=read.n_windows,
                document=documents[i],
                span=read.span,
            )
        )
    return results
