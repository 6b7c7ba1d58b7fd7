"""``crossrank train``: fine-tune a cross-encoder on BEIR training splits.

``crossrank train --preset starter`` trains the project's offline starter reranker into
crossrank's cache, where :class:`crossrank.Reranker` finds it when no model is named. Any
option given on the command line overrides the preset's value.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from crossrank.errors import InvalidInputError

__all__ = ["add_parser", "config_from_args", "run"]

# Options whose value goes into TrainConfig under the same name when given.
_FIELDS = (
    "backbone", "retriever", "output", "name", "loss", "negatives", "skip_top", "mine_depth",
    "max_positives", "title_pairs", "in_batch_negatives", "holdout_queries", "eval_queries",
    "eval_top_k", "eval_top_n", "test_queries", "test_top_k", "test_top_n", "max_length",
    "save_max_length", "batch_size", "learning_rate", "head_learning_rate", "warmup_ratio",
    "weight_decay", "epochs", "max_steps", "budget_minutes", "grad_accum", "dropout", "bf16",
    "seed", "device", "threads", "eval_minutes", "eval_steps", "logging_steps",
)  # fmt: skip


def _int(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            msg = f"expected an integer >= {minimum}, got {text!r}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        msg = f"expected a positive number, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_parser(subparsers: Any) -> None:
    """Register ``crossrank train`` and its options."""
    from crossrank.training.config import LOSSES, PRESETS

    p = subparsers.add_parser(
        "train",
        help="fine-tune a cross-encoder reranker on BEIR training splits",
        description=(
            "Fine-tune a cross-encoder from a backbone on BEIR-format training splits, with "
            "hard negatives mined by the dense retriever; evaluate on dev queries during "
            "training, keep the best checkpoint, and write a model folder with a model card."
        ),
    )
    add = p.add_argument
    add("--preset", choices=PRESETS, help="a named recipe (starter: the offline starter model)")
    add(
        "--data",
        action="append",
        metavar="NAME:SPLIT",
        help="training split, repeatable (e.g. --data scifact:train --data nfcorpus:train)",
    )
    add("--backbone", help="model folder or hub id to start from (default: all-MiniLM-L6-v2)")
    add("--retriever", help="bi-encoder for mining and dev retrieval (default: all-MiniLM-L6-v2)")
    add("--output", type=Path, help="model folder to write (default: see --name / --preset)")
    add("--name", help="write to <cache>/models/NAME when --output is not given")
    group = p.add_argument_group("training data")
    group.add_argument("--loss", choices=LOSSES, help="mnrl (default), bce, listnet or lambda")
    group.add_argument("--negatives", type=_int(0), help="hard negatives per positive (3)")
    group.add_argument("--skip-top", type=_int(0), help="dense ranks never used as negatives (3)")
    group.add_argument("--mine-depth", type=_int(1), help="dense ranks negatives come from (30)")
    group.add_argument("--max-positives", type=_int(1), help="positives per query (1)")
    group.add_argument("--title-pairs", type=_int(0), help="title→abstract groups per corpus (0)")
    group.add_argument("--in-batch-negatives", type=_int(0), help="in-batch negatives, mnrl (1)")
    evals = p.add_argument_group("evaluation")
    evals.add_argument("--holdout-queries", type=_int(0), help="dev queries held out per split")
    evals.add_argument(
        "--eval-data", action="append", metavar="NAME:SPLIT", help="dev split, repeatable"
    )
    evals.add_argument("--eval-queries", type=_int(1), help="dev queries per --eval-data (50)")
    evals.add_argument("--eval-top-k", type=_int(1), help="dense candidates in dev eval (30)")
    evals.add_argument("--eval-top-n", type=_int(1), help="candidates reranked in dev eval (10)")
    evals.add_argument("--eval-minutes", type=_positive_float, help="dev evaluation interval")
    evals.add_argument("--eval-steps", type=_int(1), help="dev evaluation interval in steps")
    evals.add_argument(
        "--test-data",
        action="append",
        metavar="NAME:SPLIT",
        help="split evaluated after training with the saved model, repeatable",
    )
    evals.add_argument("--test-queries", type=_int(1), help="test queries per split (all)")
    evals.add_argument("--test-top-k", type=_int(1), help="dense candidates in test eval (50)")
    evals.add_argument("--test-top-n", type=_int(1), help="candidates reranked in test eval (50)")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--max-length", type=_int(8), help="tokens per pair in training (192)")
    opt.add_argument("--save-max-length", type=_int(8), help="saved model's default max length")
    opt.add_argument("--batch-size", type=_int(1), help="queries per batch (8)")
    opt.add_argument("--grad-accum", type=_int(1), help="gradient accumulation steps (1)")
    opt.add_argument("--lr", dest="learning_rate", type=_positive_float, help="(5e-5)")
    opt.add_argument("--head-lr", dest="head_learning_rate", type=_positive_float)
    opt.add_argument("--warmup-ratio", type=float, help="share of progress warming up (0.1)")
    opt.add_argument("--weight-decay", type=float, help="(0.01)")
    opt.add_argument("--dropout", type=float, help="dropout during training (backbone's)")
    opt.add_argument("--epochs", type=_positive_float, help="passes over the data (1)")
    opt.add_argument("--max-steps", type=_int(1), help="optimizer steps (overrides --epochs)")
    opt.add_argument(
        "--budget-minutes", type=_positive_float, help="stop training after this wall time"
    )
    opt.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        help="bf16 mixed precision (default: on where the GPU or the CPU has native bf16)",
    )
    opt.add_argument("--seed", type=_int(0), help="(12)")
    opt.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    opt.add_argument("--threads", type=_int(1), help="CPU threads for torch")
    opt.add_argument("--logging-steps", type=_int(1), help="log the loss every N steps (10)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace, *, gpu: bool) -> Any:
    """The :class:`TrainConfig` the arguments ask for (preset values, then the options)."""
    from crossrank.training.config import TrainConfig, preset_config

    base = preset_config(args.preset, gpu=gpu) if args.preset else TrainConfig()
    changes: dict[str, Any] = {
        name: getattr(args, name) for name in _FIELDS if getattr(args, name, None) is not None
    }
    for option, name in (("data", "data"), ("eval_data", "eval_data"), ("test_data", "test_data")):
        values = getattr(args, option)
        if values:
            changes[name] = tuple(values)
    if args.no_progress:
        changes["show_progress"] = False
    config = base.replace(**changes)
    if not config.data:
        msg = "no training data: pass --data NAME:SPLIT (e.g. --data scifact:train) or --preset"
        raise InvalidInputError(msg)
    return config


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Train a reranker as the parsed arguments say; print where it went."""
    from crossrank.engine.loading import resolve_device
    from crossrank.training import output_dir, train

    device = resolve_device(args.device or "auto")
    config = config_from_args(args, gpu=device.startswith("cuda"))
    _say(
        f"training a cross-encoder from {config.backbone or 'all-MiniLM-L6-v2'} on "
        f"{', '.join(map(str, config.data))} ({config.loss} loss, {device}) into "
        f"{output_dir(config)}"
    )
    result = train(config)
    _say(
        f"trained {result.steps} steps in {result.train_seconds / 60:.1f} min"
        + (" (time budget reached)" if result.stopped_by_budget else "")
        + f"; saved to {result.output}"
    )
    best = result.best_dev
    if best is not None:
        _say(
            f"dev NDCG@10 (step {result.best_step}): dense {best['dense_ndcg@10']:.4f}, "
            f"reranked {best['reranked_ndcg@10']:.4f}, fused {best['fused_ndcg@10']:.4f}"
        )
    for name, info in result.test.items():
        runs = info["runs"]
        cells = ", ".join(f"{run} {runs[run]['NDCG@10']:.4f}" for run in runs)
        _say(f"test {name} NDCG@10: {cells}")
    _say(f"model card: {result.output / 'README.md'}")
    return 0
