"""``crossrank eval``: first stage (dense, BM25 or hybrid) vs. reranked vs. fused on a BEIR
collection split.

The corpus indexes are cached under ``<cache>/indexes/<key>`` (dense: the corpus file's
content hash, the embedding model's fingerprint and the index settings) and
``<cache>/bm25/<key>`` (the corpus content and the BM25 settings), so a second run with the
same collection does not encode or index the corpus again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

from crossrank.cli.arguments import positive_int
from crossrank.errors import InvalidInputError
from crossrank.types import FUSE_WITH

__all__ = ["RETRIEVERS", "add_parser", "build_retriever", "run"]

logger = logging.getLogger(__name__)

RETRIEVERS = ("dense", "bm25", "hybrid")


def add_parser(subparsers: Any) -> None:
    """Register ``crossrank eval`` and its options."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a first stage with and without reranking on a BEIR collection",
        description=(
            "Retrieve the top-k documents of each judged query with a bi-encoder (dense), "
            "BM25, or both fused (hybrid), rerank the top-n with a cross-encoder, and report "
            "NDCG@10, MRR@10, Hit@1, Recall@k, latency and reranker throughput for the "
            "first-stage, reranked and fused rankings."
        ),
    )
    parser.add_argument(
        "--data",
        required=True,
        help="a BEIR collection folder, or a collection name under the shared data folder",
    )
    parser.add_argument("--split", default="test", help="qrels split to evaluate (test)")
    parser.add_argument(
        "--reranker",
        default=None,
        help="cross-encoder folder or hub id (default: $CROSSRANK_RERANKER, then the starter)",
    )
    parser.add_argument(
        "--retriever",
        default="dense",
        metavar="{dense,bm25,hybrid}",
        help=(
            "first stage: dense (bi-encoder + FAISS), bm25 (bm25s) or hybrid (both, fused); "
            "default dense. Any other value is read as --biencoder (older releases' meaning)"
        ),
    )
    parser.add_argument(
        "--biencoder",
        default=None,
        help="bi-encoder folder or hub id (default: all-MiniLM-L6-v2, offline when installed)",
    )
    parser.add_argument(
        "--hybrid-method",
        choices=("rrf", "weighted"),
        default="rrf",
        help="how the hybrid merges dense and BM25 candidates (rrf)",
    )
    parser.add_argument(
        "--fuse-with",
        choices=FUSE_WITH,
        default="first-stage",
        help=(
            "first-stage score fused with the cross-encoder: the retriever's own, a hybrid "
            "hit's dense or bm25 score (the 80/20 blend: --fuse-with bm25 --fusion-alpha 0.8), "
            "or dense+bm25, both min-max scaled and averaged (the measured best with the "
            "starter: --fuse-with dense+bm25 --fusion-alpha 0.2 --top-n 50)"
        ),
    )
    parser.add_argument("--top-k", type=positive_int, default=50, help="documents retrieved (50)")
    parser.add_argument("--top-n", type=positive_int, default=10, help="documents reranked (10)")
    parser.add_argument(
        "--fusion", choices=("weighted", "rrf"), default="weighted", help="fused run (weighted)"
    )
    parser.add_argument(
        "--fusion-alpha",
        type=float,
        default=0.5,
        help="weight of the cross-encoder in weighted fusion, 0..1 (0.5)",
    )
    parser.add_argument("--max-length", type=positive_int, help="reranker tokens per pair")
    parser.add_argument("--max-queries", type=positive_int, help="first N queries only")
    parser.add_argument(
        "--index", choices=("flat", "hnsw", "ivf"), default="flat", help="FAISS index (flat)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the index")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--out", type=Path, default=None, help="save the report as JSON")
    parser.add_argument(
        "--runs-out", type=Path, default=None, help="save the runs as {run: {qid: {doc: score}}}"
    )
    parser.add_argument("--plot", type=Path, default=None, help="save a bar chart (PNG, SVG...)")
    parser.add_argument(
        "--runs",
        nargs="+",
        metavar="[NAME=]PATH",
        default=None,
        help=(
            "score saved runs instead of retrieving and reranking: a crossrank rerank-batch "
            "output folder, a JSON run ({qid: {doc: score}} or --runs-out's "
            "{run: {qid: {doc: score}}}) or a TREC run file; Recall is cut at --top-k"
        ),
    )
    parser.set_defaults(run=run)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _dense(args: argparse.Namespace, collection: Any, progress: bool | None) -> Any:
    from crossrank.retrieval import DenseRetriever, IndexConfig, cached_retriever, index_cache_dir

    if args.no_cache:
        retriever = DenseRetriever(
            args.biencoder, index=args.index, device=args.device, show_progress=progress
        )
        _say(f"encoding {len(collection.corpus)} documents with {retriever.model_name}")
        retriever.add_documents(collection.corpus.values())
        return retriever
    retriever, reused = cached_retriever(
        collection,
        args.biencoder,
        config=IndexConfig(kind=args.index),
        device=args.device,
        show_progress=progress,
    )
    folder = index_cache_dir(collection, retriever.identity, retriever.config)
    if reused:
        _say(f"reused the cached index {folder} ({len(retriever)} documents, not re-encoded)")
    else:
        _say(f"encoded {len(retriever)} documents and cached the index in {folder}")
    return retriever


