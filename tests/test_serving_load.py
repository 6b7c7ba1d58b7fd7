"""The service under (small, bounded) load and fault: coalesced concurrent requests equal the
engine's results, a full queue answers 429 and loses nothing, SIGTERM lets in-flight
requests finish and exits 0. Speed is measured in benchmarks/serve_load.py, not here."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from crossrank import Reranker
from crossrank.serving import ServeConfig, running_server

WORDS = "vitamin cancer risk cells gene protein blood mice human study effect levels".split()
MAX_LENGTH = 48


def _requests(
    n: int, seed: int, *, min_docs: int = 5, max_docs: int = 30
) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k))

    return [
        (
            text(rng.randint(2, 6)),
            [text(rng.randint(1, 60)) for _ in range(rng.randint(min_docs, max_docs))],
        )
        for _ in range(n)
    ]


async def _fire(
    url: str, requests: list[tuple[str, list[str]]], concurrency: int
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(query: str, docs: list[str]) -> httpx.Response:
            async with gate:
                return await client.post("/v2/rerank", json={"query": query, "documents": docs})

        return await asyncio.gather(*(one(q, d) for q, d in requests))


def _check_equal(
    response: httpx.Response, reference: Reranker, query: str, docs: list[str]
) -> None:
    assert response.status_code == 200, response.text
    """Same score per document (1e-5: coalesced batches pad differently), sorted best first;
    so the order equals the engine's up to near-ties."""
    got = response.json()["results"]
    want = {r.index: r.score for r in reference.rerank(query, docs)}
    assert sorted(r["index"] for r in got) == sorted(want)
    assert {r["index"]: r["relevance_score"] for r in got} == pytest.approx(want, abs=1e-5)
    scores = [r["relevance_score"] for r in got]
    assert scores == sorted(scores, reverse=True)


def test_concurrent_requests_share_batches_and_equal_the_engine(tiny_model: Path) -> None:
    reference = Reranker(tiny_model, max_length=MAX_LENGTH, overflow="chunk")
    requests = _requests(16, seed=1, max_docs=15)
    config = ServeConfig(model=str(tiny_model), port=0, max_length=MAX_LENGTH, overflow="chunk")
    with running_server(config) as url:
        responses = asyncio.run(_fire(url, requests, concurrency=8))
        metrics = httpx.get(f"{url}/metrics").text
    for response, (query, docs) in zip(responses, requests):
        _check_equal(response, reference, query, docs)
    passes = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("crossrank_pass_pairs_count")
    )
    assert 0 < passes < len(requests)  # pairs of different requests shared engine passes


def test_overload_answers_429_and_loses_no_accepted_request(tiny_model: Path) -> None:
    reference = Reranker(tiny_model, max_length=MAX_LENGTH)
    requests = _requests(32, seed=2, min_docs=40, max_docs=60)
    config = ServeConfig(model=str(tiny_model), port=0, max_length=MAX_LENGTH, max_queue=4)
    with running_server(config) as url:
        responses = asyncio.run(_fire(url, requests, concurrency=32))
        metrics = httpx.get(f"{url}/metrics").text
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 429}
    for response, (query, docs) in zip(responses, requests):
        if response.status_code == 200:
            _check_equal(response, reference, query, docs)
        else:
            assert response.headers["retry-after"] == "1"
    assert (
        f'crossrank_requests_total{{path="/v2/rerank",status="200"}} {float(codes.count(200))}'
        in metrics
    )
    assert (
        f'crossrank_requests_total{{path="/v2/rerank",status="429"}} {float(codes.count(429))}'
        in metrics
    )
    assert "crossrank_queue_depth 0.0" in metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"server exited early: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail("server did not become ready")


def test_sigterm_finishes_in_flight_requests_and_exits_0(tiny_model: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CROSSRANK_API_KEY": ""}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crossrank.cli",
            "serve",
            "--model",
            str(tiny_model),
            "--port",
            str(port),
            "--max-length",
            str(MAX_LENGTH),
            "--overflow",
            "chunk",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        _wait_ready(url, process)
        reference = Reranker(tiny_model, max_length=MAX_LENGTH, overflow="chunk")
        requests = _requests(6, seed=3, min_docs=30, max_docs=40)

        async def main() -> list[httpx.Response]:
            load = asyncio.ensure_future(_fire(url, requests, concurrency=6))
            async with httpx.AsyncClient(base_url=url, timeout=10) as probe:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    text = (await probe.get("/metrics")).text
                    depth = next(
                        float(x.split()[-1])
                        for x in text.splitlines()
                        if x.startswith("crossrank_queue_depth ")
                    )
                    if depth >= len(requests):
                        break
                    await asyncio.sleep(0.005)
            process.send_signal(signal.SIGTERM)
            return await load

        responses = asyncio.run(main())
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert code == 0, stderr
    assert "no API key configured: binding 127.0.0.1" in stderr
    for response, (query, docs) in zip(responses, requests):
        _check_equal(response, reference, query, docs)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)
