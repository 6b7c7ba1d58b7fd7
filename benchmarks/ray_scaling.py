"""Scale-out on Ray: the batch job (1 and 2 workers) and the Serve deployment (1 and 2
replicas) against the in-process engine, on SciFact test queries with dense top-k candidates.

Batch: pairs/s of ``rerank_batch`` end to end (Ray already running; the workers' start-up
and model load included) and inside the workers (the sum of shard times), against one
in-process ``Reranker.rerank_many`` pass over the same rows. Ray's overhead at one worker is
``1 - job/in-process``. Every run's output is checked against the in-process scores (1e-5).

Serve: ``--clients`` concurrent HTTP clients send ``--requests`` Cohere-style rerank requests
(one query, its ``--serve-docs`` candidates) to the single-process service and to Ray Serve
with 1 and 2 engine replicas; requests/s, pairs/s, p50/p95 latency. The CPUs of the machine are
split evenly among replicas (2 cores: one replica of 2 CPUs, or two of 1).

    .venv/bin/python benchmarks/ray_scaling.py                 # starter model, 2 local CPUs
    .venv/bin/python benchmarks/ray_scaling.py --skip-serve --queries 300 --top-k 100
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import add_workload_args, load_workload, machine

from crossrank import Reranker
from crossrank.jobs import read_ranked, rerank_batch, write_candidates
from crossrank.serving import ServeConfig, running_server


def load_avg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def batch(args: argparse.Namespace, workdir: Path) -> None:
    import ray
    import torch

    work = load_workload(args)
    rows = [
        {
            "query_id": qid,
            "query": q,
            "doc_ids": ids,
            "texts": texts,
            "retrieval_scores": [float(s) for s in dense],
        }
        for qid, q, ids, texts, dense in zip(
            work.query_ids, work.queries, work.candidate_ids, work.candidates, work.dense_scores
        )
    ]
    source = write_candidates(workdir / "candidates.parquet", rows)
    n_pairs = sum(len(r["texts"]) for r in rows)
    engine = {"max_length": args.max_length} if args.max_length else {}
    torch.set_num_threads(args.cpus)
    reranker = Reranker(args.model, progress_threshold=None, **engine)
    reranker.rerank_many(work.queries[:2], [c[:8] for c in work.candidates[:2]])  # warm-up
    started = time.perf_counter()
    expected = reranker.rerank_many(work.queries, work.candidates)
    in_process = n_pairs / (time.perf_counter() - started)
    want = {
        qid: {ids[r.index]: r.rerank_score for r in res}
        for qid, ids, res in zip(work.query_ids, work.candidate_ids, expected)
    }
    print(f"\n## Batch: {len(rows)} queries x top-{args.top_k} = {n_pairs} pairs, {args.model}")
    print(f"load before: {load_avg()}")
    print("| run | pairs/s end to end | pairs/s in workers | vs in-process | max |diff| |")
    print("|---|---:|---:|---:|---:|")
    print(f"| in-process rerank_many ({args.cpus} threads) | {in_process:,.0f} | | 1.00x | |")
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        for workers in (1, 2):
            out = workdir / f"out-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            report = rerank_batch(
                source,
                out,
                model=args.model,
                workers=workers,
                cpus_per_worker=args.cpus / workers,
                batch_rows=args.batch_rows,
                reranker_kwargs=engine,
                show_progress=False,
            )
            table = read_ranked(out)
            diff = max(
                abs(s - want[qid][d])
                for qid, ids, scores in zip(
                    table.column("query_id").to_pylist(),
                    table.column("doc_ids").to_pylist(),
                    table.column("rerank_scores").to_pylist(),
                )
                for d, s in zip(ids, scores)
            )
            inner = n_pairs / (report.worker_seconds / workers)
            print(
                f"| rerank_batch, {workers} worker(s) x {args.cpus / workers:g} CPU | "
                f"{report.pairs_per_second:,.0f} | {inner:,.0f} | "
                f"{report.pairs_per_second / in_process:.2f}x | {diff:.1e} |"
            )
    finally:
        ray.shutdown()
    print(f"load after: {load_avg()}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_test(url: str, bodies: list[dict], clients: int) -> tuple[float, list[float], int]:  # type: ignore[type-arg]
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    local = threading.local()

    def call(body: dict) -> None:  # type: ignore[type-arg]
        nonlocal failures
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=300)
        t0 = time.perf_counter()
        response = local.client.post(f"{url}/v2/rerank", json=body)
        with lock:
            latencies.append(time.perf_counter() - t0)
            failures += response.status_code != 200

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(call, bodies))
    return time.perf_counter() - started, latencies, failures


def serve_runs(args: argparse.Namespace) -> None:
    import ray
    from ray import serve

    from crossrank.serving.ray import APP_NAME, RayServeOptions, build_application

    work = load_workload(args)
    bodies = [
        {
            "query": work.queries[i % len(work.queries)],
            "documents": work.candidates[i % len(work.candidates)][: args.serve_docs],
        }
        for i in range(args.requests)
    ]
    n_pairs = sum(len(b["documents"]) for b in bodies)
    print(
        f"\n## Serve: {args.requests} requests x {args.serve_docs} docs ({n_pairs} pairs), "
        f"{args.clients} concurrent clients, {args.model}"
    )
    print(f"load before: {load_avg()}")
    print("| service | requests/s | pairs/s | p50 ms | p95 ms | failed |")
    print("|---|---:|---:|---:|---:|---:|")

    def row(name: str, wall: float, latencies: list[float], failed: int) -> None:
        q = statistics.quantiles(latencies, n=20)
        print(
            f"| {name} | {len(latencies) / wall:.1f} | {n_pairs / wall:,.0f} | "
            f"{statistics.median(latencies) * 1000:.0f} | {q[18] * 1000:.0f} | {failed} |"
        )

    config = ServeConfig(model=args.model, max_length=args.max_length, port=0, max_queue=1024)
    import torch

    torch.set_num_threads(args.cpus)
    with running_server(config) as url:
        load_test(url, bodies[: args.clients], args.clients)  # warm-up
        row("crossrank serve (1 process)", *load_test(url, bodies, args.clients))
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        for replicas in (1, 2):
            port = free_port()
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            cfg = ServeConfig(
                model=args.model, max_length=args.max_length, port=port, max_queue=1024
            )
            options = RayServeOptions(replicas=replicas, cpus_per_replica=args.cpus / replicas)
            serve.run(build_application(cfg, options), name=APP_NAME, route_prefix="/")
            url = f"http://127.0.0.1:{port}"
            load_test(url, bodies[: args.clients], args.clients)  # warm-up
            name = f"Ray Serve, {replicas} replica(s) x {args.cpus / replicas:g} CPU"
            row(name, *load_test(url, bodies, args.clients))
            serve.shutdown()
    finally:
        ray.shutdown()
    print(f"load after: {load_avg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(parser, queries=100, top_k=50)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs for Ray and in-process")
    parser.add_argument("--batch-rows", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--serve-docs", type=int, default=20)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}; {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_batch:
            batch(args, Path(tmp))
        if not args.skip_serve:
            serve_runs(args)


if __name__ == "__main__":
    main()
