"""The model card (``README.md``) and ``training.json`` written beside a trained model.

The card states what the model was trained on and how, how long it took, and how it
compares with dense retrieval alone on the dev and test queries, whatever the numbers are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossrank.training.result import TrainResult

__all__ = ["render_card", "result_to_dict", "write_card"]

_METRICS = ("NDCG@10", "MRR@10", "Hit@1")
_RUNS = ("dense", "reranked", "fused")


def _num(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60.0:.1f} min"


def result_to_dict(result: TrainResult) -> dict[str, Any]:
    """Everything in the card, as JSON-friendly data."""
    return {
        "format": 1,
        "output": str(result.output),
        "backbone": result.backbone,
        "retriever": result.retriever,
        "device": result.device,
        "bf16": result.bf16,
        "config": result.config.to_dict(),
        "sources": dict(result.sources),
        "dev_queries": dict(result.dev_queries),
        "steps": result.steps,
        "max_steps": result.max_steps,
        "epochs": result.epochs,
        "prepare_seconds": result.prepare_seconds,
        "train_seconds": result.train_seconds,
        "stopped_by_budget": result.stopped_by_budget,
        "best_step": result.best_step,
        "loss_history": [list(x) for x in result.loss_history],
        "dev_history": [{"step": s, "metrics": m} for s, m in result.dev_history],
        "test": result.test,
        "notes": list(result.notes),
    }


def _settings_table(config: Mapping[str, Any]) -> list[str]:
    keys = (
        "preset", "data", "loss", "negatives", "skip_top", "mine_depth", "max_positives",
        "title_pairs", "in_batch_negatives", "holdout_queries", "eval_data", "max_length",
        "save_max_length", "batch_size", "grad_accum", "learning_rate", "head_learning_rate",
        "warmup_ratio", "weight_decay", "dropout", "epochs", "max_steps", "budget_minutes",
        "seed",
    )  # fmt: skip
    lines = ["| setting | value |", "|---|---|"]
    for key in keys:
        value = config.get(key)
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        lines.append(f"| {key} | {'-' if value is None else value} |")
    return lines


def _dev_table(result: TrainResult) -> list[str]:
    head = "| step | " + " | ".join(f"{run} NDCG@10" for run in _RUNS) + " |"
    lines = [head, "|---" * (len(_RUNS) + 1) + "|"]
    for step, metrics in result.dev_history:
        cells = [_num(metrics.get(f"{run}_ndcg@10", math.nan)) for run in _RUNS]
        mark = " (kept)" if step == result.best_step else (" (untrained)" if step == 0 else "")
        lines.append(f"| {step}{mark} | " + " | ".join(cells) + " |")
    return lines


def _test_tables(test: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines: list[str] = []
    for name, info in test.items():
        runs: Mapping[str, Mapping[str, float]] = info["runs"]
        recall = next((k for k in next(iter(runs.values()), {}) if k.startswith("Recall@")), None)
        metrics = (*_METRICS, *((recall,) if recall else ()))
        lines += [
            f"**{name}** — {info['n_queries']} queries, dense top-{info['top_k']}, "
            f"top-{info['top_n']} reranked at max_length {info['max_length']} "
            f"({info['truncated_documents']} documents truncated); fused = "
            "0.5·minmax(cross-encoder) + 0.5·minmax(dense)",
            "",
            "| run | " + " | ".join(metrics) + " |",
            "|---" * (len(metrics) + 1) + "|",
        ]
        for run in _RUNS:
            if run in runs:
                values = [_num(float(runs[run].get(m, math.nan))) for m in metrics]
                lines.append(f"| {run} | " + " | ".join(values) + " |")
        lines.append("")
    return lines


def render_card(result: TrainResult) -> str:
    """The model card's Markdown."""
    cfg = result.config.to_dict()
    name = result.output.name
    losses = result.loss_history
    loss_line = (
        f"training loss {losses[0][1]:.4f} (step {losses[0][0]}) → {losses[-1][1]:.4f} "
        f"(step {losses[-1][0]})"
        if losses
        else "no training loss was logged"
    )
    stop = "stopped by the time budget" if result.stopped_by_budget else "ran to its last step"
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: text-ranking",
        "tags: [cross-encoder, reranker, crossrank]",
        "---",
        "",
        f"# {name}: a cross-encoder reranker trained with `crossrank train`",
        "",
        "```python",
        "from crossrank import Reranker",
        f'reranker = Reranker("{result.output}")',
        "# or: sentence_transformers.CrossEncoder(<this folder>)",
        "```",
        "",
        "## Training",
        "",
        f"- backbone: `{result.backbone}` (one-logit head, sigmoid activation at inference)",
        f"- hard negatives mined with the dense retriever `{result.retriever}`",
        "- training groups: "
        + ", ".join(f"{src} {n:,}" for src, n in result.sources.items())
        + f" ({sum(result.sources.values()):,} in all)",
        f"- device: {result.device}{' (bf16)' if result.bf16 else ' (fp32)'}; data preparation "
        f"{_minutes(result.prepare_seconds)}, training {_minutes(result.train_seconds)} "
        f"(wall clock, dev evaluations included)",
        f"- {result.steps} optimizer steps of {result.max_steps} planned "
        f"({result.epochs:.2f} epochs), {stop}; {loss_line}",
        "",
        *_settings_table(cfg),
        "",
    ]
    if result.dev_history:
        sets = ", ".join(f"{k} ({v} queries)" for k, v in result.dev_queries.items())
        lines += [
            "## Dev evaluation during training",
            "",
            f"Dev sets: {sets}; dense top-{cfg['eval_top_k']}, top-{cfg['eval_top_n']} "
            f"reranked at the training max_length, averaged over the sets. The kept "
            f"checkpoint is the one with the best reranked NDCG@10 (step {result.best_step}).",
            "",
            *_dev_table(result),
            "",
        ]
    if result.test:
        lines += [
            "## Test evaluation (the saved model through `crossrank.Reranker`)",
            "",
            *_test_tables(result.test),
        ]
    if result.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in result.notes], ""]
    return "\n".join(lines).rstrip() + "\n"


def write_card(result: TrainResult) -> Path:
    """Write ``README.md`` and ``training.json`` into the model folder; return the card."""
    card = result.output / "README.md"
    card.write_text(render_card(result), encoding="utf-8")
    data = json.dumps(result_to_dict(result), indent=2, sort_keys=False)
    (result.output / "training.json").write_text(data + "\n", encoding="utf-8")
    return card
