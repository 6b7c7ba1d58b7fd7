"""The ``crossrank`` command line: ``demo``, ``eval``, ``train``, ``bench``, ``serve`` and
``rerank-batch``.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` and
``run(args) -> int``. Errors print as one readable line plus a hint; ``--debug`` shows the
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from crossrank.errors import CrossrankError

__all__ = ["main"]

_SUBCOMMANDS = ("demo", "eval", "train", "bench", "serve", "rerank_batch")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossrank",
        description="Rerank dense-retrieval candidates with a cross-encoder.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMANDS:
        try:
            module = importlib.import_module(f"crossrank.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"crossrank.cli.{name}":
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``crossrank`` command: parse the arguments, run the subcommand, print errors."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except (CrossrankError, OSError) as exc:
        if args.debug:
            raise
        hint = "" if isinstance(exc, CrossrankError) else " (run with --debug for details)"
        sys.stderr.write(f"crossrank {args.command}: error: {exc}{hint}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
