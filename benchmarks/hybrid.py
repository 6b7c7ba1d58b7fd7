"""Dense vs. BM25 vs. hybrid first stages, each alone, reranked and fused, on real collections.

For each collection the judged queries retrieve their top-k (50) with all-MiniLM-L6-v2 +
FAISS (dense), bm25s (BM25: Lucene k1=1.2, b=0.75, English stop words and stemming, title +
text) and their reciprocal-rank fusion (hybrid). The cross-encoder scores every candidate of
every first stage once (the union of the pairs); each first stage is then reported alone,
reranked (all top-k by the cross-encoder) and fused (``alpha`` * minmax(cross-encoder) +
(1 - alpha) * minmax(first-stage score)); the hybrid is also fused with its BM25 score alone
(the 80/20 cross-encoder + BM25 blend), with its dense score alone, and with both
(``--both-alpha`` * minmax(cross-encoder) + (1 - ``--both-alpha``) * minmax of the mean of
minmax(dense) and minmax(BM25): the pipeline docs/hybrid.md recommends; its weight is read off
the sweep table this prints, which shows how much the choice matters). NDCG@10, MRR@10, Hit@1
and Recall@k through ir-measures; the reranked and fused runs hold the same documents as
their first stage, so their Recall@k is the first stage's.

    python benchmarks/hybrid.py                          # SciFact test + NFCorpus dev
    python benchmarks/hybrid.py --backend onnx-int8 --out reports/hybrid.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import write_json_atomically
from tqdm.auto import tqdm

from crossrank.data import load_beir
from crossrank.engine.reranker import Reranker
from crossrank.evaluation import compute_metrics
from crossrank.evaluation.runner import fusion_scores
from crossrank.fingerprint import fingerprint_folder
from crossrank.paths import cache_dir, shared_data_dir, shared_starter_dir
from crossrank.ranking import fuse
from crossrank.retrieval import HybridRetriever, SearchHit, cached_bm25, cached_retriever
from crossrank.types import BACKENDS, FuseWith

METRICS = ["NDCG@10", "MRR@10", "Hit@1"]
#: The hybrid's scores the cross-encoder is fused with: label -> ``fuse_with``.
BLENDS: dict[str, FuseWith] = {
    "RRF score": "first-stage",
    "BM25": "bm25",
    "dense": "dense",
    "dense+BM25": "dense+bm25",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--collections", nargs="+", default=["scifact:test", "nfcorpus:dev"], help="name:split"
    )
    parser.add_argument("--top-k", type=int, default=50, help="candidates per first stage (50)")
    parser.add_argument("--alpha", type=float, default=0.8, help="cross-encoder weight (0.8)")
    parser.add_argument(
        "--both-alpha",
        type=float,
        default=0.2,
        help="cross-encoder weight when fused with dense+BM25 (0.2)",
    )
    parser.add_argument(
        "--reranker",
        default=os.environ.get("CROSSRANK_RERANKER", str(shared_starter_dir())),
        help="cross-encoder folder (the shared starter)",
    )
    parser.add_argument("--max-length", type=int, default=160, help="tokens per pair (160)")
    parser.add_argument("--backend", default="torch", choices=BACKENDS)
    parser.add_argument("--max-queries", type=int, default=None, help="first N judged queries")
    parser.add_argument(
        "--rerank-head",
        type=int,
        default=10,
        help="also report reranking only the first N of each first stage (10; 0: skip)",
    )
    parser.add_argument(
        "--sweep",
        type=float,
        nargs="*",
        default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8],
        help="cross-encoder weights of the fusion sensitivity table (0: first-stage score alone)",
    )
    parser.add_argument("--out", type=Path, default=None, help="save all numbers as JSON")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help=(
            "stop reranking after this long; the reranked and fused runs are then reported on "
            "the queries whose pairs were all scored (the hybrid's pairs are scored first)"
        ),
    )
    return parser.parse_args()


def ce_scores(
    reranker: Reranker, args: argparse.Namespace, name: str, pairs: list[tuple[str, str, str, str]]
) -> dict[tuple[str, str], float]:
    """Cross-encoder score of each (query id, doc id) pair, cached on disk between runs."""
    key = hashlib.sha256(
        json.dumps(
            [fingerprint_folder(args.reranker), args.max_length, args.backend, name]
        ).encode()
    ).hexdigest()[:16]
    file = cache_dir() / "benchmarks" / f"hybrid-{name.replace(':', '-')}-{key}.json"
    known: dict[str, float] = {}
    if file.is_file():
        try:
            known = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            print(f"{file} is damaged; scoring its pairs again")
    todo = [p for p in pairs if f"{p[0]}\t{p[1]}" not in known]
    chunk = 512
    started = time.perf_counter()
    for start in tqdm(range(0, len(todo), chunk), desc=f"reranking {name}", unit="chunk"):
        if (
            args.budget_minutes is not None
            and time.perf_counter() - started > 60 * args.budget_minutes
        ):
            print(f"{name}: time budget spent; {len(todo) - start:,} pairs left unscored")
            todo = todo[:start]
            break
        part = todo[start : start + chunk]
        scores = reranker.score_pairs([(query, text) for _, _, query, text in part])
        known.update({f"{qid}\t{did}": s for (qid, did, _, _), s in zip(part, scores)})
        write_json_atomically(file, known)
    seconds = time.perf_counter() - started
    if todo:
        print(
            f"{name}: {len(todo):,} pairs scored in {seconds:.0f} s "
            f"({len(todo) / seconds:.1f} pairs/s)",
            flush=True,
        )
    return {tuple(k.split("\t", 1)): v for k, v in known.items()}  # type: ignore[misc]


def ranked(ids: Sequence[str], scores: Sequence[float]) -> list[str]:
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], i))
    return [ids[i] for i in order]


def fused_run(
    queries: Sequence[Any],
    rows: Sequence[Sequence[SearchHit]],
    ce: dict[tuple[str, str], float],
    fuse_with: FuseWith,
    alpha: float,
) -> dict[str, list[str]]:
    """Each query's candidates by ``alpha`` * minmax(cross-encoder) + (1 - ``alpha``) *
    minmax(the ``fuse_with`` first-stage score)."""
    rankings: dict[str, list[str]] = {}
    for q, row in zip(queries, rows):
        ids = [h.id for h in row]
        cross = [ce[(q.id, i)] for i in ids]
        rankings[q.id] = ranked(ids, fuse(cross, fusion_scores(row, fuse_with), "weighted", alpha))
    return rankings


def fusion_sweep(
    args: argparse.Namespace,
    queries: Sequence[Any],
    rows: Sequence[Sequence[SearchHit]],
    ce: dict[tuple[str, str], float],
    qrels: dict[str, dict[str, int]],
) -> dict[str, dict[str, float]]:
    """NDCG@10 of the hybrid fused with each first-stage score at each weight in --sweep."""
    return {
        label: {
            f"{alpha:g}": compute_metrics(
                qrels, fused_run(queries, rows, ce, part, alpha), recall_k=args.top_k
            ).aggregate["NDCG@10"]
            for alpha in args.sweep
        }
        for label, part in BLENDS.items()
    }


def main() -> int:
    args = parse_args()
    reranker = Reranker(args.reranker, max_length=args.max_length, backend=args.backend)
    print(
        f"reranker: {args.reranker} ({reranker!r}), max_length {args.max_length}, "
        f"backend {args.backend}; alpha {args.alpha}; top-{args.top_k}",
        flush=True,
    )
    results: dict[str, dict[str, dict[str, float]]] = {}
    for spec in args.collections:
        name, split = spec.split(":")
        collection = load_beir(shared_data_dir() / name, split)
        queries = collection.judged_queries(args.max_queries)
        texts = [q.text for q in queries]
        dense, _ = cached_retriever(collection, show_progress=True)
        bm25, _ = cached_bm25(collection, show_progress=True)
        hybrid = HybridRetriever(dense, bm25, method="rrf", complete_scores=True)
        stages: dict[str, list[list[SearchHit]]] = {
            "dense": dense.search_batch(texts, top_k=args.top_k),
            "bm25": bm25.search_batch(texts, top_k=args.top_k),
            "hybrid": hybrid.search_batch(texts, top_k=args.top_k),
        }
        # the hybrid's pairs first: under a time budget its rows are the ones measured
        pairs = {
            (q.id, h.id): (q.id, h.id, q.text, h.text)
            for stage in ("hybrid", "dense", "bm25")
            for q, row in zip(queries, stages[stage])
            for h in row
        }
        qrels_all = {q.id: dict(collection.qrels[q.id]) for q in queries}
        print(f"\n{name} ({split}), first stages on all {len(queries)} queries:")
        for stage, rows in stages.items():
            rankings = {q.id: [h.id for h in row] for q, row in zip(queries, rows)}
            metrics = compute_metrics(qrels_all, rankings, recall_k=args.top_k).aggregate
            print(f"| {stage} | " + " | ".join(f"{v:.4f}" for v in metrics.values()) + " |")
        ce = ce_scores(reranker, args, spec, list(pairs.values()))
        complete = [
            q
            for q in queries
            if all((q.id, h.id) in ce for h in stages["hybrid"][queries.index(q)])
        ]
        if len(complete) < len(queries):
            print(
                f"{spec}: the budget scored the hybrid's pairs of {len(complete)} of "
                f"{len(queries)} queries; every run below is measured on those queries "
                "(first stages on all queries: run without --budget-minutes)"
            )
            keep = {q.id for q in complete}
            stages = {
                k: [r for q, r in zip(queries, rows) if q.id in keep] for k, rows in stages.items()
            }
            queries = complete

        runs: dict[str, dict[str, list[str]]] = {}
        for stage, rows in stages.items():
            reranked: dict[str, list[str]] = {}
            head: dict[str, list[str]] = {}
            runs[stage] = {q.id: [h.id for h in row] for q, row in zip(queries, rows)}
            if any((q.id, h.id) not in ce for q, row in zip(queries, rows) for h in row):
                print(f"{spec}: {stage} → rerank / fused not measured (pairs left unscored)")
                continue
            for q, row in zip(queries, rows):
                ids = [h.id for h in row]
                cross = [ce[(q.id, i)] for i in ids]
                reranked[q.id] = ranked(ids, cross)
                n = args.rerank_head
                head[q.id] = ranked(ids[:n], cross[:n]) + ids[n:]
            runs[f"{stage} → rerank"] = reranked
            if args.rerank_head:
                runs[f"{stage} → rerank top-{args.rerank_head}"] = head
            runs[f"{stage} → fused"] = fused_run(queries, rows, ce, "first-stage", args.alpha)
            if stage == "hybrid":
                runs["hybrid → fused with BM25"] = fused_run(queries, rows, ce, "bm25", args.alpha)
                runs["hybrid → fused with dense"] = fused_run(
                    queries, rows, ce, "dense", args.alpha
                )
                runs[f"hybrid → fused with dense+BM25 (α={args.both_alpha:g})"] = fused_run(
                    queries, rows, ce, "dense+bm25", args.both_alpha
                )

        qrels = {q.id: dict(collection.qrels[q.id]) for q in queries}
        recall = f"Recall@{args.top_k}"
        table = {
            run: compute_metrics(qrels, rankings, recall_k=args.top_k).aggregate
            for run, rankings in runs.items()
        }
        results[spec] = table
        base = table["dense"]["NDCG@10"]
        n_pairs = len(pairs)
        print(
            f"\n{name} ({split}), {len(queries)} queries, {len(collection.corpus):,} docs; "
            f"{n_pairs:,} unique pairs reranked"
        )
        header = ["run", *METRICS, recall, "Δ NDCG@10 vs dense"]
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for run, metrics in table.items():
            delta = 100 * (metrics["NDCG@10"] - base)
            cells = [f"{metrics[m]:.4f}" for m in [*METRICS, recall]]
            print(f"| {run} | " + " | ".join(cells) + f" | {delta:+.1f} |", flush=True)
        if args.sweep and "hybrid → rerank" in table:
            sweep = fusion_sweep(args, queries, stages["hybrid"], ce, qrels)
            results[f"{spec} sweep"] = sweep
            print(f"\n{name} ({split}): NDCG@10 of the hybrid fused at each cross-encoder weight")
            print("| fused with | " + " | ".join(f"α={a:g}" for a in args.sweep) + " |")
            print("|---|" + "---:|" * len(args.sweep))
            for label, values in sweep.items():
                print(f"| {label} | " + " | ".join(f"{v:.4f}" for v in values.values()) + " |")
    if args.out is not None:
        arguments = {k: str(v) for k, v in vars(args).items()}
        write_json_atomically(args.out, {"args": arguments, "results": results}, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
