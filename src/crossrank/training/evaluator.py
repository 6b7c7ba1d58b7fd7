"""Dev evaluation during training: dense vs. reranked vs. fused, with crossrank's evaluation.

The model being trained is scored in memory (no save and reload per evaluation) through a
small adapter with the ``rerank_many`` method that :func:`crossrank.evaluation.evaluate`
needs; documents are cut to the training ``max_length`` as in training.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crossrank.ranking.results import RankOptions, rank_results
from crossrank.types import RankArgs, RerankResult

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from crossrank.data import Collection
    from crossrank.evaluation import EvaluationReport, SupportsSearch

__all__ = ["DevSet", "ModelReranker", "dev_metrics", "evaluate_model", "restrict"]

logger = logging.getLogger(__name__)

METRICS = ("NDCG@10", "MRR@10", "Hit@1")
RUNS = ("dense", "reranked", "fused")
PRIMARY = "reranked_ndcg@10"


@dataclass(frozen=True)
class DevSet:
    """Judged queries of one collection split with a retriever over its corpus."""

    name: str
    collection: Collection
    retriever: SupportsSearch


def restrict(collection: Collection, query_ids: Sequence[str]) -> Collection:
    """A copy of ``collection`` whose judgments cover only ``query_ids`` (in their order)."""
    keep = [q for q in query_ids if q in collection.qrels]
    return dataclasses.replace(collection, qrels={q: collection.qrels[q] for q in keep})


class ModelReranker:
    """``rerank_many`` over an in-memory ``sentence_transformers.CrossEncoder``.

    Scores are the model's raw logits (ranking and min-max fusion do not depend on a
    monotone activation). Documents are cut to the model's ``max_seq_length`` by its
    tokenizer; results do not report truncation (``truncated`` is always False), which is
    enough for choosing a checkpoint but not for the engine's guarantees.
    """

    def __init__(self, model: Any, *, batch_size: int = 32, name: str = "model in training"):
        self._model = model
        self._batch_size = batch_size
        self.model_name = name

    def rerank_many(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        *,
        retrieval_scores: Sequence[Sequence[float]] | None = None,
        **options: Unpack[RankArgs],
    ) -> list[list[RerankResult]]:
        """Score every pair with the model in training and rank as the engine does."""
        import torch

        opts = RankOptions.parse(options)
        pairs = [(q, d) for q, docs in zip(queries, documents_per_query, strict=True) for d in docs]
        was_training = bool(self._model.training)
        try:
            raw = self._model.predict(
                pairs,
                batch_size=self._batch_size,
                activation_fn=torch.nn.Identity(),
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        finally:
            self._model.train(was_training)
        flat = [float(s) for s in raw]
        out: list[list[RerankResult]] = []
        start = 0
        for i, docs in enumerate(documents_per_query):
            scores = flat[start : start + len(docs)]
            start += len(docs)
            dense = opts.check_request(
                None if retrieval_scores is None else retrieval_scores[i], len(docs)
            )
            out.append(rank_results(docs, scores, opts, retrieval_scores=dense))
        return out


def dev_metrics(reports: Sequence[tuple[str, EvaluationReport]]) -> dict[str, float]:
    """Flat metrics: ``<set>_<run>_<metric>`` per dev set and ``<run>_<metric>`` averaged."""
    metrics: dict[str, float] = {}
    sums: dict[str, list[float]] = {}
    for name, report in reports:
        for run in report.runs:
            for metric in METRICS:
                value = float(run.metrics[metric])
                key = f"{run.name}_{metric.lower()}"
                metrics[f"{name}_{key}"] = value
                sums.setdefault(key, []).append(value)
    for key, values in sums.items():
        metrics[key] = math.fsum(values) / len(values)
    return metrics


def evaluate_model(
    sets: Sequence[DevSet],
    reranker: Any,
    *,
    top_k: int,
    top_n: int,
    show_progress: bool | None = False,
) -> list[tuple[str, EvaluationReport]]:
    """Run :func:`crossrank.evaluation.evaluate` on every dev set (weighted fusion, 0.5)."""
    from crossrank.evaluation import evaluate

    return [
        (
            s.name,
            evaluate(
                s.collection,
                s.retriever,
                reranker,
                top_k=top_k,
                top_n=top_n,
                fusion="weighted",
                alpha=0.5,
                show_progress=show_progress,
            ),
        )
        for s in sets
    ]


def make_dev_evaluator(sets: Sequence[DevSet], *, top_k: int, top_n: int, batch_size: int) -> Any:
    """A sentence-transformers evaluator (the trainer calls it) over ``sets``.

    Its metrics are :func:`dev_metrics`; the primary one is the reranked NDCG@10 averaged
    over the sets. ``history`` keeps ``(step, metrics)`` of every call.
    """
    from sentence_transformers.base.evaluation import BaseEvaluator

    class CrossrankDevEvaluator(BaseEvaluator):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.name = "dev"
            self.primary_metric = PRIMARY
            self.history: list[tuple[int, dict[str, float]]] = []

        def __call__(
            self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
        ) -> dict[str, float]:
            reranker = ModelReranker(model, batch_size=batch_size)
            metrics = dev_metrics(evaluate_model(sets, reranker, top_k=top_k, top_n=top_n))
            self.history.append((max(steps, 0), metrics))
            logger.info(
                "dev at step %d: dense NDCG@10 %.4f, reranked %.4f, fused %.4f",
                steps,
                metrics["dense_ndcg@10"],
                metrics["reranked_ndcg@10"],
                metrics["fused_ndcg@10"],
            )
            # The trainer logs what is returned: the averages only (the card has the rest).
            average = {k: v for k, v in metrics.items() if k.split("_", 1)[0] in RUNS}
            prefixed: dict[str, float] = self.prefix_name_to_metrics(average, self.name)
            return prefixed

    return CrossrankDevEvaluator()
