"""How a (query, document) pair fits in ``max_length`` tokens: one object owns the arithmetic.

The rule: a pair that fits is never cut (so scores equal ``CrossEncoder.predict`` on it).
When it does not fit, the query keeps what the document leaves free, but at least
``query_max_tokens`` (or all of it, if shorter); the document gets the rest and is cut,
windowed or refused by the overflow policy.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from crossrank.errors import InvalidInputError
from crossrank.ranking.results import check_positive_int

__all__ = ["PairGeometry"]


@dataclass(frozen=True, slots=True)
class PairGeometry:
    """Token arithmetic of one reranker's pairs.

    Attributes:
        max_length: tokens per pair, special tokens included.
        n_special: special tokens the model's template adds to a pair.
        query_max_tokens: the query tokens guaranteed to be kept when a pair does not fit.
        stride: tokens shared by consecutive windows (``None``: a quarter of the window).
    """

    max_length: int
    n_special: int
    query_max_tokens: int
    stride: int | None = None

    @classmethod
    def build(
        cls,
        *,
        model: str,
        n_special: int,
        model_max_length: int,
        default_max_length: int,
        max_length: object = None,
        query_max_tokens: object = None,
        stride: object = None,
    ) -> PairGeometry:
        """Check the user's settings against the model and fill in the defaults.

        ``None`` means the default (the model's configured length; a quarter of it for the
        query); ``0`` or a negative number is an error, never a default.
        """
        length = check_positive_int(
            "max_length", default_max_length if max_length is None else max_length
        )
        if length > model_max_length:
            msg = (
                f"max_length={length} exceeds what model {model!r} supports "
                f"({model_max_length} tokens); use max_length<={model_max_length}"
            )
            raise InvalidInputError(msg)
        room = length - n_special - 1
        if room < 1:
            msg = f"max_length={length} leaves no room for a query and a document; use more"
            raise InvalidInputError(msg)
        q_max = check_positive_int(
            "query_max_tokens",
            max(1, length // 4) if query_max_tokens is None else query_max_tokens,
        )
        if q_max > room:
            msg = (
                f"query_max_tokens={q_max} leaves no room for the document within "
                f"max_length={length}; use at most {room}"
            )
            raise InvalidInputError(msg)
        smallest_window = length - n_special - q_max
        if stride is not None and (
            isinstance(stride, bool)
            or not isinstance(stride, numbers.Integral)
            or not 0 <= int(stride) < smallest_window
        ):
            msg = f"stride must be between 0 and {smallest_window - 1} tokens, got {stride!r}"
            raise InvalidInputError(msg)
        return cls(length, n_special, q_max, None if stride is None else int(stride))

    @property
    def room(self) -> int:
        """Tokens for query and document together."""
        return self.max_length - self.n_special

    def query_keep(self, n_query: int, n_document: int) -> int:
        """How many query tokens this pair keeps: all when the pair fits, else what the
        document leaves free but at least ``query_max_tokens``."""
        if n_query + n_document <= self.room:
            return n_query
        return min(n_query, max(self.query_max_tokens, self.room - n_document))

    def window_stride(self, budget: int) -> int:
        """Overlap of consecutive windows of ``budget`` document tokens."""
        return budget // 4 if self.stride is None else min(self.stride, budget - 1)
