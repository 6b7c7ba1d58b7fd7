"""The service on Ray Serve (a local Ray instance, two engine replicas) against the
single-process service, and a replica killed under load."""

from __future__ import annotations

import concurrent.futures
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray_support import build_tiny_text_cross_encoder

pytest.importorskip("ray")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from crossrank.serving import ServeConfig, running_server  # noqa: E402
from crossrank.serving.ray import APP_NAME, RayServeOptions, build_application  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MAX_LENGTH = 128


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return build_tiny_text_cross_encoder(tmp_path_factory.mktemp("tiny-text-ce"), minilm_path)


@pytest.fixture(scope="module")
def requests(shared_data: Path) -> list[dict[str, Any]]:
    """60 SciFact queries, each with 40 abstracts (real text, some longer than MAX_LENGTH)."""
    from crossrank.data import load_beir

    collection = load_beir(shared_data / "scifact", "test")
    docs = [d.full_text for d in collection.corpus.values()]
    return [
        {"query": q.text, "documents": docs[i * 7 : i * 7 + 40], "top_n": 5 + i % 10}
        for i, q in enumerate(collection.judged_queries(60))
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def single(model: Path) -> Iterator[str]:
    """The single-process service (``crossrank serve``) on a loopback port."""
    with running_server(ServeConfig(model=str(model), max_length=MAX_LENGTH, port=0)) as url:
        yield url


@pytest.fixture(scope="module")
def replicated(model: Path) -> Iterator[str]:
    """The same service on Ray Serve: two engine replicas behind one HTTP endpoint."""
    import ray
    from ray import serve

    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        config = ServeConfig(model=str(model), max_length=MAX_LENGTH, port=port)
        options = RayServeOptions(replicas=2, cpus_per_replica=0.5)
        serve.run(build_application(config, options), name=APP_NAME, route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def engine_replicas() -> list[str]:
    import ray

    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if "CrossrankEngine" in a["name"] and a["namespace"] == "serve"
    )


def ranked(body: dict[str, Any]) -> list[tuple[int, float, bool]]:
    return [(r["index"], r["relevance_score"], r["truncated"]) for r in body["results"]]


def assert_same(got: list[tuple[int, float, bool]], want: list[tuple[int, float, bool]]) -> None:
    assert [(i, t) for i, _, t in got] == [(i, t) for i, _, t in want]
    assert [s for _, s, _ in got] == pytest.approx([s for _, s, _ in want], abs=1e-5)


def test_two_replicas_answer_like_the_single_process_service(
    single: str, replicated: str, requests: list[dict[str, Any]]
) -> None:
    assert len(engine_replicas()) == 2
    with httpx.Client(timeout=120) as client:
        for body in requests[:12]:
            want = client.post(f"{single}/v2/rerank", json=body)
            got = client.post(f"{replicated}/v2/rerank", json=body)
            assert (want.status_code, got.status_code) == (200, 200), got.text
            assert_same(ranked(got.json()), ranked(want.json()))
            assert got.json()["meta"] == want.json()["meta"]
        tei = {"query": requests[0]["query"], "texts": requests[0]["documents"], "raw_scores": True}
        want_tei = client.post(f"{single}/rerank", json=tei).json()
        got_tei = client.post(f"{replicated}/rerank", json=tei).json()
        assert [r["index"] for r in got_tei] == [r["index"] for r in want_tei]
        assert [r["score"] for r in got_tei] == pytest.approx(
            [r["score"] for r in want_tei], abs=1e-5
        )
        # Errors and limits are the service's own.
        bad = {"query": "q", "documents": "x"}
        assert client.post(f"{replicated}/v2/rerank", json=bad).status_code == 422
        assert client.post(f"{single}/v2/rerank", json=bad).status_code == 422
        info = client.get(f"{replicated}/info").json()
        want_info = client.get(f"{single}/info").json()
        for key in ("model", "max_length", "backend", "device", "dtype", "activation"):
            assert info[key] == want_info[key]
        assert client.get(f"{replicated}/ready").json() == {"status": "ready"}
        metrics = client.get(f"{replicated}/metrics").text
        assert 'crossrank_requests_total{path="/v2/rerank",status="200"}' in metrics


def engine_retries(url: str) -> float:
    """The ingress's count of requests it sent again because their engine replica died."""
    with httpx.Client(timeout=60) as client:
        metrics = client.get(f"{url}/metrics").text
    (line,) = [x for x in metrics.splitlines() if x.startswith("crossrank_engine_retries_total")]
    return float(line.split()[-1])


def wait_for_two_engine_replicas(timeout: float = 180) -> list[str]:
    """The two live engine replicas, once Serve has replaced a killed one."""
    from ray import serve

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = serve.status().applications[APP_NAME].deployments["CrossrankEngine"]
        running = status.replica_states.get("RUNNING", 0)
        replicas = engine_replicas()
        if status.status == "HEALTHY" and running == 2 and len(replicas) == 2:
            return replicas
        time.sleep(0.2)
    raise AssertionError(f"Serve did not bring back two engine replicas in {timeout} s")


def load_with_a_kill(
    url: str, requests: list[dict[str, Any]], victim: str
) -> list[tuple[int, int, list[tuple[int, float, bool]] | str]]:
    """Send every request, 12 at a time, and kill ``victim`` while they run.

    A replica answers the requests it holds all at once (its coalescer batches them), so
    the kill waits a moment after the 10th answer: were it to follow an answer at once, it
    would often fall in the instant the replica that just answered holds nothing.
    """
    import ray

    answered: list[int] = []
    lock = threading.Lock()

    def call(i: int) -> tuple[int, int, list[tuple[int, float, bool]] | str]:
        with httpx.Client(timeout=120) as client:  # no client-side retries
            response = client.post(f"{url}/v2/rerank", json=requests[i])
        with lock:
            answered.append(i)
        body = ranked(response.json()) if response.status_code == 200 else response.text
        return i, response.status_code, body

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(call, i) for i in range(len(requests))]
        deadline = time.monotonic() + 300
        while len(answered) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        in_flight = len(requests) - len(answered)
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        results = [f.result(timeout=600) for f in futures]
    assert in_flight > 12  # the kill happened mid-run
    return results


def test_a_replica_killed_under_load_loses_no_request(
    single: str, replicated: str, requests: list[dict[str, Any]]
) -> None:
    with httpx.Client(timeout=120) as client:
        want = [ranked(client.post(f"{single}/v2/rerank", json=b).json()) for b in requests]
    # Each round kills one replica mid-run and every request must come back whole. The
    # victim may, by chance, hold no request at the kill; rounds go on (Serve replaces the
    # replica) until the ingress has resent at least one request, three rounds at most.
    for _ in range(3):
        victims = wait_for_two_engine_replicas()
        results = load_with_a_kill(replicated, requests, victims[0])
        assert sorted(i for i, _, _ in results) == list(range(len(requests)))
        for i, status, body in results:
            assert status == 200, body
            assert isinstance(body, list)
            assert_same(body, want[i])
        if engine_retries(replicated) >= 1:
            break
    # Requests in flight on a killed replica were resent by the ingress, not lost.
    assert engine_retries(replicated) >= 1
