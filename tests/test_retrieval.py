from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossrank.data import Collection, Document, Query, load_beir
from crossrank.errors import (
    DataError,
    IncompatibleIndexError,
    InvalidInputError,
    MissingExtraError,
    ModelNotFoundError,
)
from crossrank.retrieval import (
    DenseRetriever,
    IndexConfig,
    SearchHit,
    cached_retriever,
    index_cache_dir,
    model_identity,
    resolve_biencoder,
)

TEXTS = [
    "vitamin d levels in blood",
    "cancer risk of patients",
    "gene expression in human cells",
    "protein and dna in mice",
    "treatment effects on disease",
    "rna levels were higher",
    "blood cells and protein",
    "studies of cancer in mice",
]


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top(docs: np.ndarray, queries: np.ndarray, k: int) -> list[list[int]]:
    sims = queries @ docs.T
    return [list(np.argsort(-row, kind="stable")[:k]) for row in sims]


@pytest.fixture(scope="module")
def st_model(tiny_biencoder: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_biencoder), device="cpu")


@pytest.fixture(scope="module")
def other_biencoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crossrank.testing import build_tiny_biencoder

    return build_tiny_biencoder(tmp_path_factory.mktemp("tiny-bi-other"), seed=1)


# -- encoding path (real tiny model) -----------------------------------------------------------
def test_flat_search_matches_brute_force_on_model_embeddings(
    tiny_biencoder: Path, st_model: Any
) -> None:
    retriever = DenseRetriever(tiny_biencoder, device="cpu")
    retriever.add(TEXTS, ids=[f"d{i}" for i in range(len(TEXTS))])
    query = "cancer in mice"
    hits = retriever.search(query, top_k=5)

    docs = st_model.encode(TEXTS, normalize_embeddings=True)
    q = st_model.encode([query], normalize_embeddings=True)[0]
    expected = sorted(((float(q @ d), f"d{i}") for i, d in enumerate(docs)), reverse=True)[:5]
    assert len(hits) == 5
    assert all(isinstance(h, SearchHit) and isinstance(h.score, float) for h in hits)
    assert [h.score for h in hits] == pytest.approx([s for s, _ in expected], abs=1e-5)
    assert [h.text for h in hits] == [TEXTS[int(h.id[1:])] for h in hits]
    # random tiny weights make near-ties: check each hit's own score instead of the id set
    assert [h.score for h in hits] == pytest.approx(
        [float(q @ docs[int(h.id[1:])]) for h in hits], abs=1e-5
    )
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_batch_equals_single_searches(tiny_biencoder: Path) -> None:
    retriever = DenseRetriever(tiny_biencoder, device="cpu")
    retriever.add(TEXTS)
    queries = ["blood", "gene expression", "cancer patients"]
    batch = retriever.search_batch(queries, top_k=3)
    assert len(batch) == 3
    for query, hits in zip(queries, batch, strict=True):
        single = retriever.search(query, top_k=3)
        assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-5)
    assert retriever.search_batch([], top_k=3) == []


def test_default_ids_and_add_documents_later(tiny_biencoder: Path) -> None:
    retriever = DenseRetriever(tiny_biencoder, device="cpu")
    retriever.add(TEXTS[:4])
    assert retriever.ids == ["0", "1", "2", "3"]
    retriever.add(TEXTS[4:6])
    assert retriever.ids == ["0", "1", "2", "3", "4", "5"]
    retriever.add_documents([Document(id="late", title="rna", text="levels were higher")])
    assert len(retriever) == 7
    hits = retriever.search("rna levels were higher", top_k=7)
    assert {h.id for h in hits} == {"0", "1", "2", "3", "4", "5", "late"}
    late = next(h for h in hits if h.id == "late")
    assert late.text == "rna levels were higher"
    with pytest.raises(InvalidInputError, match="already in the index"):
        retriever.add(["again"], ids=["late"])


