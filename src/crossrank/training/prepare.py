"""Turning a :class:`TrainConfig` into training groups and dev sets.

Each training split is loaded, its corpus indexed once with the dense retriever (cached
under crossrank's cache folder, shared by every split of the same corpus), ``holdout_queries``
judged queries are set aside as dev queries, and the rest become training groups with mined
hard negatives.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.training.data import TrainingGroup, mine_groups, split_holdout, title_groups
from crossrank.training.evaluator import DevSet, restrict

if TYPE_CHECKING:
    from crossrank.data import Collection
    from crossrank.training.config import DataSpec, TrainConfig

__all__ = ["Prepared", "RetrieverPool", "prepare"]

logger = logging.getLogger(__name__)


class RetrieverPool:
    """One dense retriever per corpus, built or loaded from the index cache on first use."""

    def __init__(self, model: str | None, device: str, show_progress: bool | None) -> None:
        self.model = model
        self.device = device
        self.show_progress = show_progress
        self._by_corpus: dict[str, Any] = {}

    def get(self, collection: Collection) -> Any:
        """The retriever over ``collection``'s corpus, built or read from the cache once."""
        from crossrank.retrieval import cached_retriever

        key = str((collection.corpus_file or collection.path).resolve())
        if key not in self._by_corpus:
            retriever, reused = cached_retriever(
                collection, self.model, device=self.device, show_progress=self.show_progress
            )
            logger.info(
                "%s index for %s (%d documents)",
                "reused the cached" if reused else "built the",
                collection.name,
                len(retriever),
            )
            self._by_corpus[key] = retriever
        return self._by_corpus[key]

    @property
    def model_name(self) -> str:
        """The bi-encoder's name, as the retrievers report it."""
        first = next(iter(self._by_corpus.values()), None)
        return str(first.model_name) if first is not None else str(self.model or "default")


@dataclass
class Prepared:
    """What training needs: the groups, where they came from, and the dev sets."""

    groups: list[TrainingGroup]
    sources: dict[str, int]
    dev_sets: list[DevSet]
    dev_queries: dict[str, int]
    retrievers: RetrieverPool
    notes: list[str] = field(default_factory=list)


def _same(a: DataSpec, b: DataSpec) -> bool:
    from crossrank.data import resolve_collection

    try:
        return (
            a.split == b.split
            and resolve_collection(a.collection).resolve()
            == Path(resolve_collection(b.collection)).resolve()
        )
    except ValueError:
        return False


def prepare(config: TrainConfig, device: str) -> Prepared:
    """Load the splits, mine the training groups and build the dev sets of ``config``."""
    from crossrank.data import load_beir

    pool = RetrieverPool(config.retriever, device, config.show_progress)
    groups: list[TrainingGroup] = []
    sources: dict[str, int] = {}
    dev_sets: list[DevSet] = []
    titled: set[str] = set()
    notes: list[str] = []
    for i, spec in enumerate(config.data):
        collection = load_beir(spec.collection, spec.split)
        retriever = pool.get(collection)
        judged = [q.id for q in collection.judged_queries()]
        train_ids, held = split_holdout(judged, config.holdout_queries, config.seed + i)
        mined = mine_groups(
            collection,
            retriever,
            train_ids,
            negatives=config.negatives,
            skip_top=config.skip_top,
            depth=config.mine_depth,
            max_positives=config.max_positives,
            seed=config.seed + i,
            show_progress=config.show_progress,
        )
        groups.extend(mined)
        sources[f"{collection.name}:{spec.split}"] = len(mined)
        if held:
            name = f"{collection.name}-{spec.split}-holdout"
            dev_sets.append(DevSet(name, restrict(collection, held), retriever))
        corpus_key = str(collection.corpus_file or collection.path)
        if config.title_pairs and corpus_key not in titled:
            titled.add(corpus_key)
            extra = title_groups(
                collection,
                retriever,
                limit=config.title_pairs,
                negatives=config.negatives,
                skip_top=config.skip_top,
                depth=config.mine_depth,
                seed=config.seed + i,
                show_progress=config.show_progress,
            )
            groups.extend(extra)
            sources[f"{collection.name}:titles"] = len(extra)
    for spec in config.eval_data:
        if any(_same(spec, s) for s in config.data):
            note = f"dev split {spec} is also a training split: its dev numbers are optimistic"
            notes.append(note)
            logger.warning(note)
        if any(_same(spec, s) for s in config.test_data):
            note = f"dev split {spec} is also a test split: the best checkpoint is chosen on test"
            notes.append(note)
            logger.warning(note)
        collection = load_beir(spec.collection, spec.split)
        ids = [q.id for q in collection.judged_queries(config.eval_queries)]
        dev_sets.append(
            DevSet(
                f"{collection.name}-{spec.split}", restrict(collection, ids), pool.get(collection)
            )
        )
    dev_queries = {s.name: len(s.collection.qrels) for s in dev_sets}
    return Prepared(groups, sources, dev_sets, dev_queries, pool, notes)
