"""Truncation-safe (query, document) pairs.

Query and document are tokenized apart and joined with the model's own special tokens. The
query keeps at most ``query_max_tokens``; the document gets the rest of ``max_length``. A
document that does not fit is cut (``"truncate"``), split into overlapping windows
(``"chunk"``), or refused (``"error"``); either way the caller is told.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crossrank.errors import DocumentTooLongError, InvalidModelError
from crossrank.types import Overflow

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["DocPlan", "Overflow", "PairTemplate", "Window", "plan_pairs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairTemplate:
    """How the model's tokenizer lays out a pair: prefix A middle B suffix, with type ids."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    middle_types: tuple[int, ...]
    suffix_types: tuple[int, ...]
    a_type: int
    b_type: int

    @property
    def n_special(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer) -> PairTemplate:
        """Read the layout off the tokenizer's pair encoding, and check it on a second pair."""
        template = cls._probe(tokenizer, "query text", "document text here")
        a, b = "another question?", "A different passage, longer."
        check = tokenizer.encode(a, b, add_special_tokens=True)
        q = tokenizer.encode(a, add_special_tokens=False).ids
        d = tokenizer.encode(b, add_special_tokens=False).ids
        if template.build(q, d) != (check.ids, check.type_ids):
            msg = "this tokenizer's pair layout is not prefix/query/middle/document/suffix"
            raise InvalidModelError(msg)
        return template

    @classmethod
    def _probe(cls, tokenizer: Tokenizer, a: str, b: str) -> PairTemplate:
        enc = tokenizer.encode(a, b, add_special_tokens=True)
        seq = enc.sequence_ids
        a_pos = [i for i, s in enumerate(seq) if s == 0]
        b_pos = [i for i, s in enumerate(seq) if s == 1]
        if not a_pos or not b_pos:
            msg = "could not find the two sequences in the tokenizer's pair encoding"
            raise InvalidModelError(msg)
        ids, types = enc.ids, enc.type_ids
        return cls(
            prefix=tuple(ids[: a_pos[0]]),
            middle=tuple(ids[a_pos[-1] + 1 : b_pos[0]]),
            suffix=tuple(ids[b_pos[-1] + 1 :]),
            prefix_types=tuple(types[: a_pos[0]]),
            middle_types=tuple(types[a_pos[-1] + 1 : b_pos[0]]),
            suffix_types=tuple(types[b_pos[-1] + 1 :]),
            a_type=types[a_pos[0]],
            b_type=types[b_pos[0]],
        )

    def build(self, query: Sequence[int], document: Sequence[int]) -> tuple[list[int], list[int]]:
        ids = [*self.prefix, *query, *self.middle, *document, *self.suffix]
        types = [
            *self.prefix_types,
            *([self.a_type] * len(query)),
            *self.middle_types,
            *([self.b_type] * len(document)),
            *self.suffix_types,
        ]
        return ids, types


@dataclass(frozen=True, slots=True)
class Window:
    """One model input: the pair's token ids, and which document it belongs to."""

    doc: int
    ids: list[int]
    type_ids: list[int]


@dataclass(frozen=True, slots=True)
class DocPlan:
    """What happened to one document: its length, whether it was cut, how many windows."""

    n_tokens: int
    truncated: bool
    n_windows: int


def window_starts(n_tokens: int, budget: int, stride: int) -> list[int]:
    """Start offsets of windows of ``budget`` tokens overlapping by ``stride`` that cover
    ``n_tokens`` tokens (one window when it fits)."""
    starts = [0]
    step = budget - stride
    while starts[-1] + budget < n_tokens:
        starts.append(starts[-1] + step)
    return starts


def plan_pairs(
    tokenizer: Tokenizer,
    template: PairTemplate,
    query: str,
    documents: Sequence[str],
    *,
    max_length: int,
    query_max_tokens: int,
    overflow: Overflow,
    stride: int | None,
    first_index: int = 0,
    indices: Sequence[int] | None = None,
) -> tuple[list[Window], list[DocPlan], int]:
    """Tokenize one query and its documents into model inputs.

    Returns the windows (``Window.doc`` is the document's position plus ``first_index``), a
    :class:`DocPlan` per document, and the number of query tokens that were cut. ``indices``
    gives the documents' positions in the caller's list, for error messages.
    """
    q_ids = tokenizer.encode(query, add_special_tokens=False).ids
    query_cut = max(0, len(q_ids) - query_max_tokens)
    if query_cut:
        q_ids = q_ids[:query_max_tokens]
    budget = max_length - template.n_special - len(q_ids)
    doc_stride = budget // 4 if stride is None else min(stride, budget - 1)
    encodings = tokenizer.encode_batch(list(documents), add_special_tokens=False)
    windows: list[Window] = []
    plans: list[DocPlan] = []
    for position, encoding in enumerate(encodings):
        d_ids = encoding.ids
        n = len(d_ids)
        doc = first_index + position
        if n <= budget:
            windows.append(Window(doc, *template.build(q_ids, d_ids)))
            plans.append(DocPlan(n, False, 1))
        elif overflow == "truncate":
            windows.append(Window(doc, *template.build(q_ids, d_ids[:budget])))
            plans.append(DocPlan(n, True, 1))
        elif overflow == "chunk":
            starts = window_starts(n, budget, doc_stride)
            for start in starts:
                windows.append(Window(doc, *template.build(q_ids, d_ids[start : start + budget])))
            plans.append(DocPlan(n, False, len(starts)))
        else:
            index = indices[position] if indices is not None else position
            msg = (
                f"document {index} has {n} tokens but only {budget} fit beside the query "
                f"(max_length={max_length}); use overflow='truncate' or 'chunk', or shorten it"
            )
            raise DocumentTooLongError(msg, index=index, n_tokens=n, budget=budget)
    return windows, plans, query_cut
