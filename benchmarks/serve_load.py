"""Load on `crossrank serve` vs the in-process engine, on the same SciFact pairs.

64 concurrent clients (one asyncio process with httpx) send rerank requests of 20-100 SciFact
corpus texts to a server in a subprocess; every response is checked against the in-process
result (scores within 1e-5, sorted best first), then throughput (pairs/s) is compared with
in-process ``Reranker.rerank_many`` on the same pairs, with p50/p95 latency and the CPU share
the client process took. A second run with a small ``--max-queue`` overloads the server: the
full queue answers 429, every accepted request is answered, none is lost.

    .venv/bin/python benchmarks/serve_load.py            # the starter model, its max_length
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from crossrank import Reranker, load_beir
from crossrank.paths import shared_data_dir, shared_starter_dir


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    transport_errors: int = 0
    mismatches: int = 0
    wall: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    pairs_ok: int = 0


def workload(args: argparse.Namespace) -> tuple[list[str], list[list[str]]]:
    collection = load_beir(args.data, split="test")
    rng = random.Random(args.seed)
    texts = [d.full_text for d in collection.corpus.values()]
    queries = [q.text for q in collection.judged_queries()]
    qs = [queries[i % len(queries)] for i in range(args.requests)]
    docs = [rng.sample(texts, rng.randint(args.min_docs, args.max_docs)) for _ in qs]
    return qs, docs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(args: argparse.Namespace, max_queue: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "crossrank.cli",
        "serve",
        "--model",
        args.model,
        "--port",
        str(port),
        "--max-queue",
        str(max_queue),
    ]
    if args.max_length:
        cmd += ["--max-length", str(args.max_length)]
    process = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "CROSSRANK_API_KEY": ""},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit("server did not become ready")


def stop_server(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=120)


def matches(got: list[dict], want: dict[int, float]) -> bool:  # type: ignore[type-arg]
    scores = [r["relevance_score"] for r in got]
    return (
        sorted(r["index"] for r in got) == sorted(want)
        and all(abs(r["relevance_score"] - want[r["index"]]) <= 1e-5 for r in got)
        and scores == sorted(scores, reverse=True)
    )


async def load(
    url: str,
    qs: list[str],
    docs: list[list[str]],
    reference: list[dict[int, float]],
    clients: int,
    pid: int,
) -> Run:
    run = Run()
    gate = asyncio.Semaphore(clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def one(i: int) -> None:
            async with gate:
                start = time.perf_counter()
                try:
                    response = await client.post(
                        "/v2/rerank", json={"model": "m", "query": qs[i], "documents": docs[i]}
                    )
                except httpx.TransportError:
                    run.transport_errors += 1
                    return
                run.latencies.append(time.perf_counter() - start)
                run.statuses.append(response.status_code)
                if response.status_code == 200:
                    run.pairs_ok += len(docs[i])
                    if not matches(response.json()["results"], reference[i]):
                        run.mismatches += 1

        c0, s0, t0 = time.process_time(), proc_cpu(pid), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(len(qs))))
        run.wall = time.perf_counter() - t0
        run.client_cpu = time.process_time() - c0
        run.server_cpu = proc_cpu(pid) - s0
    return run


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=os.environ.get("CROSSRANK_RERANKER", str(shared_starter_dir()))
    )
    parser.add_argument("--data", default=str(shared_data_dir() / "scifact"))
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--min-docs", type=int, default=20)
    parser.add_argument("--max-docs", type=int, default=100)
    parser.add_argument(
        "--max-length", type=int, default=None, help="tokens per pair (the model's)"
    )
    parser.add_argument(
        "--overload-queue", type=int, default=8, help="--max-queue of the overload run (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    logging.getLogger("crossrank").setLevel(logging.ERROR)  # truncation is expected here
    qs, docs = workload(args)
    n_pairs = sum(map(len, docs))
    engine = Reranker(args.model, max_length=args.max_length, progress_threshold=None)
    engine.rerank(qs[0], docs[0][:8])  # warm-up
    # The server runs the model on a worker thread (the coalescer's executor); the in-process
    # baseline is timed there too, and on the main thread, and the faster one is the baseline
    # (on an oversubscribed CPU, torch's intra-op threads can be far slower from the main thread).
    t0 = time.perf_counter()
    many = engine.rerank_many(qs, docs)
    main_thread = time.perf_counter() - t0
    with ThreadPoolExecutor(1) as pool:
        t0 = time.perf_counter()
        pool.submit(engine.rerank_many, qs, docs).result()
        worker_thread = time.perf_counter() - t0
    in_process = min(main_thread, worker_thread)
    reference = [{r.index: r.score for r in results} for results in many]

    process, url = start_server(args, max_queue=max(256, args.clients))
    httpx.post(f"{url}/v2/rerank", json={"query": qs[0], "documents": docs[0][:8]}, timeout=120)
    run = asyncio.run(load(url, qs, docs, reference, args.clients, process.pid))
    metrics = httpx.get(f"{url}/metrics").text
    code = stop_server(process)

    def metric(name: str) -> float:
        return next(float(x.split()[-1]) for x in metrics.splitlines() if x.startswith(name + " "))

    passes = metric("crossrank_pass_pairs_count")
    print(
        f"## serve load: {args.requests} requests of {args.min_docs}-{args.max_docs} SciFact texts, "
        f"{args.clients} concurrent clients, max_length {engine.max_length}, {n_pairs} pairs, "
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the end\n"
    )
    print(
        "| path | pairs/s | vs in-process | p50 latency | p95 latency | errors | mismatches | client CPU share |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| in-process `rerank_many`, main thread | {n_pairs / main_thread:.0f} | "
        f"{main_thread and in_process / main_thread:.2f}× | | | | | |"
    )
    print(
        f"| in-process `rerank_many`, worker thread | {n_pairs / worker_thread:.0f} | "
        f"{in_process / worker_thread:.2f}× | | | | | |"
    )
    errors = run.transport_errors + sum(s != 200 for s in run.statuses)
    share = run.client_cpu / max(run.client_cpu + run.server_cpu, 1e-9)
    print(
        f"| `crossrank serve` (/v2/rerank) | {run.pairs_ok / run.wall:.0f} | "
        f"{(run.pairs_ok / run.wall) / (n_pairs / in_process):.2f}× | {pct(run.latencies, 50) * 1000:.0f} ms | "
        f"{pct(run.latencies, 95) * 1000:.0f} ms | {errors} | {run.mismatches} | {share:.0%} |"
    )
    print(
        f"\nengine passes: {passes:.0f} for {args.requests} requests "
        f"({metric('crossrank_pass_pairs_sum') / max(passes, 1):.0f} pairs per pass on average); "
        f"client CPU {run.client_cpu:.1f} s, server CPU {run.server_cpu:.1f} s over {run.wall:.1f} s; "
        f"server exit code after SIGTERM: {code}"
    )

    if args.overload_queue:
        process, url = start_server(args, max_queue=args.overload_queue)
        over = asyncio.run(load(url, qs, docs, reference, args.clients, process.pid))
        code = stop_server(process)
        ok = over.statuses.count(200)
        refused = over.statuses.count(429)
        other = len(over.statuses) - ok - refused
        print(
            f"\n## overload: --max-queue {args.overload_queue}, {args.clients} clients, no client retries\n"
        )
        print("| sent | 200 | 429 | other | transport errors | lost | mismatches | exit code |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {len(qs)} | {ok} | {refused} | {other} | {over.transport_errors} | "
            f"{len(qs) - len(over.statuses) - over.transport_errors} | {over.mismatches} | {code} |"
        )


if __name__ == "__main__":
    main()
