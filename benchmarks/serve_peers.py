"""`crossrank serve` against peers on the same model folder, machine and load.

Peers: infinity-emb (a Python reranking server, run from its own virtualenv because its pins
clash with this project's: sentence-transformers<4, numpy<2) and a plain FastAPI endpoint
that calls ``CrossEncoder.predict`` per request (the usual hand-written service). Each gets
the same requests (SciFact corpus texts, 20-100 per request) from the same asyncio + httpx
client; reported: pairs/s, p50/p95 latency, errors, and agreement with the in-process engine
(same top-1 and max score difference).

    python -m venv .cache/peers-venv
    .cache/peers-venv/bin/pip install -c constraints.txt torch "infinity-emb[server,torch]==0.0.78"
    .venv/bin/python benchmarks/serve_peers.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import free_port, pct, proc_cpu, workload

from crossrank import Reranker
from crossrank.paths import shared_data_dir, shared_starter_dir

PEERS_VENV = Path(__file__).resolve().parents[1] / ".cache" / "peers-venv"

PLAIN_SERVER = """
import sys
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from sentence_transformers import CrossEncoder

model = CrossEncoder(sys.argv[1], device="cpu", max_length=int(sys.argv[3]))
app = FastAPI()

class Request(BaseModel):
    query: str
    texts: list[str]

@app.get("/health")
def health():
    return {"status": "ok"}

@app.post("/rerank")
def rerank(request: Request):
    scores = model.predict([(request.query, t) for t in request.texts], show_progress_bar=False)
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    return [{"index": i, "score": float(scores[i])} for i in order]

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


class Peer:
    def __init__(
        self,
        name: str,
        cmd: list[str],
        ready: str,
        path: str,
        body: Callable[[str, list[str]], dict[str, Any]],
        scores: Callable[[Any], dict[int, float]],
    ) -> None:
        self.name, self.cmd, self.ready, self.path, self.body, self.scores = (
            name,
            cmd,
            ready,
            path,
            body,
            scores,
        )


def peers(args: argparse.Namespace) -> list[Peer]:
    model, length = args.model, str(args.max_length)
    out = [
        Peer(
            "crossrank serve (/v2/rerank)" + ("" if backend == "torch" else f", {backend}"),
            [
                sys.executable,
                "-m",
                "crossrank.cli",
                "serve",
                "--model",
                model,
                "--port",
                "{port}",
                "--max-length",
                length,
                "--max-queue",
                "1024",
                "--backend",
                backend,
            ],
            "/ready",
            "/v2/rerank",
            lambda q, d: {"model": "m", "query": q, "documents": d},
            lambda b: {r["index"]: r["relevance_score"] for r in b["results"]},
        )
        for backend in args.backends.split(",")
    ]
    out += [
        Peer(
            "plain FastAPI + CrossEncoder.predict per request",
            [sys.executable, "-c", PLAIN_SERVER, model, "{port}", length],
            "/health",
            "/rerank",
            lambda q, d: {"query": q, "texts": d},
            lambda b: {r["index"]: r["score"] for r in b},
        ),
    ]
    infinity = PEERS_VENV / "bin" / "infinity_emb"
    if infinity.exists():
        out.append(
            Peer(
                "infinity-emb 0.0.78 (torch)",
                [
                    str(infinity),
                    "v2",
                    "--model-id",
                    model,
                    "--port",
                    "{port}",
                    "--engine",
                    "torch",
                    "--device",
                    "cpu",
                    "--batch-size",
                    "32",
                    "--no-bettertransformer",
                ],
                "/health",
                "/rerank",
                lambda q, d: {"model": model, "query": q, "documents": d},
                lambda b: {r["index"]: r["relevance_score"] for r in b["results"]},
            )
        )
    else:
        print(f"infinity-emb not found in {PEERS_VENV}; install it there (see the docstring)")
    return out


