"""HybridRetriever: dense + BM25 candidates merged, both first-stage scores kept."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import crossrank
from crossrank.errors import InvalidInputError
from crossrank.retrieval import BM25Retriever, DenseRetriever, HybridRetriever, SearchHit

TEXTS = {
    "a": "vitamin d levels in blood",
    "b": "cancer risk of patients",
    "c": "gene expression in human cells",
    "d": "protein and dna in mice",
    "e": "blood cells and protein",
}


class Fixed:
    """A retriever that returns a fixed ranking and scores any document from a table."""

    def __init__(self, name: str, ranked: dict[str, float], table: dict[str, float]) -> None:
        self.model_name = name
        self.ranked = ranked
        self.table = table
        self.scored: list[list[str]] = []

    def __len__(self) -> int:
        return len(TEXTS)

    def search_batch(self, queries: Sequence[str], top_k: int = 10) -> list[list[SearchHit]]:
        row = [SearchHit(i, TEXTS[i], s) for i, s in self.ranked.items()][:top_k]
        return [row for _ in queries]

    def score_documents(self, query: str, ids: Sequence[str]) -> list[float]:
        self.scored.append(list(ids))
        return [self.table[i] for i in ids]


def fixed_pair() -> tuple[Any, Any]:
    dense = Fixed("dense", {"a": 0.9, "b": 0.8, "c": 0.5}, {"d": 0.1, "e": 0.2})
    bm25 = Fixed("bm25", {"c": 12.0, "d": 6.0, "a": 3.0}, {"b": 0.0, "e": 1.0})
    return dense, bm25


def test_rrf_merges_the_union_and_keeps_both_scores() -> None:
    dense, bm25 = fixed_pair()
    hits = HybridRetriever(dense, bm25, method="rrf").search("q", top_k=4)
    k = 60
    expected = {
        "a": 1 / (k + 1) + 1 / (k + 3),
        "b": 1 / (k + 2),
        "c": 1 / (k + 3) + 1 / (k + 1),
        "d": 1 / (k + 2),
    }
    # a and c tie; the tie keeps first-seen (dense) order, as do b and d
    assert [h.id for h in hits] == ["a", "c", "b", "d"]
    assert [h.score for h in hits] == pytest.approx([expected[h.id] for h in hits])
    assert hits[0].scores == {"dense": 0.9, "bm25": 3.0}
    assert hits[2].scores == {"dense": 0.8, "bm25": None}
    assert hits[3].scores == {"dense": None, "bm25": 6.0}
    assert hits[3].score_of("bm25") == 6.0
    assert all(h.text == TEXTS[h.id] for h in hits)
    assert dense.scored == bm25.scored == []  # nothing computed unless asked


def test_weighted_merge_by_hand_and_the_top_k_cut() -> None:
    dense, bm25 = fixed_pair()
    hits = HybridRetriever(dense, bm25, method="weighted", alpha=0.7).search("q", top_k=3)
    # minmax over what each retriever returned; a document it did not return adds 0
    dense_scaled = {"a": 1.0, "b": 0.75, "c": 0.0}
    bm25_scaled = {"c": 1.0, "d": (6 - 3) / 9, "a": 0.0}
    fused = {i: 0.7 * dense_scaled.get(i, 0.0) + 0.3 * bm25_scaled.get(i, 0.0) for i in "abcd"}
    best = sorted(fused, key=lambda i: -fused[i])[:3]
    assert [h.id for h in hits] == best
    assert [h.score for h in hits] == pytest.approx([fused[i] for i in best])


def test_complete_scores_fill_in_the_missing_retrievers_score() -> None:
    dense, bm25 = fixed_pair()
    hits = HybridRetriever(dense, bm25, complete_scores=True).search("q", top_k=4)
    by_id = {h.id: h.scores for h in hits}
    assert by_id["b"] == {"dense": 0.8, "bm25": 0.0}
    assert by_id["d"] == {"dense": 0.1, "bm25": 6.0}
    assert dense.scored == [["d"]]
    assert bm25.scored == [["b"]]


def test_invalid_options() -> None:
    dense, bm25 = fixed_pair()
    for options in ({"method": "max"}, {"alpha": 1.5}, {"rrf_k": -1}, {"depth": 0}):
        with pytest.raises(InvalidInputError):
            HybridRetriever(dense, bm25, **options)
    with pytest.raises(InvalidInputError, match="top_k"):
        HybridRetriever(dense, bm25).search("q", top_k=0)


@pytest.fixture(scope="module")
def real_pair(tiny_biencoder: Path) -> tuple[DenseRetriever, BM25Retriever]:
    dense = DenseRetriever(tiny_biencoder, device="cpu")
    bm25 = BM25Retriever()
    hybrid = HybridRetriever(dense, bm25)
    hybrid.add(list(TEXTS.values()), ids=list(TEXTS))
    return dense, bm25


def test_completed_scores_are_the_retrievers_own(
    real_pair: tuple[DenseRetriever, BM25Retriever],
) -> None:
    dense, bm25 = real_pair
    hybrid = HybridRetriever(dense, bm25, complete_scores=True)
    hits = hybrid.search("blood protein", top_k=5)
    assert sorted(h.id for h in hits) == sorted(TEXTS)
    dense_all = {h.id: h.score for h in dense.search("blood protein", top_k=5)}
    bm25_all = dict(zip(TEXTS, bm25.score_documents("blood protein", list(TEXTS)), strict=True))
    for hit in hits:
        assert hit.scores is not None
        assert hit.scores["dense"] == pytest.approx(dense_all[hit.id], abs=1e-5)
        assert hit.scores["bm25"] == pytest.approx(bm25_all[hit.id], abs=1e-6)


def test_the_80_20_cross_encoder_and_bm25_blend(
    real_pair: tuple[DenseRetriever, BM25Retriever], tiny_model: Path
) -> None:
    """The blend is the engine's weighted fusion with the BM25 scores as retrieval scores."""
    from crossrank import Reranker
    from crossrank.ranking import fuse

    dense, bm25 = real_pair
    hits = HybridRetriever(dense, bm25, complete_scores=True).search("blood protein", top_k=5)
    reranker = Reranker(tiny_model, device="cpu")
    texts = [h.text for h in hits]
    bm25_scores = [h.scores["bm25"] for h in hits if h.scores is not None]
    results = reranker.rerank(
        "blood protein", texts, retrieval_scores=bm25_scores, fusion="weighted", alpha=0.8
    )
    ce = reranker.score_pairs([("blood protein", t) for t in texts])
    lo, hi = min(ce), max(ce)
    blo, bhi = min(bm25_scores), max(bm25_scores)
    expected = [
        0.8 * (c - lo) / (hi - lo) + 0.2 * (b - blo) / (bhi - blo)
        for c, b in zip(ce, bm25_scores, strict=True)
    ]
    assert {r.index: r.score for r in results} == pytest.approx(dict(enumerate(expected)))
    assert expected == pytest.approx(fuse(ce, bm25_scores, "weighted", 0.8))
    assert [r.retrieval_score for r in sorted(results, key=lambda r: r.index)] == bm25_scores


