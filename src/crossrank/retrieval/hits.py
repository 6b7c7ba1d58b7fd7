"""What a first-stage retriever returns, and the argument checks every retriever shares."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from crossrank.errors import InvalidInputError

__all__ = ["SearchHit", "check_new_documents", "check_strings", "check_top_k"]


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One retrieved document.

    Attributes:
        id: the document id.
        text: the document text (title and body as indexed).
        score: the retriever's score, higher is better: cosine (or inner product) for
            :class:`~crossrank.DenseRetriever`, BM25 for :class:`~crossrank.BM25Retriever`,
            the fused score for :class:`~crossrank.HybridRetriever`.
        scores: the first-stage scores behind a merged hit, by retriever name (e.g.
            ``{"dense": 0.61, "bm25": 12.3}``); a retriever that did not return the document
            has ``None``. ``None`` for a single retriever's hits.
    """

    id: str
    text: str
    score: float
    scores: Mapping[str, float | None] | None = field(default=None, hash=False)

    def score_of(self, name: str) -> float | None:
        """The ``name`` retriever's score of this hit (its own ``score`` when not merged)."""
        if self.scores is None:
            return None
        return self.scores.get(name)


def check_strings(name: str, values: object) -> list[str]:
    """Refuse anything that is not a list of strings, naming the bad item."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        msg = f"{name} must be a list of strings, got {type(values).__name__}"
        raise InvalidInputError(msg)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            msg = f"{name}[{i}] must be a string, got {type(value).__name__}"
            raise InvalidInputError(msg)
    return list(values)


def check_new_documents(
    texts: object, ids: object, known: Collection[str], size: int
) -> tuple[list[str], list[str]]:
    """``(texts, ids)`` checked for adding to an index of ``size`` documents whose ids are
    ``known``: ids default to the running position; one per text, unique, and new."""
    texts = check_strings("texts", texts)
    if ids is None:
        ids = [str(size + i) for i in range(len(texts))]
    ids = check_strings("ids", ids)
    if len(ids) != len(texts):
        msg = f"got {len(ids)} ids for {len(texts)} texts; pass one id per text"
        raise InvalidInputError(msg)
    if len(set(ids)) != len(ids):
        msg = "ids must be unique; the same id appears twice in this call"
        raise InvalidInputError(msg)
    clash = next((i for i in ids if i in known), None)
    if clash is not None:
        msg = f"document id {clash!r} is already in the index; ids must be unique"
        raise InvalidInputError(msg)
    return texts, ids


def check_top_k(top_k: object) -> int:
    """``top_k`` as an ``int`` when it is a positive integer."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        msg = f"top_k must be a positive integer, got {top_k!r}"
        raise InvalidInputError(msg)
    return top_k
