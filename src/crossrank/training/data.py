"""Training examples: (query, positive, hard negatives) groups mined with the dense retriever.

Hard negatives come from the retriever's own top ranks, because those are the documents a
reranker has to push down. The first ``skip_top`` ranks are skipped: in sparsely judged
collections they hold unjudged relevant documents often enough to teach the model wrong.
A judged-relevant document is never a negative for its query.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Collection as AbstractSet
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from crossrank.errors import InvalidInputError

if TYPE_CHECKING:
    from crossrank.data import Collection
    from crossrank.retrieval import SearchHit
    from crossrank.training.config import LossName

__all__ = [
    "SupportsSearchBatch",
    "TrainingGroup",
    "mine_groups",
    "pick_negatives",
    "split_holdout",
    "title_groups",
    "to_dataset",
]

logger = logging.getLogger(__name__)

_SEARCH_CHUNK = 256


class SupportsSearchBatch(Protocol):
    """A first-stage retriever over the collection's corpus (e.g. a DenseRetriever)."""

    def search_batch(self, queries: Sequence[str], top_k: int = 10) -> list[list[SearchHit]]:
        """The ``top_k`` hits of each query, best first."""
        ...


@dataclass(frozen=True, slots=True)
class TrainingGroup:
    """One training query with one relevant document and its hard negatives."""

    query: str
    positive: str
    negatives: tuple[str, ...]
    source: str


def pick_negatives(
    ranked_ids: Sequence[str],
    excluded: AbstractSet[str],
    *,
    count: int,
    skip_top: int,
    rng: random.Random,
) -> list[str]:
    """Up to ``count`` ids drawn at random from ``ranked_ids[skip_top:]``, in rank order.

    Ids in ``excluded`` (the query's relevant documents) and repeated ids are never drawn.
    """
    pool: list[str] = []
    seen = set(excluded)
    for doc_id in ranked_ids[skip_top:]:
        if doc_id not in seen:
            seen.add(doc_id)
            pool.append(doc_id)
    chosen = sorted(rng.sample(range(len(pool)), min(count, len(pool))))
    return [pool[i] for i in chosen]


def _fill_random(
    chosen: list[str],
    corpus_ids: Sequence[str],
    excluded: AbstractSet[str],
    count: int,
    rng: random.Random,
) -> list[str]:
    """Pad ``chosen`` to ``count`` with random corpus documents (not excluded, not repeated)."""
    taken = set(chosen) | set(excluded)
    available = len(corpus_ids) - len(taken & set(corpus_ids))
    out = list(chosen)
    while len(out) < count and available > 0:
        doc_id = corpus_ids[rng.randrange(len(corpus_ids))]
        if doc_id not in taken:
            taken.add(doc_id)
            out.append(doc_id)
            available -= 1
    return out


def split_holdout(query_ids: Sequence[str], n: int, seed: int) -> tuple[list[str], list[str]]:
    """``(train_ids, held_out_ids)``: ``n`` ids drawn at random are held out (order kept)."""
    if n >= len(query_ids) and n > 0:
        msg = (
            f"cannot hold out {n} of {len(query_ids)} judged queries and still train; "
            "lower holdout_queries"
        )
        raise InvalidInputError(msg)
    held = set(random.Random(seed).sample(list(query_ids), n))
    return [q for q in query_ids if q not in held], [q for q in query_ids if q in held]


def _positives(
    collection: Collection, query_id: str, limit: int | None, rng: random.Random
) -> list[str]:
    relevant = list(collection.relevant(query_id).items())
    rng.shuffle(relevant)
    relevant.sort(key=lambda item: -item[1])  # stable: equal grades stay shuffled
    ids = [doc_id for doc_id, _label in relevant]
    return ids if limit is None else ids[:limit]


def _search(
    retriever: SupportsSearchBatch,
    texts: Sequence[str],
    depth: int,
    desc: str,
    progress: bool | None,
) -> list[list[SearchHit]]:
    from tqdm.auto import tqdm

    disable = None if progress is None else not progress
    hits: list[list[SearchHit]] = []
    starts = range(0, len(texts), _SEARCH_CHUNK)
    for start in tqdm(starts, desc=desc, unit="chunk", disable=disable):
        hits.extend(retriever.search_batch(list(texts[start : start + _SEARCH_CHUNK]), top_k=depth))
    return hits


