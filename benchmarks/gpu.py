"""GPU throughput and latency of the engine against ``CrossEncoder.predict``, in one command.

Pairs are SciFact test claims with corpus abstracts (cycled to the sizes asked for), scored at
``--max-length`` (512) in bf16 and fp16 by the engine (``rerank_many``: one length-sorted pass
with the device's token budget) and by ``CrossEncoder.predict`` (batch_size=32, its default)
in the same dtype. Then per-query latency p50/p95 for ``--candidates`` (100) documents per
query, both systems. Writes OUT.json and OUT.md and prints the table.

    python benchmarks/gpu.py --out reports/gpu                 # on a CUDA machine
    python benchmarks/gpu.py --device cpu --quick --out /tmp/gpu-smoke   # smoke test anywhere

``--quick`` shrinks every size (for the CPU smoke test and a first look); the full run scores
1k, 10k and 100k pairs per dtype and system, a few minutes on a recent data-centre GPU.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from crossrank.paths import shared_data_dir, shared_starter_dir

FULL_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (32,)


def _texts(data: Path, quick: bool) -> tuple[list[str], list[str]]:
    """SciFact test claims and corpus abstracts; short synthetic text if the data is absent."""
    from crossrank.data import load_beir

    try:
        collection = load_beir(data, split="test")
    except Exception as exc:  # noqa: BLE001 - the smoke test runs without the collection too
        print(f"no collection at {data} ({exc}); using synthetic text", file=sys.stderr)
        words = "protein cell gene vitamin cancer risk trial patients blood mice".split()
        docs = [" ".join(itertools.islice(itertools.cycle(words), i, i + 60)) for i in range(64)]
        return [" ".join(words[i : i + 4]) for i in range(6)], docs
    queries = [q.text for q in collection.judged_queries(50 if not quick else 4)]
    docs = [d.full_text for d in itertools.islice(collection.corpus.values(), 5000)]
    return queries, docs


def _pairs(queries: list[str], docs: list[str], n: int) -> list[tuple[str, str]]:
    return [(queries[i % len(queries)], docs[(i * 7919) % len(docs)]) for i in range(n)]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sentence_transformers import CrossEncoder

    from crossrank import Reranker

    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available here; use --device cpu (with --quick)")
    sizes = QUICK_SIZES if args.quick else tuple(int(s) for s in args.sizes.split(","))
    queries, docs = _texts(Path(args.data), args.quick)
    result: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
            "cpu_threads": torch.get_num_threads(),
        },
        "model": args.model,
        "max_length": args.max_length,
        "throughput": [],
        "latency": [],
    }
    for dtype in args.dtypes.split(","):
        torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
        engine = Reranker(
            args.model,
            device=device,
            dtype=torch_dtype,
            max_length=args.max_length,
            progress_threshold=None,
        )
        budget = engine._scorer.policy.token_budget
        st = CrossEncoder(
            args.model,
            device=device,
            max_length=args.max_length,
            model_kwargs={"dtype": torch_dtype},
        )
        warm = _pairs(queries, docs, min(64, max(sizes)))
        engine.score_pairs(warm)
        st.predict(warm)
        _sync(device)
        for n in sizes:
            pairs = _pairs(queries, docs, n)
            row: dict[str, Any] = {"dtype": dtype, "pairs": n, "token_budget": budget}
            for name in ("crossrank", "predict"):
                _sync(device)
                start = time.perf_counter()
                if name == "crossrank":
                    engine.score_pairs(pairs)
                else:
                    st.predict(pairs, batch_size=32)
                _sync(device)
                seconds = time.perf_counter() - start
                row[f"{name}_s"] = seconds
                row[f"{name}_pairs_per_s"] = n / seconds
            row["batches"] = engine.last_stats.batches
            row["ratio"] = row["crossrank_pairs_per_s"] / row["predict_pairs_per_s"]
            result["throughput"].append(row)
            print(
                f"{dtype} {n} pairs: crossrank {row['crossrank_pairs_per_s']:.0f} pairs/s, "
                f"predict {row['predict_pairs_per_s']:.0f} pairs/s",
                file=sys.stderr,
            )
        k = args.candidates if not args.quick else 8
        n_queries = args.latency_queries if not args.quick else 3
        times: dict[str, list[float]] = {"crossrank": [], "predict": []}
        for qi in range(n_queries):
            query = queries[qi % len(queries)]
            cands = [docs[(qi * 131 + j * 17) % len(docs)] for j in range(k)]
            for name in ("crossrank", "predict"):
                _sync(device)
                start = time.perf_counter()
                if name == "crossrank":
                    engine.rerank(query, cands)
                else:
                    st.predict([(query, d) for d in cands])
                _sync(device)
                times[name].append((time.perf_counter() - start) * 1000)
        for name, ms in times.items():
            result["latency"].append(
                {
                    "system": name,
                    "dtype": dtype,
                    "candidates": k,
                    "queries": n_queries,
                    "p50_ms": statistics.median(ms),
                    "p95_ms": _percentile(ms, 95),
                    "token_budget": budget if name == "crossrank" else None,
                }
            )
        del engine, st
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        f"model `{result['model']}`, max_length={result['max_length']}, "
        f"{result['machine']['device']}, torch {result['machine']['torch']}",
        "",
        "| dtype | pairs | token budget | crossrank pairs/s | predict pairs/s | × predict |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["throughput"]:
        lines.append(
            f"| {r['dtype']} | {r['pairs']} | {r['token_budget']} | "
            f"{r['crossrank_pairs_per_s']:.0f} | {r['predict_pairs_per_s']:.0f} | "
            f"{r['ratio']:.2f} |"
        )
    lines += [
        "",
        "| dtype | system | candidates | p50 ms/query | p95 ms/query |",
        "|---|---|---:|---:|---:|",
    ]
    for r in result["latency"]:
        lines.append(
            f"| {r['dtype']} | {r['system']} | {r['candidates']} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("CROSSRANK_RERANKER"))
    parser.add_argument("--data", default=str(shared_data_dir() / "scifact"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", default="bf16,fp16", help="comma-separated: bf16,fp16,fp32")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--sizes", default=",".join(map(str, FULL_SIZES)))
    parser.add_argument("--candidates", type=int, default=100, help="per query, for latency")
    parser.add_argument("--latency-queries", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--out", default="reports/gpu", help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    args.model = args.model or str(shared_starter_dir())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")

    result = run(args)
    text = table(result)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
