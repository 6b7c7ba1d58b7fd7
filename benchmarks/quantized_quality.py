"""Ranking quality of each CPU backend against torch fp32 on many queries (no timing).

peers.py reports NDCG@10 on the 10 queries it times; 10 queries are too few to tell a 0.01
difference from noise. This reranks the dense top-K of up to ``--queries`` SciFact test claims
(all 300 by default) with every backend asked for, in one ``rerank_many`` pass each, and prints
NDCG@10 and MRR@10 with the difference to the first backend (torch fp32 by default; OpenVINO
fp32 gives the same scores to 1e-5 several times faster), plus the largest |logit difference|
and the share of queries whose top-10 ranking changed.

    .venv/bin/python benchmarks/quantized_quality.py --queries 300 --top-k 50 --max-length 256 \
        --out reports/quality.json     # peers.py --quality reports/quality.json reads it
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

from _common import add_workload_args, load_workload, machine, write_json_atomically

from crossrank import Reranker
from crossrank.data import load_qrels
from crossrank.evaluation import compute_metrics


def save_quality(out: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``out``, keeping the backends an earlier run of the same workload
    measured there; a missing or damaged earlier file is replaced by this run's numbers."""
    try:
        old = json.loads(out.read_text())
    except (OSError, ValueError):
        old = {}
    same = ("queries", "top_k", "max_length", "reference")
    if isinstance(old, dict) and all(old.get(k) == data[k] for k in same):
        data = {**data, "ndcg@10": {**old.get("ndcg@10", {}), **data["ndcg@10"]}}
    write_json_atomically(out, data, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(parser, queries=300, top_k=50)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument(
        "--backends",
        default="torch,openvino,openvino-int8,onnx-int8",
        help="comma-separated, each backend[:dtype] (e.g. openvino-int8:bfloat16)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="save {backend: NDCG@10, ...} as JSON (peers.py --quality)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")

    work = load_workload(args)
    qrels = load_qrels(Path(args.data) / "qrels" / f"{args.split}.tsv")
    judged = {qid: qrels[qid] for qid in work.query_ids}
    dense = dict(zip(work.query_ids, work.candidate_ids))
    base = compute_metrics(judged, dense, recall_k=args.top_k).aggregate
    rows: list[tuple[str, float, float, float | None, float | None]] = [
        ("dense retrieval only", base["NDCG@10"], base["MRR@10"], None, None)
    ]
    reference: list[list[float]] | None = None
    ndcg_by_backend: dict[str, float] = {}
    ref_top: list[list[int]] | None = None
    for spec in args.backends.split(","):
        backend, _, dtype = spec.partition(":")  # e.g. "openvino-int8:bfloat16"
        engine = Reranker(
            args.model,
            device="cpu",
            backend=backend,
            dtype=dtype or "auto",
            max_length=args.max_length,
            activation="raw",
            progress_threshold=None,
        )
        start = time.perf_counter()
        results = engine.rerank_many(work.queries, work.candidates)
        seconds = time.perf_counter() - start
        scores = [[0.0] * len(r) for r in results]
        for qi, ranked in enumerate(results):
            for r in ranked:
                scores[qi][r.index] = r.score
        top = [[r.index for r in ranked[:10]] for ranked in results]
        runs = {
            qid: [work.candidate_ids[qi][r.index] for r in results[qi]]
            for qi, qid in enumerate(work.query_ids)
        }
        metrics = compute_metrics(judged, runs, recall_k=args.top_k).aggregate
        if reference is None:
            reference, ref_top = scores, top
            diff = changed = 0.0
        else:
            diff = max(abs(a - b) for s, r in zip(scores, reference) for a, b in zip(s, r))
            changed = sum(t != rt for t, rt in zip(top, ref_top or [])) / len(top)
        ndcg_by_backend[spec] = metrics["NDCG@10"]
        rows.append(
            (f"{spec} ({seconds:.0f} s)", metrics["NDCG@10"], metrics["MRR@10"], diff, changed)
        )
        print(f"{rows[-1]}", flush=True)

    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "queries": len(work.queries),
            "top_k": args.top_k,
            "max_length": args.max_length,
            "reference": args.backends.split(",")[0],
            "ndcg@10": ndcg_by_backend,
        }
        save_quality(args.out, data)
    ndcg0 = rows[1][1]
    print(
        f"\n{len(work.queries)} SciFact {args.split} queries x {args.top_k} dense candidates, "
        f"max_length={args.max_length}; model `{args.model}`; {machine()}\n"
    )
    first = args.backends.split(",")[0]
    print(f"| backend | NDCG@10 | Δ vs {first} | MRR@10 | max \\|Δ logit\\| | top-10 changed |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, ndcg, mrr, diff, changed in rows:
        delta = "—" if diff is None else f"{ndcg - ndcg0:+.4f}"
        print(
            f"| {name} | {ndcg:.4f} | {delta} | {mrr:.4f} | "
            f"{'—' if diff is None else f'{diff:.3f}'} | "
            f"{'—' if changed is None else f'{changed:.0%}'} |"
        )


if __name__ == "__main__":
    main()