def mine_groups(
    collection: Collection,
    retriever: SupportsSearchBatch,
    query_ids: Iterable[str] | None = None,
    *,
    negatives: int,
    skip_top: int,
    depth: int,
    max_positives: int | None = 1,
    seed: int = 0,
    show_progress: bool | None = None,
) -> list[TrainingGroup]:
    """One group per (judged query, positive) with ``negatives`` mined hard negatives.

    Negatives are drawn from the retriever's ranks ``skip_top + 1 .. depth`` for the query,
    excluding every document judged relevant to it; when too few remain, random corpus
    documents fill the group so each one has exactly ``negatives``. Texts are titles and
    abstracts joined, as the retriever and the reranker see them.
    """
    ids = [q.id for q in collection.judged_queries()] if query_ids is None else list(query_ids)
    rng = random.Random(seed)
    corpus = collection.corpus
    corpus_ids = list(corpus)
    queries = [collection.queries[q] for q in ids]
    hits = _search(
        retriever, [q.text for q in queries], depth, f"mining {collection.name}", show_progress
    )
    source = f"{collection.name}:{collection.split}"
    groups: list[TrainingGroup] = []
    for query, row in zip(queries, hits, strict=True):
        relevant = set(collection.relevant(query.id))
        ranked = [hit.id for hit in row]
        for positive in _positives(collection, query.id, max_positives, rng):
            chosen = pick_negatives(ranked, relevant, count=negatives, skip_top=skip_top, rng=rng)
            chosen = _fill_random(chosen, corpus_ids, relevant, negatives, rng)
            groups.append(
                TrainingGroup(
                    query=query.text,
                    positive=corpus[positive].full_text,
                    negatives=tuple(corpus[d].full_text for d in chosen),
                    source=source,
                )
            )
    return groups


def title_groups(
    collection: Collection,
    retriever: SupportsSearchBatch,
    *,
    limit: int,
    negatives: int,
    skip_top: int,
    depth: int,
    seed: int = 0,
    show_progress: bool | None = None,
) -> list[TrainingGroup]:
    """Up to ``limit`` groups whose query is a document's title and positive its abstract.

    Texts are abstracts without titles (the title would give the answer away); negatives are
    the abstracts of documents the retriever ranks high for the title.
    """
    rng = random.Random(seed)
    corpus = collection.corpus
    titled = [d for d in corpus.values() if d.title.strip() and d.text.strip()]
    docs = rng.sample(titled, min(limit, len(titled)))
    hits = _search(
        retriever, [d.title for d in docs], depth, f"titles {collection.name}", show_progress
    )
    corpus_ids = list(corpus)
    source = f"{collection.name}:titles"
    groups = []
    for doc, row in zip(docs, hits, strict=True):
        own = {doc.id}
        chosen = pick_negatives(
            [h.id for h in row], own, count=negatives, skip_top=skip_top, rng=rng
        )
        chosen = _fill_random(chosen, corpus_ids, own, negatives, rng)
        groups.append(
            TrainingGroup(
                query=doc.title,
                positive=doc.text,
                negatives=tuple(corpus[d].text for d in chosen),
                source=source,
            )
        )
    return groups


def to_dataset(groups: Sequence[TrainingGroup], loss: LossName) -> Any:
    """A ``datasets.Dataset`` in the column layout ``loss`` expects.

    ``"mnrl"``: ``query, positive, negative_1..n``; ``"bce"``: ``query, document, label``
    (one row per pair); ``"listnet"``/``"lambda"``: ``query, documents, labels``.
    """
    from crossrank.training.losses import import_datasets

    datasets = import_datasets()
    if not groups:
        msg = "no training examples: the training splits have no judged queries left"
        raise InvalidInputError(msg)
    n_neg = len(groups[0].negatives)
    if any(len(g.negatives) != n_neg for g in groups):
        msg = "every training group needs the same number of negatives"
        raise InvalidInputError(msg)
    if loss == "mnrl":
        columns: dict[str, list[Any]] = {
            "query": [g.query for g in groups],
            "positive": [g.positive for g in groups],
        }
        for i in range(n_neg):
            columns[f"negative_{i + 1}"] = [g.negatives[i] for g in groups]
    elif loss == "bce":
        columns = {"query": [], "document": [], "label": []}
        for g in groups:
            for doc, label in ((g.positive, 1.0), *((n, 0.0) for n in g.negatives)):
                columns["query"].append(g.query)
                columns["document"].append(doc)
                columns["label"].append(label)
    else:
        columns = {
            "query": [g.query for g in groups],
            "documents": [[g.positive, *g.negatives] for g in groups],
            "labels": [[1.0] + [0.0] * len(g.negatives) for g in groups],
        }
    return datasets.Dataset.from_dict(columns)
