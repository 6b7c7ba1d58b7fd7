"""``crossrank serve --ray``: the service's flags for Ray Serve, kept apart from ``serve``.

``crossrank.cli.serve`` calls :func:`add_ray_arguments` on its parser and, when ``--ray`` is
given, :func:`run_ray` with the :class:`~crossrank.serving.ServeConfig` it built.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from crossrank.errors import InvalidInputError

if TYPE_CHECKING:
    from crossrank.serving.config import ServeConfig
    from crossrank.serving.ray import RayServeOptions

__all__ = ["add_ray_arguments", "options_from_args", "run_ray"]


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--ray`` and the replicas' options to ``crossrank serve``'s parser."""
    group = parser.add_argument_group(
        "Ray Serve", "serve with replicas on a Ray cluster (needs the ray extra)"
    )
    group.add_argument("--ray", action="store_true", help="serve on Ray Serve")
    group.add_argument("--replicas", type=int, default=1, help="engine replicas (1)")
    group.add_argument(
        "--min-replicas", type=int, default=1, help="autoscaling: fewest replicas (1)"
    )
    group.add_argument(
        "--max-replicas", type=int, default=None, help="autoscaling: most replicas (off)"
    )
    group.add_argument(
        "--target-ongoing-requests",
        type=float,
        default=8.0,
        help="autoscaling: requests in flight per replica to aim for (8)",
    )
    group.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs (1)")
    group.add_argument(
        "--gpus-per-replica", type=float, default=0.0, help="GPUs (0; fractions share one)"
    )
    group.add_argument(
        "--replica-max-ongoing",
        type=int,
        default=64,
        help="requests one replica batches at once (64)",
    )
    group.add_argument(
        "--address", default=None, help="Ray cluster to join (default: $RAY_ADDRESS, else local)"
    )
    group.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray instance")


def options_from_args(args: argparse.Namespace) -> RayServeOptions:
    """The replicas' sizing and scaling from the parsed options."""
    from crossrank.serving.ray import RayServeOptions

    if args.address is not None and args.num_cpus is not None:
        msg = "--num-cpus sizes a local Ray instance; drop it with --address"
        raise InvalidInputError(msg)
    return RayServeOptions(
        replicas=args.replicas,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        target_ongoing_requests=args.target_ongoing_requests,
        cpus_per_replica=args.cpus_per_replica,
        gpus_per_replica=args.gpus_per_replica,
        max_ongoing_requests=args.replica_max_ongoing,
    )


def run_ray(args: argparse.Namespace, config: ServeConfig) -> int:
    """Serve ``config`` on Ray Serve until SIGINT/SIGTERM."""
    from crossrank.serving.ray import run_on_ray

    options = options_from_args(args)
    return run_on_ray(config, options, address=args.address, num_cpus=args.num_cpus)