def test_top_k_larger_than_corpus_and_empty_retriever(tiny_biencoder: Path) -> None:
    retriever = DenseRetriever(tiny_biencoder, device="cpu")
    assert retriever.search("anything", top_k=5) == []
    assert retriever.dimension is None
    retriever.add(TEXTS[:3])
    assert len(retriever.search("cells", top_k=50)) == 3
    assert retriever.dimension == 32


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda r: r.add("one string"), "list of strings"),
        (lambda r: r.add(["a", 3]), r"texts\[1\]"),
        (lambda r: r.add(["a", "b"], ids=["x"]), "one id per text"),
        (lambda r: r.add(["a", "b"], ids=["x", "x"]), "unique"),
        (lambda r: r.search("q", top_k=0), "top_k"),
        (lambda r: r.search(["q"]), "query must be a string"),
        (lambda r: r.add(["a"], embeddings=np.zeros((2, 4))), "shape"),
        (lambda r: r.add(["a"], embeddings=np.full((1, 4), np.nan)), "NaN"),
    ],
)
def test_invalid_input(tiny_biencoder: Path, call: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        call(DenseRetriever(tiny_biencoder, device="cpu"))


def test_invalid_options(tiny_biencoder: Path) -> None:
    with pytest.raises(InvalidInputError, match="index must be one of"):
        DenseRetriever(tiny_biencoder, index="annoy")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="metric"):
        DenseRetriever(tiny_biencoder, metric="cosine")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="hnsw_m"):
        DenseRetriever(tiny_biencoder, index="hnsw", hnsw_m=0)
    with pytest.raises(InvalidInputError, match="batch_size"):
        DenseRetriever(tiny_biencoder, batch_size=0)


# -- index kinds (hand-made vectors, no encoding) -----------------------------------------------
@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray]:
    return unit_vectors(400, 16, seed=0), unit_vectors(20, 16, seed=1)


def build(kind: str, model: Path, docs: np.ndarray, **options: Any) -> DenseRetriever:
    retriever = DenseRetriever(model, index=kind, **options)  # type: ignore[arg-type]
    retriever.add([f"text {i}" for i in range(len(docs))], embeddings=docs)
    return retriever