def _bm25(args: argparse.Namespace, collection: Any, progress: bool | None) -> Any:
    from crossrank.retrieval import BM25Retriever, bm25_cache_dir, cached_bm25

    if args.no_cache:
        retriever = BM25Retriever(show_progress=progress)
        retriever.add_documents(collection.corpus.values())
        _say(f"indexed {len(retriever)} documents for BM25")
        return retriever
    retriever, reused = cached_bm25(collection, show_progress=progress)
    folder = bm25_cache_dir(collection, retriever.config)
    if reused:
        _say(f"reused the cached BM25 index {folder} ({len(retriever)} documents)")
    else:
        _say(f"indexed {len(retriever)} documents for BM25 and cached the index in {folder}")
    return retriever


def build_retriever(args: argparse.Namespace, collection: Any, progress: bool | None) -> Any:
    """The first stage ``args.retriever`` names (``dense``, ``bm25`` or ``hybrid``)."""
    from crossrank.retrieval import HybridRetriever

    if args.retriever not in RETRIEVERS:
        # Older releases took the bi-encoder here; keep such commands working.
        logger.warning(
            "--retriever %s is read as --biencoder %s; --retriever now takes %s",
            args.retriever,
            args.retriever,
            ", ".join(RETRIEVERS),
        )
        args.biencoder, args.retriever = args.retriever, "dense"
    if args.retriever == "dense":
        return _dense(args, collection, progress)
    if args.retriever == "bm25":
        return _bm25(args, collection, progress)
    return HybridRetriever(
        _dense(args, collection, progress),
        _bm25(args, collection, progress),
        method=args.hybrid_method,
        complete_scores=args.fuse_with != "first-stage",
    )


def _saved_runs(specs: list[str]) -> dict[str, Any]:
    """``[NAME=]PATH`` arguments → ``{name: Run}`` (folders are rerank-batch outputs)."""
    from crossrank.evaluation.run_files import read_run_file
    from crossrank.jobs.output import MANIFEST, ranked_run

    runs: dict[str, Any] = {}
    for spec in specs:
        name, sep, location = spec.partition("=")
        path = Path(location if sep else spec)
        if path.is_dir():
            if not (path / MANIFEST).is_file():
                msg = f"{path} is a folder but not a crossrank rerank-batch output (no {MANIFEST})"
                raise InvalidInputError(msg)
            found = {path.name: ranked_run(path, name=path.name)}
        else:
            found = read_run_file(path)
        if sep:
            if len(found) != 1:
                msg = f"{path} holds {len(found)} runs ({', '.join(found)}); drop the NAME= prefix"
                raise InvalidInputError(msg)
            found = {name: dataclasses.replace(next(iter(found.values())), name=name)}
        for key, value in found.items():
            if key in runs:
                msg = f"two runs are named {key!r}; name them with NAME=PATH"
                raise InvalidInputError(msg)
            runs[key] = value
    return runs


