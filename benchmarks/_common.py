"""Shared set-up for the benchmarks: SciFact test queries with dense top-k candidates."""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crossrank.data import load_beir
from crossrank.paths import shared_data_dir, shared_starter_dir
from crossrank.retrieval.cache import cached_retriever

STARTER = shared_starter_dir()


@dataclass
class Workload:
    queries: list[str]
    query_ids: list[str]
    candidates: list[list[str]]
    candidate_ids: list[list[str]]
    dense_scores: list[list[float]]


def add_workload_args(parser: argparse.ArgumentParser, *, queries: int, top_k: int) -> None:
    parser.add_argument("--data", default=str(shared_data_dir() / "scifact"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--queries", type=int, default=queries, help="number of queries")
    parser.add_argument("--top-k", type=int, default=top_k, help="candidates per query")
    parser.add_argument("--model", default=os.environ.get("CROSSRANK_RERANKER", str(STARTER)))


def load_workload(args: argparse.Namespace) -> Workload:
    collection = load_beir(args.data, split=args.split)
    retriever, _ = cached_retriever(collection)
    queries = collection.judged_queries(args.queries)
    hits = retriever.search_batch([q.text for q in queries], top_k=args.top_k)
    return Workload(
        queries=[q.text for q in queries],
        query_ids=[q.id for q in queries],
        candidates=[[h.text for h in row] for row in hits],
        candidate_ids=[[h.id for h in row] for row in hits],
        dense_scores=[[h.score for h in row] for row in hits],
    )


def write_json_atomically(path: Path, data: Any, *, indent: int | None = None) -> None:
    """Write ``data`` as JSON to ``path`` through a staging file of this process, so that a
    run killed mid-write, or another run writing at once, leaves a whole file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps(data, indent=indent))
    os.replace(staging, path)


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    )


class TokenCounter:
    """Counts real and padded tokens entering a model's forward pass.

    It watches the embedding layer (always called as a module, where some libraries call the
    model's ``forward`` directly, past the hooks) and counts non-padding ids as real tokens.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.real = 0
        self.padded = 0
        self.pad_id = model.config.pad_token_id or 0
        embeddings = model.base_model.embeddings
        self._handle = embeddings.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module: object, args: tuple, kwargs: dict) -> None:  # type: ignore[type-arg]
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return
        self.real += int((ids != self.pad_id).sum())
        self.padded += int(ids.numel())

    def reset(self) -> None:
        self.real = self.padded = 0

    @property
    def efficiency(self) -> float:
        return self.real / self.padded if self.padded else float("nan")

    def close(self) -> None:
        self._handle.remove()