def test_flat_index_is_exact(tiny_biencoder: Path, vectors: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = vectors
    retriever = build("flat", tiny_biencoder, docs)
    results = retriever.search_embeddings(queries, top_k=10)
    for hits, expected, q in zip(results, exact_top(docs, queries, 10), queries, strict=True):
        assert [int(h.id) for h in hits] == expected
        assert [h.score for h in hits] == pytest.approx(
            [float(docs[i] @ q) for i in expected], abs=1e-5
        )


def test_hnsw_index_finds_the_exact_neighbours(
    tiny_biencoder: Path, vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    docs, queries = vectors
    retriever = build("hnsw", tiny_biencoder, docs, hnsw_m=16, hnsw_ef_search=64)
    assert retriever.config.kind == "hnsw"
    results = retriever.search_embeddings(queries, top_k=10)
    found = sum(
        len({int(h.id) for h in hits} & set(expected))
        for hits, expected in zip(results, exact_top(docs, queries, 10), strict=True)
    )
    assert found / (10 * len(queries)) >= 0.95


def test_ivf_index_with_all_lists_probed_is_exact(
    tiny_biencoder: Path, vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    docs, queries = vectors
    retriever = build("ivf", tiny_biencoder, docs, ivf_nlist=8, ivf_nprobe=8)
    results = retriever.search_embeddings(queries, top_k=10)
    for hits, expected in zip(results, exact_top(docs, queries, 10), strict=True):
        assert [int(h.id) for h in hits] == expected


def test_ivf_default_nlist_and_few_probes(
    tiny_biencoder: Path, vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    docs, queries = vectors
    assert IndexConfig(kind="ivf").nlist_for(400) == 80
    retriever = build("ivf", tiny_biencoder, docs, ivf_nprobe=1)
    hits = retriever.search_embeddings(queries[:1], top_k=5)[0]
    assert 1 <= len(hits) <= 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    with pytest.raises(InvalidInputError, match="ivf_nlist=50 needs at least"):
        build("ivf", tiny_biencoder, docs[:10], ivf_nlist=50)


def test_ivf_add_later_uses_the_trained_lists(
    tiny_biencoder: Path, vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    docs, queries = vectors
    retriever = DenseRetriever(tiny_biencoder, index="ivf", ivf_nlist=8, ivf_nprobe=8)
    retriever.add([f"t{i}" for i in range(300)], embeddings=docs[:300])
    retriever.add(
        [f"t{i}" for i in range(300, 400)],
        ids=[str(i) for i in range(300, 400)],
        embeddings=docs[300:],
    )
    assert len(retriever) == 400
    results = retriever.search_embeddings(queries, top_k=10)
    for hits, expected in zip(results, exact_top(docs, queries, 10), strict=True):
        assert [int(h.id) for h in hits] == expected


def test_l2_metric_scores_are_negated_squared_distances(
    tiny_biencoder: Path, vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    docs, queries = vectors
    retriever = build("flat", tiny_biencoder, docs, metric="l2")
    hits = retriever.search_embeddings(queries[:1], top_k=5)[0]
    expected = exact_top(docs, queries[:1], 5)[0]  # unit vectors: same order as inner product
    assert [int(h.id) for h in hits] == expected
    assert [h.score for h in hits] == pytest.approx(
        [-float(np.sum((docs[i] - queries[0]) ** 2)) for i in expected], abs=1e-4
    )


def test_given_embeddings_are_normalised(tiny_biencoder: Path) -> None:
    raw = unit_vectors(5, 8, seed=3) * np.arange(1, 6, dtype=np.float32)[:, None]
    retriever = build("flat", tiny_biencoder, raw)
    assert np.linalg.norm(retriever.embeddings(), axis=1) == pytest.approx(np.ones(5), abs=1e-5)
    kept = build("flat", tiny_biencoder, raw, normalize=False)
    assert np.linalg.norm(kept.embeddings(), axis=1) == pytest.approx(np.arange(1, 6), abs=1e-4)
    assert raw[4] @ raw[4] == pytest.approx(25.0, abs=1e-3)  # the caller's array is untouched


# -- persistence ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_roundtrip(
    tiny_biencoder: Path, vectors: tuple[np.ndarray, np.ndarray], tmp_path: Path, kind: str
) -> None:
    docs, queries = vectors
    options = {"ivf_nlist": 8, "ivf_nprobe": 4} if kind == "ivf" else {}
    retriever = build(kind, tiny_biencoder, docs, **options)
    retriever.save(tmp_path / "idx")
    loaded = DenseRetriever.load(tmp_path / "idx")
    assert loaded.config == retriever.config
    assert loaded.ids == retriever.ids
    assert loaded.identity == retriever.identity
    assert len(loaded) == 400
    assert loaded.search_embeddings(queries, top_k=7) == retriever.search_embeddings(
        queries, top_k=7
    )


def test_roundtrip_with_encoding_and_adding_after_load(
    tiny_biencoder: Path, tmp_path: Path
) -> None:
    retriever = DenseRetriever(tiny_biencoder, device="cpu")
    retriever.add(TEXTS[:5], ids=["a", "b", "c", "d", "e"])
    before = retriever.search_batch(["blood cells", "cancer"], top_k=3)
    retriever.save(tmp_path / "idx")
    loaded = DenseRetriever.load(tmp_path / "idx", device="cpu")
    after = loaded.search_batch(["blood cells", "cancer"], top_k=3)
    assert after == before
    loaded.add(TEXTS[5:], ids=["f", "g", "h"])
    assert {h.id for h in loaded.search("rna levels", top_k=8)} == set("abcdefgh")
    with pytest.raises(InvalidInputError):
        loaded.add(["dup"], ids=["a"])


def test_empty_retriever_roundtrip(tiny_biencoder: Path, tmp_path: Path) -> None:
    DenseRetriever(tiny_biencoder).save(tmp_path / "empty")
    loaded = DenseRetriever.load(tmp_path / "empty")
    assert len(loaded) == 0
    assert loaded.search("q") == []


def test_load_refuses_a_different_model(
    tiny_biencoder: Path, other_biencoder: Path, tmp_path: Path
) -> None:
    build("flat", tiny_biencoder, unit_vectors(10, 32, seed=0)).save(tmp_path / "idx")
    with pytest.raises(IncompatibleIndexError, match="built with embedding model") as info:
        DenseRetriever.load(tmp_path / "idx", other_biencoder)
    assert isinstance(info.value, ValueError)


def test_load_accepts_the_same_model_in_another_folder(
    tiny_biencoder: Path, tmp_path: Path
) -> None:
    build("flat", tiny_biencoder, unit_vectors(10, 32, seed=0)).save(tmp_path / "idx")
    copy = Path(shutil.copytree(tiny_biencoder, tmp_path / "copy-of-model"))
    loaded = DenseRetriever.load(tmp_path / "idx", copy)
    assert loaded.identity.fingerprint == model_identity(tiny_biencoder).fingerprint
    shutil.rmtree(copy)


def test_load_when_the_model_folder_is_gone(tiny_biencoder: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_biencoder, tmp_path / "gone"))
    build("flat", copy, unit_vectors(4, 32, seed=0)).save(tmp_path / "idx")
    shutil.rmtree(copy)
    with pytest.raises(ModelNotFoundError, match="no longer exists"):
        DenseRetriever.load(tmp_path / "idx")
    assert len(DenseRetriever.load(tmp_path / "idx", tiny_biencoder)) == 4


def test_load_errors_for_missing_or_broken_folders(tiny_biencoder: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not hold a saved DenseRetriever"):
        DenseRetriever.load(tmp_path / "nothing")
    build("flat", tiny_biencoder, unit_vectors(4, 32, seed=0)).save(tmp_path / "idx")
    with (tmp_path / "idx" / "documents.jsonl").open("a") as handle:
        handle.write('{"id": "extra", "text": "x"}\n')
    with pytest.raises(DataError, match="inconsistent"):
        DenseRetriever.load(tmp_path / "idx")


def test_dimension_mismatch_with_the_model_is_refused(tiny_biencoder: Path) -> None:
    retriever = build("flat", tiny_biencoder, unit_vectors(4, 8, seed=0))
    with pytest.raises(IncompatibleIndexError, match="32-dimensional"):
        retriever.search("blood")


# -- model identity and resolution --------------------------------------------------------------
def test_minilm_aliases_resolve_offline(minilm_path: Path) -> None:
    for name in (None, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert Path(resolve_biencoder(name)) == minilm_path
    identity = model_identity(None)
    assert identity.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert identity.fingerprint == model_identity(minilm_path).fingerprint
    assert model_identity("someone/else").fingerprint == "hub:someone/else"


def test_fingerprint_differs_between_models(tiny_biencoder: Path, other_biencoder: Path) -> None:
    assert model_identity(tiny_biencoder).fingerprint != model_identity(other_biencoder).fingerprint


def test_missing_faiss_names_the_extra(
    tiny_biencoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)
    retriever = DenseRetriever(tiny_biencoder)
    with pytest.raises(MissingExtraError, match=r'pip install "crossrank\[faiss\]"'):
        retriever.add(["a"], embeddings=np.ones((1, 4)))


def test_importing_retrieval_loads_neither_faiss_nor_torch() -> None:
    code = (
        "import sys, crossrank, crossrank.retrieval, crossrank.data, crossrank.evaluation; "
        "print(sorted(m for m in ('faiss', 'torch', 'sentence_transformers', 'ir_measures', "
        "'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the index cache -----------------------------------------------------------------------------
def tiny_collection(root: Path) -> Collection:
    corpus_file = root / "corpus.jsonl"
    root.mkdir(parents=True, exist_ok=True)
    corpus_file.write_text("placeholder\n")
    return Collection(
        name="tiny",
        path=root,
        split="test",
        corpus={f"d{i}": Document(id=f"d{i}", text=t) for i, t in enumerate(TEXTS)},
        queries={"q": Query(id="q", text="blood")},
        qrels={"q": {"d0": 1}},
        corpus_file=corpus_file,
    )


def test_cached_retriever_reuses_the_saved_index(tiny_biencoder: Path, tmp_path: Path) -> None:
    col = tiny_collection(tmp_path / "col")
    first, reused_first = cached_retriever(col, tiny_biencoder, cache_root=tmp_path / "cache")
    second, reused_second = cached_retriever(col, tiny_biencoder, cache_root=tmp_path / "cache")
    assert (reused_first, reused_second) == (False, True)
    folder = index_cache_dir(col, first.identity, first.config, cache_root=tmp_path / "cache")
    assert folder.parent == tmp_path / "cache" / "indexes"
    assert (folder / "retriever.json").is_file()
    assert second.ids == first.ids
    assert second.search("blood", top_k=3) == first.search("blood", top_k=3)


def test_cache_key_covers_model_index_and_corpus(
    tiny_biencoder: Path, other_biencoder: Path, tmp_path: Path
) -> None:
    col = tiny_collection(tmp_path / "col")
    tiny, other = model_identity(tiny_biencoder), model_identity(other_biencoder)
    key = index_cache_dir(col, tiny, IndexConfig(), cache_root=tmp_path)
    assert index_cache_dir(col, tiny, IndexConfig(), cache_root=tmp_path) == key
    assert index_cache_dir(col, other, IndexConfig(), cache_root=tmp_path) != key
    assert index_cache_dir(col, tiny, IndexConfig(kind="hnsw"), cache_root=tmp_path) != key
    assert col.corpus_file is not None
    col.corpus_file.write_text("changed, longer content\n")
    assert index_cache_dir(col, tiny, IndexConfig(), cache_root=tmp_path) != key


def test_cache_root_defaults_to_crossrank_cache(
    tiny_biencoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path / "env-cache"))
    col = tiny_collection(tmp_path / "col")
    folder = index_cache_dir(col, model_identity(tiny_biencoder), IndexConfig())
    assert folder.parent == tmp_path / "env-cache" / "indexes"


# -- real model, real collection ------------------------------------------------------------------
@pytest.mark.slow
def test_scifact_dense_ndcg_matches_the_published_number(shared_data: Path) -> None:
    """all-MiniLM-L6-v2 + flat inner product on SciFact test: NDCG@10 = 0.645 ± 0.01.

    Encoding the 5,183 abstracts takes minutes on 2 CPU cores, so the index is cached under
    ``$CROSSRANK_CACHE/indexes`` (the CLI test reuses it) and built at most once.
    """
    import ir_measures

    from crossrank.evaluation import compute_metrics

    collection = load_beir(shared_data / "scifact", "test")
    retriever, _ = cached_retriever(collection)
    assert len(retriever) == 5183
    queries = collection.judged_queries()
    hits = retriever.search_batch([q.text for q in queries], top_k=100)
    rankings = {q.id: [h.id for h in row] for q, row in zip(queries, hits, strict=True)}
    metrics = compute_metrics(collection.qrels, rankings, recall_k=100).aggregate
    assert metrics["NDCG@10"] == pytest.approx(0.645, abs=0.01)
    run = {q.id: {h.id: h.score for h in row} for q, row in zip(queries, hits, strict=True)}
    reference = ir_measures.calc_aggregate([ir_measures.nDCG @ 10], collection.qrels, run)
    assert metrics["NDCG@10"] == pytest.approx(reference[ir_measures.nDCG @ 10], abs=1e-4)
