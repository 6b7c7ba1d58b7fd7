"""Engine throughput versus sentence-transformers' CrossEncoder.predict on the same model.

For each SciFact test query, the dense top-k candidates are scored by: the engine called per
query, the engine's ``rerank_many`` over all queries at once, and ``CrossEncoder.predict``
called per query with its default settings. Prints a Markdown table.

    .venv/bin/python benchmarks/engine_vs_st.py --queries 20 --top-k 50 --max-length 512
"""

from __future__ import annotations

import argparse
import logging
import time

import torch
from _common import TokenCounter, add_workload_args, load_workload, machine
from sentence_transformers import CrossEncoder

from crossrank import Reranker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(parser, queries=20, top_k=50)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--token-budget", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    work = load_workload(args)
    engine = Reranker(
        args.model,
        device="cpu",
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
    engine_tokens = TokenCounter(engine.cross_encoder.model)
    st_tokens = TokenCounter(st.model)
    pairs_per_query = [[(q, d) for d in docs] for q, docs in zip(work.queries, work.candidates)]
    n_pairs = sum(len(p) for p in pairs_per_query)

    # Warm-up (first calls allocate).
    engine.rerank(work.queries[0], work.candidates[0][:8])
    st.predict(pairs_per_query[0][:8])
    engine_tokens.reset()
    st_tokens.reset()

    t_engine = t_st = 0.0
    max_diff = 0.0
    engine_eff_tokens = [0, 0]
    for query, docs, pairs in zip(work.queries, work.candidates, pairs_per_query):
        start = time.perf_counter()
        results = engine.rerank(query, docs)
        t_engine += time.perf_counter() - start
        start = time.perf_counter()
        expected = st.predict(pairs)
        t_st += time.perf_counter() - start
        for r in results:
            if not r.truncated:
                max_diff = max(max_diff, abs(r.rerank_score - float(expected[r.index])))
    engine_eff_tokens = [engine_tokens.real, engine_tokens.padded]
    st_eff = st_tokens.efficiency
    engine_tokens.reset()
    start = time.perf_counter()
    many = engine.rerank_many(work.queries, work.candidates)
    t_many = time.perf_counter() - start
    many_eff = engine_tokens.efficiency
    assert sum(len(r) for r in many) == n_pairs

    rows = [
        ("CrossEncoder.predict, per query (batch_size=32)", t_st, st_eff),
        (
            "crossrank Reranker.rerank, per query",
            t_engine,
            engine_eff_tokens[0] / engine_eff_tokens[1],
        ),
        ("crossrank Reranker.rerank_many, all queries", t_many, many_eff),
    ]
    print(
        f"\nModel: {args.model}  max_length={args.max_length}  token_budget={engine._scorer.token_budget}"
    )
    print(
        f"Workload: {len(work.queries)} SciFact {args.split} queries x {args.top_k} dense candidates = {n_pairs} pairs"
    )
    print(f"Machine: {machine()}\n")
    print(
        "| method | seconds | pairs/s | ratio vs predict | padding efficiency (real/padded tokens) |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, seconds, eff in rows:
        print(
            f"| {name} | {seconds:.1f} | {n_pairs / seconds:.2f} | {t_st / seconds:.2f}x | {eff:.3f} |"
        )
    print(f"\nmax |score difference| vs predict on pairs that fit: {max_diff:.2e}")


if __name__ == "__main__":
    main()
