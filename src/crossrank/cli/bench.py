"""``crossrank bench``: how fast the engine reranks real dense candidates on this machine.

Takes the dense top-k of judged queries from a BEIR collection (index cached as in
``crossrank eval``), then for each backend asked for reranks them one query at a time and all
at once (``rerank_many``), and prints per-query latency (p50/p95), pairs/s, padding
efficiency (real / padded tokens) and the share of the time spent tokenizing (the engine's
``prepare`` step, timed apart on the same requests). The comparison with other libraries lives
in the repository's ``benchmarks/`` folder.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from crossrank.types import BACKENDS

if TYPE_CHECKING:
    from crossrank.engine.reranker import Reranker

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``crossrank bench`` and its options."""
    parser = subparsers.add_parser(
        "bench",
        help="measure reranking latency and throughput on real dense candidates",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--data", default="scifact", help="collection folder or name (scifact)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--reranker", default=None, help="model folder or hub id")
    parser.add_argument("--retriever", default=None, help="bi-encoder (default all-MiniLM-L6-v2)")
    parser.add_argument("--queries", type=int, default=10, help="judged queries to time (10)")
    parser.add_argument("--top-k", type=int, default=50, help="candidates per query (50)")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per pair")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--backend",
        action="append",
        choices=BACKENDS,
        help="engine backend; repeat to compare several (default: torch)",
    )
    parser.add_argument(
        "--token-budget",
        action="append",
        type=int,
        help="padded tokens per batch; repeat to compare several (default: the device's)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``crossrank bench`` with the parsed arguments; return the exit code."""
    from rich.console import Console
    from rich.table import Table

    from crossrank.data import load_beir, resolve_collection
    from crossrank.engine.reranker import Reranker
    from crossrank.engine.resolve import resolve_reranker
    from crossrank.errors import InvalidInputError
    from crossrank.retrieval.cache import cached_retriever

    if args.queries < 1 or args.top_k < 1:
        msg = "--queries and --top-k must be positive integers"
        raise InvalidInputError(msg)
    console = Console()
    collection = load_beir(resolve_collection(args.data), split=args.split)
    name, why = resolve_reranker(args.reranker)
    console.print(f"Reranker: [bold]{name}[/] ({why})")
    with console.status("Indexing the corpus (cached after the first run)..."):
        retriever, _ = cached_retriever(collection, args.retriever, show_progress=True)
    queries = [q.text for q in collection.judged_queries(args.queries)]
    hits = retriever.search_batch(queries, top_k=args.top_k)
    candidates = [[h.text for h in row] for row in hits]
    n_pairs = sum(len(c) for c in candidates)

    table = Table(title=f"{len(queries)} queries x {args.top_k} candidates ({n_pairs} pairs)")
    columns = ("backend", "token budget", "call", "p50 ms/query", "p95 ms/query", "pairs/s")
    for column in (*columns, "padding eff.", "tokenize share"):
        table.add_column(column, justify="left" if column in ("backend", "call") else "right")
    for backend in args.backend or ["torch"]:
        for budget in args.token_budget or [None]:
            with console.status(f"Loading the {backend} backend..."):
                engine = Reranker(
                    name,
                    device=args.device,
                    max_length=args.max_length,
                    backend=backend,
                    token_budget=budget,
                    progress_threshold=None,
                )
            engine.rerank(queries[0], candidates[0][:2])  # warm-up: first-call set-up costs
            label = str(budget) if budget is not None else "default"
            for row in _time(engine, queries, candidates):
                table.add_row(backend, label, *row)
    console.print(table)
    console.print(f"Engine: {engine!r}")
    return 0


def _time(engine: Reranker, queries: list[str], candidates: list[list[str]]) -> list[list[str]]:
    from crossrank.evaluation.latency import time_reranker

    tokenizing = 0.0
    for query, docs in zip(queries, candidates, strict=True):
        started = time.perf_counter()
        engine._scorer.prepare(query, docs)  # the tokenization alone, as rerank does it first
        tokenizing += time.perf_counter() - started
    r = time_reranker(engine, queries, candidates)
    share = f"{tokenizing / (r.n_pairs / r.per_query_pairs_per_second):.1%}"
    return [
        ["rerank per query", f"{r.per_query_p50_ms:.0f}", f"{r.per_query_p95_ms:.0f}",
         f"{r.per_query_pairs_per_second:.1f}", f"{r.per_query_padding_efficiency:.3f}", share],
        ["rerank_many", f"{r.many_ms_per_query:.0f} (mean)", "", f"{r.many_pairs_per_second:.1f}",
         f"{r.many_padding_efficiency:.3f}", ""],
    ]  # fmt: skip