def test_save_load_roundtrip(
    real_pair: tuple[DenseRetriever, BM25Retriever], tmp_path: Path, tiny_biencoder: Path
) -> None:
    dense, bm25 = real_pair
    hybrid = HybridRetriever(dense, bm25, method="weighted", alpha=0.3, depth=4)
    hybrid.save(tmp_path / "hybrid")
    loaded = HybridRetriever.load(tmp_path / "hybrid", tiny_biencoder, device="cpu")
    assert (loaded.method, loaded.alpha, loaded.depth) == ("weighted", 0.3, 4)
    assert loaded.search("cells", top_k=3) == hybrid.search("cells", top_k=3)


def test_the_names_are_exported_lazily() -> None:
    assert crossrank.BM25Retriever is BM25Retriever
    assert crossrank.HybridRetriever is HybridRetriever
    assert {"BM25Retriever", "HybridRetriever"} <= set(crossrank.__all__)


def test_fusing_with_dense_and_bm25_averages_both_scaled_scores() -> None:
    """``fuse_with="dense+bm25"``: the mean of min-max(dense) and min-max(BM25) per query."""
    from crossrank.evaluation.runner import fusion_scores

    dense, bm25 = fixed_pair()
    hits = HybridRetriever(dense, bm25, complete_scores=True).search("q", top_k=5)
    dense_s = [h.scores["dense"] for h in hits if h.scores is not None]
    bm25_s = [h.scores["bm25"] for h in hits if h.scores is not None]
    expected = [
        ((d - min(dense_s)) / (max(dense_s) - min(dense_s)) + (b - min(bm25_s)) / 12.0) / 2
        for d, b in zip(dense_s, bm25_s, strict=True)
    ]
    assert max(bm25_s) - min(bm25_s) == 12.0
    assert fusion_scores(hits, "dense+bm25") == pytest.approx(expected)
    assert fusion_scores([], "dense+bm25") == []
    # a hit missing one retriever's score cannot be fused with both: said, not guessed
    partial = HybridRetriever(dense, bm25).search("q", top_k=5)
    with pytest.raises(InvalidInputError, match="complete_scores=True"):
        fusion_scores(partial, "dense+bm25")


def test_evaluate_refuses_an_unknown_fuse_with(tiny_model: Path) -> None:
    from crossrank import Reranker
    from crossrank.evaluation import evaluate

    dense, bm25 = fixed_pair()
    with pytest.raises(InvalidInputError, match="'dense\\+bm25'"):
        evaluate(
            None,  # type: ignore[arg-type]
            HybridRetriever(dense, bm25),
            Reranker(tiny_model, device="cpu"),
            fuse_with="both",  # type: ignore[arg-type]
        )


def test_mean_minmax_checks_its_runs() -> None:
    from crossrank.ranking import mean_minmax

    assert mean_minmax([1.0, 3.0, 2.0], [10.0, 0.0, 5.0]) == pytest.approx([0.5, 0.5, 0.5])
    assert mean_minmax([2.0, 2.0]) == [1.0, 1.0]  # no information, no penalty
    assert mean_minmax([], []) == []
    import numpy as np

    numpy_scores = mean_minmax(np.array([1.0, 3.0, 2.0], dtype=np.float32), np.array([10, 0, 5]))
    assert numpy_scores == pytest.approx([0.5, 0.5, 0.5])
    assert all(type(s) is float for s in numpy_scores)
    with pytest.raises(InvalidInputError, match="same documents"):
        mean_minmax([1.0, 2.0], [1.0])
    with pytest.raises(InvalidInputError, match="at least one run"):
        mean_minmax()
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        mean_minmax([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(InvalidInputError, match="takes numbers"):
        mean_minmax([1.0, "high"])  # type: ignore[list-item]
