"""BM25Retriever: scores against the formula by hand, the DenseRetriever interface, SciFact."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from crossrank.data import load_beir
from crossrank.errors import DataError, InvalidInputError, MissingExtraError
from crossrank.retrieval import BM25Retriever, SearchHit

DOCS = {
    "a": "the cat sat on the mat",
    "b": "the dog chased the cat around the cat tree",
    "c": "birds sing in the morning",
    "d": "a dog and a cat and a bird",
}


def lucene_bm25(query: str, docs: dict[str, str], k1: float = 1.2, b: float = 0.75) -> dict:
    """Lucene's BM25 (8.0 on, which drops the constant (k1 + 1) factor), by hand:
    idf = ln(1 + (N - df + .5) / (df + .5)), tf part = tf / (tf + k1 (1 - b + b dl/avgdl))."""
    tokens = {i: [w for w in t.split() if len(w) > 1] for i, t in docs.items()}
    n = len(docs)
    avgdl = sum(len(t) for t in tokens.values()) / n
    scores = {}
    for doc_id, words in tokens.items():
        total = 0.0
        for term in set(query.split()):
            tf = words.count(term)
            if not tf:
                continue
            df = sum(term in t for t in tokens.values())
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            total += idf * tf / (tf + k1 * (1 - b + b * len(words) / avgdl))
        scores[doc_id] = total
    return scores


def plain() -> BM25Retriever:
    retriever = BM25Retriever(stemmer=None, stopwords=None)
    retriever.add(list(DOCS.values()), ids=list(DOCS))
    return retriever


@pytest.mark.parametrize("query", ["cat", "dog cat", "bird morning", "cat tree"])
def test_scores_equal_lucene_bm25_by_hand(query: str) -> None:
    expected = lucene_bm25(query, DOCS)
    hits = plain().search(query, top_k=4)
    assert all(isinstance(h, SearchHit) and isinstance(h.score, float) for h in hits)
    got = {h.id: h.score for h in hits}
    assert got == pytest.approx({i: s for i, s in expected.items() if s > 0}, rel=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert [h.text for h in hits] == [DOCS[h.id] for h in hits]


def test_score_documents_matches_search_and_gives_zero_without_shared_terms() -> None:
    retriever = plain()
    hits = {h.id: h.score for h in retriever.search("dog cat", top_k=4)}
    scores = retriever.score_documents("dog cat", ["c", "b", "a"])
    assert scores == pytest.approx([0.0, hits["b"], hits["a"]])
    with pytest.raises(InvalidInputError, match="not in the index"):
        retriever.score_documents("dog", ["zz"])


def test_only_matching_documents_are_returned_and_top_k_cuts() -> None:
    retriever = plain()
    assert [h.id for h in retriever.search("morning", top_k=10)] == ["c"]
    assert retriever.search("unicorn", top_k=10) == []
    assert len(retriever.search("the", top_k=2)) == 2


def test_stemming_and_stop_words() -> None:
    stemmed = BM25Retriever()
    stemmed.add(["running dogs", "the runner"], ids=["x", "y"])
    assert [h.id for h in stemmed.search("dog runs", top_k=2)] == ["x"]
    assert stemmed.search("the", top_k=2) == []  # a stop word only
    assert stemmed.tokenize(["The running dogs"]) == [["run", "dog"]]


def test_interface_like_the_dense_retriever() -> None:
    retriever = BM25Retriever(stemmer=None)
    assert len(retriever) == 0
    assert retriever.search("cat", top_k=3) == []
    retriever.add(["cat one", "dog two"])
    assert retriever.ids == ["0", "1"]
    assert [h.id for h in retriever.search("cat", top_k=3)] == ["0"]
    retriever.add(["cat three"])  # re-indexed at the next search: the idf changes
    assert sorted(h.id for h in retriever.search("cat", top_k=3)) == ["0", "2"]
    assert retriever.search_batch(["cat", "dog"], top_k=1) == [
        retriever.search("cat", top_k=1),
        retriever.search("dog", top_k=1),
    ]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda r: r.add(["x"], ids=["1"]) or r.add(["y"], ids=["1"]), "already in the index"),
        (lambda r: r.add(["x", "y"], ids=["1", "1"]), "unique"),
        (lambda r: r.add(["x"], ids=["1", "2"]), "one id per text"),
        (lambda r: r.add("text"), "list of strings"),
        (lambda r: r.search("x", top_k=0), "top_k"),
        (lambda r: r.search(3), "string"),
    ],
)
def test_invalid_input(call: object, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        call(BM25Retriever())  # type: ignore[operator]


@pytest.mark.parametrize(
    "options",
    [{"method": "tfidf"}, {"k1": -1.0}, {"b": 1.5}, {"stemmer": "klingon"}],
)
def test_invalid_settings(options: dict) -> None:
    def build_and_search() -> None:
        retriever = BM25Retriever(**options)
        retriever.add(["x y"])
        retriever.search("x")

    with pytest.raises(InvalidInputError):
        build_and_search()


def test_save_load_roundtrip(tmp_path: Path) -> None:
    retriever = plain()
    retriever.save(tmp_path / "bm25")
    loaded = BM25Retriever.load(tmp_path / "bm25")
    assert loaded.config == retriever.config
    assert loaded.ids == retriever.ids
    assert loaded.search("dog cat", top_k=4) == retriever.search("dog cat", top_k=4)
    empty = BM25Retriever()
    empty.save(tmp_path / "empty")
    assert len(BM25Retriever.load(tmp_path / "empty")) == 0


def test_load_refuses_missing_or_damaged_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="readable BM25 index"):
        BM25Retriever.load(tmp_path / "nothing")
    plain().save(tmp_path / "bm25")
    (tmp_path / "bm25" / "documents.jsonl").write_text('{"id": "a", "text": "x"}\n')
    with pytest.raises(DataError, match="inconsistent"):
        BM25Retriever.load(tmp_path / "bm25")


def test_missing_bm25s_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bm25s", None)
    retriever = BM25Retriever()
    retriever.add(["x y"])
    with pytest.raises(MissingExtraError, match=r'pip install "crossrank\[bm25\]"'):
        retriever.search("x")


def test_importing_crossrank_does_not_load_bm25s() -> None:
    code = "import sys, crossrank, crossrank.retrieval; print('bm25s' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_scifact_bm25_ndcg_is_the_published_beir_figure(shared_data: Path) -> None:
    """BEIR's BM25 (Elasticsearch, title + text) on SciFact test: NDCG@10 = 0.665; ours with
    Lucene's defaults (k1=1.2, b=0.75), English stop words and Snowball stemming is within
    0.02 of it."""
    from crossrank.evaluation import compute_metrics

    collection = load_beir(shared_data / "scifact", "test")
    retriever = BM25Retriever()
    retriever.add_documents(collection.corpus.values())
    queries = collection.judged_queries()
    hits = retriever.search_batch([q.text for q in queries], top_k=100)
    rankings = {q.id: [h.id for h in row] for q, row in zip(queries, hits, strict=True)}
    metrics = compute_metrics(collection.qrels, rankings, recall_k=100).aggregate
    assert metrics["NDCG@10"] == pytest.approx(0.665, abs=0.02)
