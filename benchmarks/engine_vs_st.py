"""Engine throughput versus sentence-transformers' CrossEncoder.predict on the same model,
on a quiet machine and while other CPU-bound processes compete for the cores.

For each SciFact test query, the dense top-k candidates are scored by the engine called per
query and by ``CrossEncoder.predict`` called per query with its default settings (the two take
turns, the first one alternating from query to query), then by the engine's ``rerank_many``
over all queries at once. Prints a Markdown table.

``--background-load N`` measures twice: first quiet, then while N busy processes (pure-Python
spin loops, one per process) occupy the cores. The load processes are started and stopped by
this script and end by themselves after ``--load-seconds`` in any case.

    .venv/bin/python benchmarks/engine_vs_st.py --queries 20 --top-k 50 --max-length 512
    .venv/bin/python benchmarks/engine_vs_st.py --queries 10 --background-load 2
"""

# ruff: noqa: I001 - crossrank is imported before torch on purpose (see below)
from __future__ import annotations

# crossrank before torch, as a service imports it: torch's OpenMP threads then sleep while they
# wait (OMP_WAIT_POLICY=PASSIVE unless set; run with OMP_WAIT_POLICY=ACTIVE to compare).
import crossrank

import argparse
import logging
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from _common import TokenCounter, add_workload_args, load_workload, machine
from sentence_transformers import CrossEncoder

Reranker = crossrank.Reranker

# One busy process: burns a core until its deadline (the script also stops it when done).
_SPIN = """
import sys, time
deadline = float(sys.argv[1])
x = 0
while time.time() < deadline:
    for i in range(100_000):
        x ^= i
"""


@contextmanager
def background_load(n: int, seconds: float) -> Any:
    """``n`` CPU-bound processes for the duration of the block (at most ``seconds``)."""
    deadline = str(time.time() + seconds)
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN, deadline]) for _ in range(n)]
    try:
        time.sleep(1.0 if n else 0.0)  # let the scheduler see them
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


@dataclass
class Phase:
    load: int
    t_engine: float
    t_st: float
    t_many: float
    engine_eff: float
    st_eff: float
    many_eff: float
    max_diff: float
    loadavg: tuple[float, float]


def measure(
    engine: Reranker,
    st: CrossEncoder,
    work: Any,
    st_tokens: TokenCounter,
) -> tuple[float, float, float, float, float, float, float]:
    pairs_per_query = [[(q, d) for d in docs] for q, docs in zip(work.queries, work.candidates)]
    real = padded = 0
    st_tokens.reset()
    t_engine = t_st = 0.0
    max_diff = 0.0
    for qi, (query, docs, pairs) in enumerate(zip(work.queries, work.candidates, pairs_per_query)):
        for turn in (0, 1) if qi % 2 == 0 else (1, 0):
            start = time.perf_counter()
            if turn == 0:
                results = engine.rerank(query, docs)
                t_engine += time.perf_counter() - start
                real += engine.last_stats.real_tokens
                padded += engine.last_stats.padded_tokens
            else:
                expected = st.predict(pairs)
                t_st += time.perf_counter() - start
        for r in results:
            if not r.truncated:
                max_diff = max(max_diff, abs(r.rerank_score - float(expected[r.index])))
    start = time.perf_counter()
    many = engine.rerank_many(work.queries, work.candidates)
    t_many = time.perf_counter() - start
    assert sum(len(r) for r in many) == sum(len(c) for c in work.candidates)
    many_eff = engine.last_stats.padding_efficiency
    return t_engine, t_st, t_many, real / padded, st_tokens.efficiency, many_eff, max_diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(parser, queries=20, top_k=50)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--token-budget", type=int, default=None)
    parser.add_argument("--backend", default="torch", help="engine backend (torch)")
    parser.add_argument("--dtype", default="float32", help="engine dtype for torch (float32)")
    parser.add_argument(
        "--background-load",
        type=int,
        default=0,
        metavar="N",
        help="also measure while N busy processes occupy the cores (default: quiet only)",
    )
    parser.add_argument(
        "--load-seconds", type=float, default=3600, help="the load processes' time limit"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    work = load_workload(args)
    engine = Reranker(
        args.model,
        device="cpu",
        dtype=args.dtype,
        backend=args.backend,
        max_length=args.max_length,
        token_budget=args.token_budget,
        progress_threshold=None,
    )
    st = CrossEncoder(
        args.model,
        device="cpu",
        max_length=args.max_length,
        model_kwargs={"dtype": torch.float32},
    )
    st_tokens = TokenCounter(st.model)
    n_pairs = sum(len(c) for c in work.candidates)
    # Warm-up (first calls allocate).
    engine.rerank(work.queries[0], work.candidates[0][:8])
    st.predict([(work.queries[0], d) for d in work.candidates[0][:8]])

    phases: list[Phase] = []
    for load in sorted({0, args.background_load}):
        with background_load(load, args.load_seconds):
            before = os.getloadavg()[0]
            numbers = measure(engine, st, work, st_tokens)
            after = os.getloadavg()[0]
        phases.append(Phase(load, *numbers, loadavg=(before, after)))
    st_tokens.close()

    print(
        f"\nModel: {args.model}  backend={engine.backend} dtype={engine.dtype} "
        f"max_length={args.max_length}  token_budget={engine._scorer.policy.token_budget}"
    )
    print(
        f"Workload: {len(work.queries)} SciFact {args.split} queries x {args.top_k} dense "
        f"candidates = {n_pairs} pairs"
    )
    print(f"Machine: {machine()}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}\n")
    print(
        "| background load | method | seconds | pairs/s | ratio vs predict | padding efficiency "
        "(real/padded tokens) | 1-min load avg before/after |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for ph in phases:
        label = "quiet" if ph.load == 0 else f"{ph.load} busy processes"
        rows = [
            ("CrossEncoder.predict, per query (batch_size=32)", ph.t_st, ph.st_eff),
            ("crossrank Reranker.rerank, per query", ph.t_engine, ph.engine_eff),
            ("crossrank Reranker.rerank_many, all queries", ph.t_many, ph.many_eff),
        ]
        for name, seconds, eff in rows:
            print(
                f"| {label} | {name} | {seconds:.1f} | {n_pairs / seconds:.2f} | "
                f"{ph.t_st / seconds:.2f}x | {eff:.3f} | "
                f"{ph.loadavg[0]:.1f} / {ph.loadavg[1]:.1f} |"
            )
    worst = max(ph.max_diff for ph in phases)
    print(f"\nmax |score difference| vs predict on pairs that fit: {worst:.2e}")


if __name__ == "__main__":
    main()
