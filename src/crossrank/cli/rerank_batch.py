"""``crossrank rerank-batch``: rerank candidate lists on a pool of Ray workers.

Thin: parses the options and calls :func:`crossrank.jobs.rerank_batch`. Without ``--address``
(or ``$RAY_ADDRESS``) it starts a local Ray instance of ``--num-cpus`` CPUs and shuts it down
at the end; with one it joins that cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from crossrank.cli.arguments import positive_int
from crossrank.errors import InvalidInputError
from crossrank.types import BACKENDS

__all__ = ["add_parser", "run"]


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        msg = f"expected a non-negative number, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_parser(subparsers: Any) -> None:
    """Register ``crossrank rerank-batch`` and its options."""
    parser = subparsers.add_parser(
        "rerank-batch",
        help="rerank candidate lists (jsonl or parquet) on Ray workers into parquet",
        description=(
            "Rerank every query's candidates of --input (JSON lines or Parquet rows with "
            "query_id, query, doc_ids, texts and optional retrieval_scores) with a pool of Ray "
            "workers, one engine each, into Parquet part files in --output (one row per query: "
            "doc ids best first with their scores, input order kept). --resume continues a "
            "killed job without redoing its finished shards."
        ),
    )
    parser.add_argument(
        "--input", required=True, type=Path, help="a .jsonl/.parquet file or folder"
    )
    parser.add_argument("--output", required=True, type=Path, help="output folder (parquet)")
    parser.add_argument("--model", default=None, help="cross-encoder folder or hub id")
    parser.add_argument("--workers", type=positive_int, default=1, help="Ray workers (1)")
    parser.add_argument(
        "--cpus-per-worker", type=_non_negative, default=1.0, help="CPUs per worker (1)"
    )
    parser.add_argument(
        "--gpus-per-worker",
        type=_non_negative,
        default=0.0,
        help="GPUs per worker (0; fractions share a GPU); the engine then runs on CUDA",
    )
    parser.add_argument(
        "--batch-rows",
        type=positive_int,
        default=64,
        help="queries per shard: one rerank_many pass and one part file (64)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue a job in --output, skip finished shards"
    )
    parser.add_argument("--top-n", type=positive_int, default=None, help="keep the best N")
    parser.add_argument(
        "--fusion", choices=("weighted", "rrf"), default=None, help="fuse with retrieval_scores"
    )
    parser.add_argument("--alpha", type=float, default=None, help="weighted fusion's weight")
    parser.add_argument("--max-length", type=positive_int, default=None, help="tokens per pair")
    parser.add_argument("--overflow", choices=("truncate", "chunk", "error"), default=None)
    parser.add_argument("--device", default=None, help="auto, cpu, cuda (default: auto)")
    parser.add_argument("--dtype", default=None, help="auto, float32, bfloat16 or float16")
    parser.add_argument("--backend", choices=BACKENDS, default=None)
    parser.add_argument("--token-budget", type=positive_int, default=None)
    parser.add_argument(
        "--address",
        default=None,
        help="an existing Ray cluster (default: $RAY_ADDRESS, else local)",
    )
    parser.add_argument(
        "--num-cpus", type=positive_int, default=None, help="CPUs of a local Ray instance"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Run the batch job with the parsed options; print what it did."""
    from crossrank.jobs.rerank_batch import rerank_batch

    engine = {
        key: value
        for key, value in {
            "max_length": args.max_length,
            "overflow": args.overflow,
            "device": args.device,
            "dtype": args.dtype,
            "backend": args.backend,
            "token_budget": args.token_budget,
        }.items()
        if value is not None
    }
    options: dict[str, Any] = {"top_n": args.top_n, "fusion": args.fusion}
    if args.alpha is not None:
        options["alpha"] = args.alpha
    if args.address is not None and args.num_cpus is not None:
        msg = "--num-cpus sizes a local Ray instance; drop it with --address"
        raise InvalidInputError(msg)
    report = rerank_batch(
        args.input,
        args.output,
        model=args.model,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        batch_rows=args.batch_rows,
        resume=args.resume,
        reranker_kwargs=engine,
        show_progress=False if args.no_progress else None,
        address=args.address,
        num_cpus=args.num_cpus,
        **options,
    )
    if report.shards_skipped:
        _say(f"resumed: {report.shards_skipped} of {report.n_shards} shards were already done")
    _say(
        f"reranked {report.rows} queries ({report.pairs} pairs) in {report.seconds:.1f} s "
        f"on {args.workers} worker(s): {report.pairs_per_second:,.0f} pairs/s; "
        f"output in {report.output}"
    )
    return 0
