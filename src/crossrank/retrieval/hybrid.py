"""Hybrid first stage: dense and BM25 candidates merged, each keeping both scores."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from crossrank.errors import DataError, InvalidInputError
from crossrank.ranking.fusion import RRF_K, minmax, rank_positions
from crossrank.retrieval.hits import SearchHit, check_strings, check_top_k

if TYPE_CHECKING:
    from crossrank.data import Document
    from crossrank.retrieval.bm25 import BM25Retriever
    from crossrank.retrieval.dense import DenseRetriever

__all__ = ["HybridMethod", "HybridRetriever"]

HybridMethod = Literal["rrf", "weighted"]
NAMES = ("dense", "bm25")
META = "hybrid.json"


class HybridRetriever:
    """Candidates from a :class:`~crossrank.DenseRetriever` and a
    :class:`~crossrank.BM25Retriever`, merged into one ranking.

    Each retriever returns its best ``depth`` documents (default: ``top_k``); the union is
    ranked by ``method`` and cut to ``top_k``:

    - ``"rrf"``: reciprocal-rank fusion, ``sum 1 / (rrf_k + rank)`` over the retrievers
      that returned the document;
    - ``"weighted"``: ``alpha * minmax(dense) + (1 - alpha) * minmax(bm25)`` over the
      union, where a document a retriever did not return gets that retriever's 0.

    Every hit keeps both first-stage scores in ``hit.scores`` (``{"dense": .., "bm25": ..}``);
    a retriever that did not return the document has ``None`` there, unless
    ``complete_scores=True``, which computes its exact score instead (one more BM25 pass,
    or a dot product per missing document), so that either score can be fused with the
    cross-encoder: e.g. the 80/20 cross-encoder + BM25 blend is
    ``reranker.rerank(q, texts, retrieval_scores=[h.scores["bm25"] for h in hits],
    fusion="weighted", alpha=0.8)``.
    """

    def __init__(
        self,
        dense: DenseRetriever,
        bm25: BM25Retriever,
        *,
        method: HybridMethod = "rrf",
        alpha: float = 0.5,
        rrf_k: int = RRF_K,
        depth: int | None = None,
        complete_scores: bool = False,
    ) -> None:
        if method not in ("rrf", "weighted"):
            msg = f"method must be 'rrf' or 'weighted', got {method!r}"
            raise InvalidInputError(msg)
        if not 0.0 <= alpha <= 1.0:
            msg = f"alpha must be between 0 and 1 (weight of the dense scores), got {alpha}"
            raise InvalidInputError(msg)
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or rrf_k < 0:
            msg = f"rrf_k must be a non-negative integer, got {rrf_k!r}"
            raise InvalidInputError(msg)
        if depth is not None:
            check_top_k(depth)
        self.dense = dense
        self.bm25 = bm25
        self.method: HybridMethod = method
        self.alpha = float(alpha)
        self.rrf_k = rrf_k
        self.depth = depth
        self.complete_scores = bool(complete_scores)

    @property
    def model_name(self) -> str:
        """The first stages' names joined, with the fusion method."""
        how = "rrf" if self.method == "rrf" else f"weighted alpha={self.alpha:g}"
        return f"hybrid({self.dense.model_name} + BM25, {how})"

    def __len__(self) -> int:
        return max(len(self.dense), len(self.bm25))

    def __repr__(self) -> str:
        return f"HybridRetriever(method={self.method!r}, documents={len(self)})"

    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> None:
        """Add ``texts`` to both retrievers (ids default to the running position)."""
        texts = check_strings("texts", texts)
        if ids is None:
            ids = [str(len(self) + i) for i in range(len(texts))]
        self.dense.add(texts, ids)
        self.bm25.add(texts, ids)

    def add_documents(self, documents: Iterable[Document]) -> None:
        """Add :class:`crossrank.data.Document` objects to both retrievers."""
        docs = list(documents)
        self.add([d.full_text for d in docs], ids=[d.id for d in docs])

    def search(self, query: str, top_k: int = 10) -> list[SearchHit]:
        """The ``top_k`` best merged candidates for ``query``, best first."""
        if not isinstance(query, str):
            msg = f"query must be a string, got {type(query).__name__}"
            raise InvalidInputError(msg)
        return self.search_batch([query], top_k=top_k)[0]

    def search_batch(self, queries: Sequence[str], top_k: int = 10) -> list[list[SearchHit]]:
        """:meth:`search` for several queries (one dense encoder pass)."""
        queries = check_strings("queries", queries)
        top_k = check_top_k(top_k)
        depth = max(top_k, self.depth or top_k)
        dense_rows = self.dense.search_batch(queries, top_k=depth)
        bm25_rows = self.bm25.search_batch(queries, top_k=depth)
        return [
            self._merge(query, dense, bm25, top_k)
            for query, dense, bm25 in zip(queries, dense_rows, bm25_rows, strict=True)
        ]

    def _merge(
        self, query: str, dense: list[SearchHit], bm25: list[SearchHit], top_k: int
    ) -> list[SearchHit]:
        texts: dict[str, str] = {}
        found: dict[str, dict[str, float]] = {}
        for name, row in zip(NAMES, (dense, bm25), strict=True):
            for hit in row:
                texts.setdefault(hit.id, hit.text)
                found.setdefault(hit.id, {})[name] = hit.score
        ids = list(texts)
        if not ids:
            return []
        fused = self._fuse(ids, {name: [found[i].get(name) for i in ids] for name in NAMES})
        order = sorted(range(len(ids)), key=lambda p: (-fused[p], p))[:top_k]
        kept = [ids[p] for p in order]
        scores: dict[str, list[float | None]] = {n: [found[i].get(n) for i in kept] for n in NAMES}
        if self.complete_scores:
            for name, retriever in (("dense", self.dense), ("bm25", self.bm25)):
                missing = [i for i, s in zip(kept, scores[name], strict=True) if s is None]
                if missing:
                    exact = retriever.score_documents(query, missing)
                    filled = dict(zip(missing, exact, strict=True))
                    pairs = zip(kept, scores[name], strict=True)
                    scores[name] = [filled.get(i, s) for i, s in pairs]
        return [
            SearchHit(
                id=doc_id,
                text=texts[doc_id],
                score=fused[p],
                scores={name: scores[name][n] for name in NAMES},
            )
            for n, (p, doc_id) in enumerate(zip(order, kept, strict=True))
        ]

    def _fuse(self, ids: list[str], runs: dict[str, list[float | None]]) -> list[float]:
        if self.method == "rrf":
            total = [0.0] * len(ids)
            for run in runs.values():
                present = [p for p, s in enumerate(run) if s is not None]
                ranks = rank_positions([run[p] or 0.0 for p in present])
                for p, rank in zip(present, ranks, strict=True):
                    total[p] += 1.0 / (self.rrf_k + rank)
            return total
        weights = {"dense": self.alpha, "bm25": 1.0 - self.alpha}
        total = [0.0] * len(ids)
        for name, run in runs.items():
            present = [p for p, s in enumerate(run) if s is not None]
            if not present:
                continue
            scaled = minmax([run[p] or 0.0 for p in present])
            for p, value in zip(present, scaled, strict=True):
                total[p] += weights[name] * value
        return total

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Save both retrievers (``dense/``, ``bm25/``) and the merge settings."""
        folder = Path(directory)
        self.dense.save(folder / "dense")
        self.bm25.save(folder / "bm25")
        settings = {
            "method": self.method,
            "alpha": self.alpha,
            "rrf_k": self.rrf_k,
            "depth": self.depth,
            "complete_scores": self.complete_scores,
        }
        (folder / META).write_text(json.dumps(settings, indent=2), encoding="utf-8")
        return folder

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
    ) -> HybridRetriever:
        """Load what :meth:`save` wrote (``model``: see :meth:`DenseRetriever.load`)."""
        from crossrank.retrieval.bm25 import BM25Retriever
        from crossrank.retrieval.dense import DenseRetriever

        folder = Path(directory)
        try:
            settings = json.loads((folder / META).read_text(encoding="utf-8"))
            options = {k: settings[k] for k in ("method", "alpha", "rrf_k", "depth")}
            complete = bool(settings["complete_scores"])
        except (OSError, ValueError, LookupError, TypeError) as exc:
            msg = f"{folder / META} is not a readable hybrid retriever ({exc}); save it again"
            raise DataError(msg) from None
        dense = DenseRetriever.load(folder / "dense", model, device=device)
        bm25 = BM25Retriever.load(folder / "bm25")
        return cls(dense, bm25, **options, complete_scores=complete)
