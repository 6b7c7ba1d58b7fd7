"""``crossrank eval``: dense-only vs. reranked vs. fused on a BEIR collection split.

The corpus index is cached under ``<cache>/indexes/<key>`` (the key covers the corpus file's
path, size and modification time, the embedding model's fingerprint and the index settings),
so a second run with the same collection and bi-encoder does not encode the corpus again.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from crossrank.errors import InvalidInputError

__all__ = ["add_parser", "run"]

logger = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate dense retrieval with and without reranking on a BEIR collection",
        description=(
            "Retrieve the top-k documents of each judged query with a bi-encoder, rerank the "
            "top-n with a cross-encoder, and report NDCG@10, MRR@10, Hit@1, Recall@k, latency "
            "and reranker throughput for the dense, reranked and fused rankings."
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
        default=None,
        help="bi-encoder folder or hub id (default: all-MiniLM-L6-v2, offline when installed)",
    )
    parser.add_argument("--top-k", type=_positive_int, default=50, help="documents retrieved (50)")
    parser.add_argument("--top-n", type=_positive_int, default=10, help="documents reranked (10)")
    parser.add_argument(
        "--fusion", choices=("weighted", "rrf"), default="weighted", help="fused run (weighted)"
    )
    parser.add_argument(
        "--fusion-alpha",
        type=float,
        default=0.5,
        help="weight of the cross-encoder in weighted fusion, 0..1 (0.5)",
    )
    parser.add_argument("--max-length", type=_positive_int, help="reranker tokens per pair")
    parser.add_argument("--max-queries", type=_positive_int, help="first N queries only")
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
    parser.set_defaults(run=run)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _retriever(args: argparse.Namespace, collection: Any, progress: bool | None) -> Any:
    from crossrank.retrieval import DenseRetriever, IndexConfig, cached_retriever, index_cache_dir

    if args.no_cache:
        retriever = DenseRetriever(
            args.retriever, index=args.index, device=args.device, show_progress=progress
        )
        _say(f"encoding {len(collection.corpus)} documents with {retriever.model_name}")
        retriever.add_documents(collection.corpus.values())
        return retriever
    retriever, reused = cached_retriever(
        collection,
        args.retriever,
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


def run(args: argparse.Namespace) -> int:
    from crossrank.data import load_beir
    from crossrank.engine.reranker import Reranker
    from crossrank.evaluation import evaluate

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
    retriever = _retriever(args, collection, progress)
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