def start(peer: Peer) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in peer.cmd]
    log = open(f"/tmp/serve_peers_{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "CROSSRANK_API_KEY": "",
            "INFINITY_ANONYMOUS_USAGE_STATS": "0",
            "HF_HUB_OFFLINE": "1",
            "DO_NOT_TRACK": "1",
        },
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{peer.name} exited with {process.returncode}; see {log.name}")
        try:
            if httpx.get(url + peer.ready, timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{peer.name} did not become ready; see {log.name}")


async def load(
    peer: Peer, url: str, qs: list[str], docs: list[list[str]], clients: int, pid: int
) -> dict[str, Any]:
    gate = asyncio.Semaphore(clients)
    latencies: list[float] = []
    answers: list[dict[int, float] | None] = [None] * len(qs)
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=1200, limits=limits) as client:

        async def one(i: int) -> None:
            nonlocal errors
            async with gate:
                start = time.perf_counter()
                try:
                    response = await client.post(peer.path, json=peer.body(qs[i], docs[i]))
                except httpx.TransportError:
                    errors += 1
                    return
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors += 1
                    return
                answers[i] = peer.scores(response.json())

        await client.post(peer.path, json=peer.body(qs[0], docs[0][:8]))  # warm-up
        c0, s0, t0 = time.process_time(), proc_cpu(pid), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(len(qs))))
        wall = time.perf_counter() - t0
        return {
            "wall": wall,
            "latencies": latencies,
            "answers": answers,
            "errors": errors,
            "client_cpu": time.process_time() - c0,
            "server_cpu": proc_cpu(pid) - s0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=os.environ.get("CROSSRANK_RERANKER", str(shared_starter_dir()))
    )
    parser.add_argument("--data", default=str(shared_data_dir() / "scifact"))
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--min-docs", type=int, default=20)
    parser.add_argument("--max-docs", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backends",
        default="torch,openvino",
        help="crossrank serve --backend values to run, comma-separated (fp32: torch, openvino)",
    )
    args = parser.parse_args()

    qs, docs = workload(args)
    n_pairs = sum(map(len, docs))
    engine = Reranker(args.model, max_length=args.max_length, progress_threshold=None)
    t0 = time.perf_counter()
    reference = [{r.index: r.score for r in rs} for rs in engine.rerank_many(qs, docs)]
    in_process = n_pairs / (time.perf_counter() - t0)

    rows = []
    for peer in peers(args):
        try:
            process, url = start(peer)
        except RuntimeError as exc:
            rows.append(f"| {peer.name} | could not run: {exc} | | | | | | |")
            continue
        try:
            r = asyncio.run(load(peer, url, qs, docs, args.clients, process.pid))
        finally:
            process.terminate()
            process.wait(timeout=120)
        answered = [(a, ref) for a, ref in zip(r["answers"], reference) if a is not None]
        same_top1 = sum(
            max(a, key=a.__getitem__) == max(ref, key=ref.__getitem__) for a, ref in answered
        )
        diff = max(
            (abs(a[i] - ref[i]) for a, ref in answered for i in ref if i in a), default=float("nan")
        )
        pairs_ok = sum(len(docs[i]) for i, a in enumerate(r["answers"]) if a is not None)
        share = r["client_cpu"] / max(r["client_cpu"] + r["server_cpu"], 1e-9)
        rows.append(
            f"| {peer.name} | {pairs_ok / r['wall']:.0f} | {pairs_ok / r['wall'] / in_process:.2f}× | "
            f"{pct(r['latencies'], 50) * 1000:.0f} ms | {pct(r['latencies'], 95) * 1000:.0f} ms | {r['errors']} | "
            f"{same_top1}/{len(answered)}, {diff:.1e} | {share:.0%} |"
        )

    print(
        f"## serving peers: {args.requests} requests of {args.min_docs}-{args.max_docs} SciFact texts, "
        f"{args.clients} concurrent clients, max_length {args.max_length}, {n_pairs} pairs, "
        f"{os.cpu_count()} CPU cores (load average {os.getloadavg()[0]:.1f})\n"
    )
    print(
        "| server | pairs/s | vs in-process | p50 | p95 | errors | same top-1, max score diff | client CPU share |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| in-process `rerank_many` | {in_process:.0f} | 1.00× | | | | | |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
