"""``crossrank demo``: first stage vs. first stage + rerank vs. fused, on a real collection.

Indexes the collection (FAISS and/or BM25, cached), shows a few real queries with the
first-stage top-5 (dense, BM25 or their hybrid) beside the reranked and the fused top-5, then
the metrics over the whole judged query set, and where the time went. Works with no model
hub; says which reranker it used and why, and without one it still runs the first stage and
says how to get a reranker.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from crossrank.errors import ModelNotFoundError
from crossrank.types import BACKENDS, FUSE_WITH

if TYPE_CHECKING:
    from rich.console import Console

    from crossrank.data import Collection
    from crossrank.engine.reranker import Reranker
    from crossrank.evaluation import SupportsSearch

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``crossrank demo`` and its options."""
    parser = subparsers.add_parser(
        "demo",
        help="show a first stage vs. first stage + rerank vs. fused on a real collection",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--data", default="scifact", help="collection folder or name")
    parser.add_argument("--split", default="test")
    parser.add_argument("--reranker", default=None, help="model folder or hub id")
    parser.add_argument(
        "--retriever",
        default="hybrid",
        metavar="{dense,bm25,hybrid}",
        help="first stage (hybrid: dense + BM25 fused); any other value is read as --biencoder",
    )
    parser.add_argument("--biencoder", default=None, help="bi-encoder (all-MiniLM-L6-v2)")
    parser.add_argument("--hybrid-method", choices=("rrf", "weighted"), default="rrf")
    parser.add_argument(
        "--fuse-with",
        choices=FUSE_WITH,
        default="dense+bm25",
        help=(
            "first-stage score fused with the reranker (dense+bm25: the mean of the hybrid's "
            "min-max scaled dense and BM25 scores; bm25 with --alpha 0.8: the 80/20 blend)"
        ),
    )
    parser.add_argument("--show", type=int, default=3, help="queries shown side by side")
    parser.add_argument("--top-k", type=int, default=50, help="first-stage candidates per query")
    parser.add_argument(
        "--top-n", type=int, default=20, help="candidates reranked and fused per query (20)"
    )
    parser.add_argument("--max-length", type=int, default=None, help="reranker tokens per pair")
    parser.add_argument(
        "--alpha",
        type=float,
        default=None,
        help=(
            "weight of the reranker in fusion (default: 0.2 beside dense+bm25, the measured "
            "best with the starter; 0.5 beside a single first-stage score)"
        ),
    )
    parser.add_argument("--max-queries", type=int, default=None, help="evaluate fewer queries")
    parser.add_argument("--backend", default="torch", choices=BACKENDS, help="engine backend")
    parser.set_defaults(index="flat", device="auto", no_cache=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``crossrank demo`` with the parsed arguments; return the exit code."""
    from rich.console import Console

    from crossrank.cli.eval import build_retriever
    from crossrank.data import load_beir, resolve_collection
    from crossrank.engine.resolve import resolve_reranker
    from crossrank.evaluation.runner import first_stage_name

    console = Console()
    timings: dict[str, float] = {}
    collection = load_beir(resolve_collection(args.data), split=args.split)
    n_judged = len(collection.judged_queries())
    console.rule(f"[bold]crossrank demo[/] - {collection.name} ({args.split})")
    if args.retriever != "hybrid" and args.fuse_with != "first-stage":
        args.fuse_with = "first-stage"  # only a hybrid hit carries both scores
    if args.alpha is None:
        args.alpha = 0.2 if args.fuse_with == "dense+bm25" else 0.5
    console.print(
        f"{len(collection.corpus):,} documents, {n_judged} judged queries. The first stage "
        f"({args.retriever}) takes the top-{args.top_k}; the cross-encoder reorders the "
        f"top-{args.top_n}; fused = {args.alpha:g} x reranker + {1 - args.alpha:g} x "
        f"{args.fuse_with} score (min-max scaled per query)."
    )

    reranker_name: str | None
    try:
        reranker_name, why = resolve_reranker(args.reranker)
        console.print(f"Reranker: [bold]{reranker_name}[/] ({why})")
    except ModelNotFoundError as exc:
        reranker_name = None
        console.print(f"[yellow]No reranker available[/]: {exc}")
        console.print(
            "Get one with [bold]crossrank train --preset starter[/] (or set "
            "CROSSRANK_RERANKER to a cross-encoder folder). Running the dense stage only."
        )

    started = time.perf_counter()
    with console.status("Indexing the corpus (cached after the first run)..."):
        retriever = build_retriever(args, collection, True)
    timings["first-stage index (built or reused from the cache)"] = time.perf_counter() - started
    console.print(f"Retriever: {retriever.model_name} over {len(retriever):,} documents")

    reranker = None
    if reranker_name is not None:
        from crossrank.engine.reranker import Reranker

        started = time.perf_counter()
        reranker = Reranker(
            reranker_name,
            max_length=args.max_length,
            backend=args.backend,
            progress_threshold=None,
        )
        timings["load reranker"] = time.perf_counter() - started
        console.print(f"Engine: {reranker!r}")

    _side_by_side(console, collection, retriever, reranker, args)
    if reranker is None:
        _first_stage_metrics(console, collection, retriever, args, timings)
    else:
        from crossrank.evaluation import evaluate

        started = time.perf_counter()
        report = evaluate(
            collection,
            retriever,
            reranker,
            top_k=args.top_k,
            top_n=args.top_n,
            alpha=args.alpha,
            max_queries=args.max_queries,
            show_progress=True,
            fuse_with=args.fuse_with,
        )
        timings[f"evaluate {report.n_queries} queries"] = time.perf_counter() - started
        console.print(report.rich_table())
        first, reranked = report[first_stage_name(retriever)], report["reranked"]
        console.print(
            f"Per query: first stage p50 {first.latency_p50_ms:.1f} ms; with reranking p50 "
            f"{reranked.latency_p50_ms:.0f} ms, p95 {reranked.latency_p95_ms:.0f} ms "
            f"({reranked.pairs_per_second or 0:,.1f} pairs/s on {reranker.device})."
        )
    _timings(console, timings)
    return 0


def _side_by_side(
    console: Console,
    collection: Collection,
    retriever: SupportsSearch,
    reranker: Reranker | None,
    args: argparse.Namespace,
) -> None:
    from rich.table import Table

    from crossrank.evaluation.runner import first_stage_name, fusion_scores

    first = first_stage_name(retriever)
    for query in collection.judged_queries(args.show):
        hits = retriever.search(query.text, top_k=args.top_k)
        relevant = collection.relevant(query.id)
        table = Table(title=f"[bold]{query.text}[/]", title_justify="left", expand=True)
        table.add_column("#", justify="right", width=2)
        table.add_column(f"{first} top-5 (score)", ratio=1)
        columns: list[list[tuple[str, float, int]]] = []
        if reranker is not None and hits:
            table.add_column("reranked top-5 (score, first-stage rank)", ratio=1)
            table.add_column("fused top-5 (score, first-stage rank)", ratio=1)
            head = hits[: args.top_n]
            results = reranker.rerank(
                query.text,
                [h.text for h in head],
                retrieval_scores=fusion_scores(head, args.fuse_with),
                fusion="weighted",
                alpha=args.alpha,
            )
            by_rerank = sorted(results, key=lambda r: (-r.rerank_score, r.index))
            columns = [
                [(head[r.index].id, r.rerank_score, r.index) for r in by_rerank],
                [(head[r.index].id, r.score, r.index) for r in results],
            ]
        for rank in range(min(5, len(hits))):
            hit = hits[rank]
            cells = [str(rank + 1), _cell(collection, hit.id, hit.score, relevant)]
            for column in columns:
                doc_id, score, was = column[rank]
                cells.append(_cell(collection, doc_id, score, relevant, extra=f"was #{was + 1}"))
            table.add_row(*cells)
        console.print(table)
    console.print("[green]✓[/] = judged relevant for the query")


def _cell(
    collection: Collection, doc_id: str, score: float, relevant: dict[str, int], extra: str = ""
) -> str:
    title = collection.corpus[doc_id].title or collection.corpus[doc_id].text
    title = title if len(title) <= 70 else title[:67] + "..."
    mark = "[green]✓[/] " if doc_id in relevant else "  "
    note = f", {extra}" if extra else ""
    return f"{mark}{title} [dim]({score:.3f}{note})[/]"


def _first_stage_metrics(
    console: Console,
    collection: Collection,
    retriever: Any,
    args: argparse.Namespace,
    timings: dict[str, float],
) -> None:
    from rich.table import Table

    from crossrank.evaluation.runner import first_stage_metrics

    started = time.perf_counter()
    queries = collection.judged_queries(args.max_queries)
    metrics = first_stage_metrics(
        collection, retriever, top_k=args.top_k, max_queries=args.max_queries
    )
    timings[f"first-stage search + metrics, {len(queries)} queries"] = time.perf_counter() - started
    table = Table(title=f"First stage only, {len(queries)} queries")
    table.add_column("run")
    for name in metrics:
        table.add_column(name, justify="right")
    from crossrank.evaluation.runner import first_stage_name

    table.add_row(first_stage_name(retriever), *(f"{v:.4f}" for v in metrics.values()))
    console.print(table)


def _timings(console: Console, timings: dict[str, float]) -> None:
    from rich.table import Table

    table = Table(title="Where the time went")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for step, seconds in timings.items():
        table.add_row(step, f"{seconds:.1f}")
    table.add_row("[bold]total[/]", f"[bold]{sum(timings.values()):.1f}[/]")
    console.print(table)
