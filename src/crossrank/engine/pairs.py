"""Truncation-safe (query, document) pairs.

Query and document are tokenized apart and joined with the model's own special tokens. A pair
that fits ``max_length`` is never cut; otherwise the query keeps what
:class:`~crossrank.engine.geometry.PairGeometry` allows and the document gets the rest. A
document that does not fit is cut (``"truncate"``), split into overlapping windows
(``"chunk"``), or refused (``"error"``); either way the caller is told.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crossrank.engine.geometry import PairGeometry
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
        """Special tokens the template adds to every pair."""
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
        """Token ids and type ids of one pair, laid out as the tokenizer would."""
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
    """One model input: the pair's token ids, which document it belongs to, and the
    character span of the document text it holds."""

    doc: int
    ids: list[int]
    type_ids: list[int]
    span: tuple[int, int]


@dataclass(frozen=True, slots=True)
class DocPlan:
    """What happened to one document: whether it was cut, and whether the query was."""

    truncated: bool
    query_cut: bool


def window_starts(n_tokens: int, budget: int, stride: int) -> list[int]:
    """Start offsets of windows of ``budget`` tokens overlapping by ``stride`` that cover
    ``n_tokens`` tokens (one window when it fits)."""
    starts = [0]
    step = budget - stride
    while starts[-1] + budget < n_tokens:
        starts.append(starts[-1] + step)
    return starts


def _char_span(
    offsets: Sequence[tuple[int, int]], start: int, end: int, text: str
) -> tuple[int, int]:
    """Characters of ``text`` covered by tokens ``start:end`` (the whole text for no cut)."""
    if start == 0 and end >= len(offsets):
        return 0, len(text)
    if end <= start:
        return 0, 0
    return offsets[start][0], offsets[end - 1][1]


def plan_pairs(
    tokenizer: Tokenizer,
    template: PairTemplate,
    geometry: PairGeometry,
    query: str,
    documents: Sequence[str],
    *,
    overflow: Overflow,
    first_index: int = 0,
    indices: Sequence[int] | None = None,
) -> tuple[list[Window], list[DocPlan]]:
    """Tokenize one query and its documents into model inputs.

    Returns the windows (``Window.doc`` is the document's position plus ``first_index``) and
    a :class:`DocPlan` per document. ``indices`` gives the documents' positions in the
    caller's list, for error messages.
    """
    q_all = tokenizer.encode(query, add_special_tokens=False).ids
    encodings = tokenizer.encode_batch(list(documents), add_special_tokens=False)
    windows: list[Window] = []
    plans: list[DocPlan] = []
    for position, encoding in enumerate(encodings):
        d_ids = encoding.ids
        n = len(d_ids)
        text = documents[position]
        doc = first_index + position
        q_ids = q_all[: geometry.query_keep(len(q_all), n)]
        budget = geometry.room - len(q_ids)
        query_cut = len(q_ids) < len(q_all)
        if n <= budget:
            windows.append(Window(doc, *template.build(q_ids, d_ids), (0, len(text))))
            plans.append(DocPlan(False, query_cut))
        elif overflow == "truncate":
            span = _char_span(encoding.offsets, 0, budget, text)
            windows.append(Window(doc, *template.build(q_ids, d_ids[:budget]), span))
            plans.append(DocPlan(True, query_cut))
        elif overflow == "chunk":
            for start in window_starts(n, budget, geometry.window_stride(budget)):
                end = min(start + budget, n)
                span = _char_span(encoding.offsets, start, end, text)
                windows.append(Window(doc, *template.build(q_ids, d_ids[start:end]), span))
            plans.append(DocPlan(False, query_cut))
        else:
            index = indices[position] if indices is not None else position
            msg = (
                f"document {index} has {n} tokens but only {budget} fit beside the query "
                f"(max_length={geometry.max_length}); use overflow='truncate' or 'chunk', "
                "or shorten it"
            )
            raise DocumentTooLongError(msg, index=index, n_tokens=n, budget=budget)
    return windows, plans
