"""``crossrank serve``: serve a reranker over HTTP (Cohere- and TEI-compatible APIs).

Thin: parses the options into :class:`crossrank.serving.ServeConfig` and runs
:func:`crossrank.serving.run_server`. Without an API key the server binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from crossrank.cli.serve_ray import add_ray_arguments, run_ray
from crossrank.types import BACKENDS

if TYPE_CHECKING:
    from crossrank.serving import ServeConfig

__all__ = ["add_parser", "config_from_args", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``crossrank serve`` and its options."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a reranker over HTTP (Cohere /v1|v2/rerank, TEI /rerank)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--model", default=None, help="model folder or hub id")
    parser.add_argument(
        "--host",
        default=None,
        help="address to bind (default 127.0.0.1 without an API key, 0.0.0.0 with one)",
    )
    parser.add_argument("--port", type=int, default=8080, help="TCP port (8080)")
    parser.add_argument("--backend", default="torch", choices=BACKENDS)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per pair")
    parser.add_argument("--overflow", default="truncate", choices=("truncate", "chunk", "error"))
    parser.add_argument(
        "--activation",
        default="auto",
        choices=("auto", "raw", "sigmoid"),
        help="scores served: the model's own (auto), raw logits or sigmoid probabilities",
    )
    parser.add_argument("--token-budget", type=int, default=None, help="padded tokens per batch")
    parser.add_argument(
        "--api-key",
        action="append",
        default=None,
        help="accepted bearer key (repeatable; default $CROSSRANK_API_KEY, comma-separated)",
    )
    parser.add_argument("--max-documents", type=int, default=1000, help="per request (1000)")
    parser.add_argument(
        "--max-request-bytes", type=int, default=8 * 1024 * 1024, help="body size limit (8 MiB)"
    )
    parser.add_argument(
        "--max-queue", type=int, default=256, help="requests admitted at once; more get 429 (256)"
    )
    parser.add_argument(
        "--graceful-timeout", type=float, default=30.0, help="seconds SIGTERM waits (30)"
    )
    add_ray_arguments(parser)  # --ray, --replicas...: crossrank.cli.serve_ray
    parser.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    """The service's settings from the parsed options (keys: ``--api-key``, else the env)."""
    from crossrank.serving import ServeConfig

    return ServeConfig(
        model=args.model,
        host=args.host,
        port=args.port,
        backend=args.backend,
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        overflow=args.overflow,
        activation=args.activation,
        token_budget=args.token_budget,
        api_keys=ServeConfig.keys_from(args.api_key),
        max_documents=args.max_documents,
        max_request_bytes=args.max_request_bytes,
        max_queue=args.max_queue,
        graceful_timeout_s=args.graceful_timeout,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``crossrank serve`` with the parsed arguments; return the exit code."""
    from crossrank.serving import run_server

    config = config_from_args(args)
    logging.getLogger("crossrank.serving").setLevel(logging.INFO)
    if args.ray:
        return run_ray(args, config)
    return run_server(config, log_level="debug" if args.debug else "info")