def _score_saved_runs(args: argparse.Namespace) -> int:
    """``crossrank eval --runs``: metrics of saved runs against the split's judgments."""
    from crossrank.data import load_beir
    from crossrank.evaluation.run_files import score_run

    collection = load_beir(args.data, args.split)
    runs = _saved_runs(args.runs)
    qrels = collection.qrels
    scored = [score_run(run, qrels, recall_k=args.top_k) for run in runs.values()]
    names = list(scored[0].metrics)
    _say(f"{collection.name} ({args.split}): {len(qrels)} judged queries")
    header = ["run", *names, "ranked queries"]
    rows = [
        [s.name, *(f"{s.metrics[m]:.4f}" for m in names), f"{s.n_ranked}/{s.n_judged}"]
        for s in scored
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        _say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for s in scored:
        if s.n_ranked < s.n_judged:
            logger.warning(
                "run %s ranks %d of %d judged queries; the others count as 0",
                s.name,
                s.n_ranked,
                s.n_judged,
            )
        if s.n_unjudged:
            logger.warning(
                "run %s: %d queries have no judgments and are ignored", s.name, s.n_unjudged
            )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "collection": collection.name,
            "split": args.split,
            "recall_k": args.top_k,
            "runs": [s.to_dict() for s in scored],
        }
        args.out.write_text(json.dumps(data, indent=2), encoding="utf-8")
        _say(f"saved the report to {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``crossrank eval`` with the parsed arguments; return the exit code."""
    from crossrank.data import load_beir
    from crossrank.engine.reranker import Reranker
    from crossrank.evaluation import evaluate

    if args.runs is not None:
        return _score_saved_runs(args)
    if args.top_n > args.top_k:
        msg = f"--top-n {args.top_n} exceeds --top-k {args.top_k}; rerank at most what is retrieved"
        raise InvalidInputError(msg)
    if not 0.0 <= args.fusion_alpha <= 1.0:
        msg = f"--fusion-alpha must be between 0 and 1, got {args.fusion_alpha}"
        raise InvalidInputError(msg)
    progress = False if args.no_progress else None
    collection = load_beir(args.data, args.split)
    _say(
        f"{collection.name} ({args.split}): {len(collection.corpus)} documents, "
        f"{len(collection.qrels)} judged queries"
    )
    if args.fuse_with != "first-stage" and args.retriever != "hybrid":
        msg = f"--fuse-with {args.fuse_with} needs --retriever hybrid"
        raise InvalidInputError(msg)
    retriever = build_retriever(args, collection, progress)
    reranker = Reranker(args.reranker, device=args.device, max_length=args.max_length)
    # evaluate() logs one truncation summary for the whole run.
    report = evaluate(
        collection,
        retriever,
        reranker,
        top_k=args.top_k,
        top_n=args.top_n,
        fusion=args.fusion,
        alpha=args.fusion_alpha,
        max_queries=args.max_queries,
        show_progress=progress,
        fuse_with=args.fuse_with,
    )
    _say(report.format_table())
    if args.out is not None:
        _say(f"saved the report to {report.save(args.out)}")
    if args.runs_out is not None:
        args.runs_out.parent.mkdir(parents=True, exist_ok=True)
        args.runs_out.write_text(json.dumps(report.export_runs()), encoding="utf-8")
        _say(f"saved the runs to {args.runs_out}")
    if args.plot is not None:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        report.plot().savefig(args.plot, dpi=120)
        _say(f"saved the chart to {args.plot}")
    return 0
