"""First-stage retrieval at scale: SciFact padded with WordNet glosses; flat vs. HNSW, and BM25.

Pads the SciFact corpus (5,183 abstracts) with up to 117,659 WordNet glosses from
``shared/data/distractors/wordnet_glosses.jsonl.gz`` (non-relevant by construction) and
reports, for a flat and an HNSW index: encoding throughput, index build time, index size,
process memory, per-query search latency and SciFact test NDCG@10 / Recall@100; and the same
for BM25 (bm25s: tokenizing, stemming and indexing time, peak memory the build allocated,
index size on disk).

The SciFact embeddings come from the cached index that ``crossrank eval`` and the tests use
(built on first use: minutes on 2 CPU cores); the glosses are encoded here and timed.

    python benchmarks/retrieval_scale.py --distractors 20000
    python benchmarks/retrieval_scale.py            # all 117,659 glosses (slow on CPU)
    python benchmarks/retrieval_scale.py --bm25-only  # BM25 alone: seconds, no encoding
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from crossrank.data import load_beir, load_corpus
from crossrank.evaluation import compute_metrics
from crossrank.evaluation.latency import percentile
from crossrank.paths import shared_data_dir
from crossrank.retrieval import BM25Retriever, DenseRetriever, cached_retriever


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distractors", type=int, default=None, help="glosses to add (all)")
    parser.add_argument("--model", default=None, help="bi-encoder (all-MiniLM-L6-v2)")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder")
    parser.add_argument("--top-k", type=int, default=100, help="search depth (100)")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--ef-search", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128, help="encoder batch size")
    parser.add_argument("--bm25-only", action="store_true", help="skip the dense indexes")
    return parser.parse_args()


def bm25_row(collection, glosses, top_k: int) -> tuple[list[str], dict[str, float]]:
    """Build BM25 over SciFact + glosses; time, traced peak memory, size, latency, quality.

    The index is built twice: once under ``tracemalloc`` for the peak memory the build
    allocates (tracing slows every allocation), then again untraced for the build time.
    """
    import gc
    import tracemalloc

    ids = list(collection.corpus) + [d.id for d in glosses]
    texts = [d.full_text for d in collection.corpus.values()] + [d.full_text for d in glosses]
    traced = BM25Retriever(show_progress=False)
    tracemalloc.start()
    traced.add(texts, ids=ids)
    traced.search("warm-up", top_k=1)  # tokenizes, stems and indexes everything
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del traced
    gc.collect()
    retriever = BM25Retriever(show_progress=False)
    started = time.perf_counter()
    retriever.add(texts, ids=ids)
    retriever.search("warm-up", top_k=1)
    build_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        retriever.save(tmp)
        index_bytes = sum(p.stat().st_size for p in (Path(tmp) / "index").rglob("*"))
    queries = collection.judged_queries()
    latencies, rankings = [], {}
    for query in queries:
        started = time.perf_counter()
        hits = retriever.search(query.text, top_k=top_k)
        latencies.append((time.perf_counter() - started) * 1000.0)
        rankings[query.id] = [h.id for h in hits]
    metrics = compute_metrics(
        {q.id: collection.qrels[q.id] for q in queries}, rankings, recall_k=top_k
    ).aggregate
    row = [
        "bm25",
        f"{len(retriever):,}",
        f"{build_seconds:.2f}",
        f"{index_bytes / 2**20:.1f}",
        f"{percentile(latencies, 50):.2f}",
        f"{percentile(latencies, 95):.2f}",
        f"{metrics['NDCG@10']:.4f}",
        f"{metrics[f'Recall@{top_k}']:.4f}",
    ]
    return row, {"peak_mib": peak / 2**20, "docs_per_s": len(texts) / build_seconds}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    args = parse_args()
    data = args.data or shared_data_dir()
    collection = load_beir(data / "scifact", "test")
    glosses = list(load_corpus(data / "distractors" / "wordnet_glosses.jsonl.gz").values())
    if args.distractors is not None:
        glosses = glosses[: args.distractors]
    if args.bm25_only:
        row, extra = bm25_row(collection, glosses, args.top_k)
        print_bm25(row, extra, len(glosses), args.top_k)
        return 0

    started = time.perf_counter()
    base, reused = cached_retriever(collection, args.model, batch_size=args.batch_size)
    scifact_seconds = time.perf_counter() - started
    scifact_vectors = base.embeddings()
    scifact_note = (
        "reused from the index cache"
        if reused
        else f"encoded in {scifact_seconds:.0f} s ({len(base) / scifact_seconds:.1f} docs/s)"
    )

    gloss_texts = [d.full_text for d in glosses]
    encoder = DenseRetriever(args.model, batch_size=args.batch_size, show_progress=True)
    started = time.perf_counter()
    gloss_vectors = (
        encoder.encode_documents(gloss_texts)
        if gloss_texts
        else np.zeros((0, scifact_vectors.shape[1]), dtype=np.float32)
    )
    encode_seconds = time.perf_counter() - started

    ids = base.ids + [d.id for d in glosses]
    texts = [collection.corpus[i].full_text for i in base.ids] + gloss_texts
    vectors = np.vstack([scifact_vectors, gloss_vectors])
    queries = collection.judged_queries()
    query_started = time.perf_counter()
    query_vectors = base.encode_queries([q.text for q in queries])
    query_ms = (time.perf_counter() - query_started) * 1000.0 / len(queries)

    rows = []
    for kind in ("flat", "hnsw"):
        retriever = DenseRetriever(
            args.model,
            index=kind,
            hnsw_m=args.hnsw_m,
            hnsw_ef_construction=args.ef_construction,
            hnsw_ef_search=args.ef_search,
        )
        started = time.perf_counter()
        retriever.add(texts, ids=ids, embeddings=vectors)
        build_seconds = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            retriever.save(tmp)
            index_mib = (Path(tmp) / "index.faiss").stat().st_size / 2**20
        latencies, rankings = [], {}
        for query, vector in zip(queries, query_vectors, strict=True):
            started = time.perf_counter()
            (hits,) = retriever.search_embeddings(vector[None, :], top_k=args.top_k)
            latencies.append((time.perf_counter() - started) * 1000.0)
            rankings[query.id] = [h.id for h in hits]
        metrics = compute_metrics(
            {q.id: collection.qrels[q.id] for q in queries}, rankings, recall_k=args.top_k
        ).aggregate
        rows.append(
            [
                kind,
                f"{len(retriever):,}",
                f"{build_seconds:.2f}",
                f"{index_mib:.1f}",
                f"{percentile(latencies, 50):.2f}",
                f"{percentile(latencies, 95):.2f}",
                f"{metrics['NDCG@10']:.4f}",
                f"{metrics[f'Recall@{args.top_k}']:.4f}",
            ]
        )
        del retriever
    bm25, bm25_extra = bm25_row(collection, glosses, args.top_k)
    rows.append(bm25)

    header = ["index", "docs", "build s", "index MiB", "search p50 ms", "search p95 ms"]
    header += ["NDCG@10", f"Recall@{args.top_k}"]
    print(f"model: {base.model_name}; SciFact test, {len(queries)} queries; top-{args.top_k}")
    print(f"SciFact corpus ({len(base):,} docs): {scifact_note}")
    if gloss_texts:
        rate = len(gloss_texts) / encode_seconds
        print(
            f"distractors: {len(gloss_texts):,} glosses encoded in {encode_seconds:.1f} s "
            f"({rate:.0f} docs/s, batch {args.batch_size})"
        )
    print(f"query encoding: {query_ms:.1f} ms/query (batched); search latency excludes it")
    print(
        f"HNSW: M={args.hnsw_m}, efConstruction={args.ef_construction}, efSearch="
        f"{max(args.ef_search, args.top_k)}; peak RSS {peak_rss_mib():,.0f} MiB"
    )
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"BM25 build: {bm25_extra['docs_per_s']:,.0f} docs/s, peak traced allocation "
        f"{bm25_extra['peak_mib']:,.0f} MiB"
    )
    return 0


def print_bm25(row: list[str], extra: dict[str, float], n_glosses: int, top_k: int) -> None:
    header = ["index", "docs", "build s", "index MiB", "search p50 ms", "search p95 ms"]
    header += ["NDCG@10", f"Recall@{top_k}"]
    print(
        f"BM25 (bm25s, Lucene k1=1.2 b=0.75, English stop words + Snowball stemming) over "
        f"SciFact + {n_glosses:,} glosses; SciFact test queries; top-{top_k}"
    )
    print(
        f"build (tokenize + stem + index, untraced): {extra['docs_per_s']:,.0f} docs/s; peak "
        f"memory allocated while building {extra['peak_mib']:,.0f} MiB (a separate, "
        f"traced build); peak RSS "
        f"{peak_rss_mib():,.0f} MiB"
    )
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    sys.exit(main())
