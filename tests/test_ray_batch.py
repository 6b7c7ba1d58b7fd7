"""``crossrank rerank-batch`` on a local Ray instance: SciFact test, dense top-100, 300 queries.

The model is a tiny random cross-encoder (:mod:`ray_support`) so that 30,000 pairs run on two
shared CPU cores; what is checked is the job's plumbing (shards, actors, part files, resume),
whose scores must equal the engine's in-process ``rerank_many``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray_support import build_tiny_text_cross_encoder

pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from crossrank.errors import DataError, InvalidInputError  # noqa: E402
from crossrank.jobs import ranked_run, read_ranked, rerank_batch, write_candidates  # noqa: E402
from crossrank.jobs.candidates import finished_shards, part_path  # noqa: E402
from crossrank.types import RerankResult  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MAX_LENGTH = 128
TOP_K = 100
N_QUERIES = 300


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return build_tiny_text_cross_encoder(tmp_path_factory.mktemp("tiny-text-ce"), minilm_path)


@pytest.fixture(scope="module")
def candidates(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SciFact test's 300 judged queries with their dense (all-MiniLM-L6-v2) top-100."""
    from crossrank.data import load_beir
    from crossrank.retrieval import cached_retriever

    collection = load_beir(shared_data / "scifact", "test")
    retriever, _ = cached_retriever(collection, show_progress=False)
    queries = collection.judged_queries()
    assert len(queries) == N_QUERIES
    rows = []
    for query in queries:
        hits = retriever.search(query.text, top_k=TOP_K)
        rows.append(
            {
                "query_id": query.id,
                "query": query.text,
                "doc_ids": [h.id for h in hits],
                "texts": [h.text for h in hits],
                "retrieval_scores": [float(h.score) for h in hits],
            }
        )
    return write_candidates(tmp_path_factory.mktemp("candidates") / "scifact.parquet", rows)


@pytest.fixture(scope="module")
def expected(model: Path, candidates: Path) -> dict[str, list[RerankResult]]:
    """The in-process engine's rerank_many over the same rows, one pass (one thread)."""
    import torch

    from crossrank import Reranker

    rows = pq.read_table(candidates).to_pylist()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reranker = Reranker(str(model), max_length=MAX_LENGTH, progress_threshold=None)
        ranked = reranker.rerank_many(
            [r["query"] for r in rows],
            [r["texts"] for r in rows],
            retrieval_scores=[r["retrieval_scores"] for r in rows],
        )
    finally:
        torch.set_num_threads(threads)
    return {r["query_id"]: results for r, results in zip(rows, ranked)}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()


def check_output(out: Path, candidates: Path, expected: dict[str, list[RerankResult]]) -> None:
    """Rows in input order, each query once, every candidate kept with its id, scores equal
    to the in-process engine's (fp32, within 1e-5), ranked best first."""
    rows = pq.read_table(candidates).to_pylist()
    table = read_ranked(out)
    assert table.column("query_id").to_pylist() == [r["query_id"] for r in rows]
    for row, got in zip(rows, table.to_pylist()):
        want = expected[row["query_id"]]
        ids = row["doc_ids"]
        assert sorted(got["positions"]) == list(range(len(ids)))
        assert got["doc_ids"] == [ids[p] for p in got["positions"]]
        want_score = {ids[r.index]: r.rerank_score for r in want}
        for doc, score in zip(got["doc_ids"], got["rerank_scores"]):
            assert score == pytest.approx(want_score[doc], abs=1e-5)
        assert got["scores"] == sorted(got["scores"], reverse=True)
        # Same order as the engine's, up to swaps of candidates whose scores tie within 1e-5.
        for a, b in zip(got["doc_ids"], got["doc_ids"][1:]):
            assert want_score[a] >= want_score[b] - 2e-5
        want_dense = {ids[r.index]: r.retrieval_score for r in want}
        assert got["retrieval_scores"] == [want_dense[d] for d in got["doc_ids"]]


def test_two_workers_match_in_process_rerank_many(
    local_ray: Any,
    model: Path,
    candidates: Path,
    expected: dict[str, list[RerankResult]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    report = rerank_batch(
        candidates,
        out,
        model=model,
        workers=2,
        batch_rows=25,
        reranker_kwargs={"max_length": MAX_LENGTH},
        show_progress=False,
    )
    assert (report.n_shards, report.shards_run, report.shards_skipped) == (12, 12, 0)
    assert (report.rows, report.pairs) == (N_QUERIES, N_QUERIES * TOP_K)
    assert sorted(finished_shards(out)) == list(range(12))
    assert (out / "_SUCCESS").is_file()
    check_output(out, candidates, expected)

    run = ranked_run(out)
    assert len(run.rankings) == N_QUERIES
    assert all(len(ids) == TOP_K for ids in run.rankings.values())

    # Done is done: a second call with resume runs nothing and starts no Ray work.
    again = rerank_batch(
        candidates,
        out,
        model=model,
        workers=2,
        batch_rows=25,
        reranker_kwargs={"max_length": MAX_LENGTH},
        show_progress=False,
        resume=True,
    )
    assert (again.shards_run, again.shards_skipped, again.pairs) == (0, 12, 0)
    with pytest.raises(InvalidInputError, match="pass --resume"):
        rerank_batch(candidates, out, model=model, batch_rows=25)
    with pytest.raises(InvalidInputError, match="batch_rows, n_shards changed"):
        rerank_batch(
            candidates,
            out,
            model=model,
            batch_rows=30,
            reranker_kwargs={"max_length": MAX_LENGTH},
            resume=True,
        )


def test_a_killed_job_resumes_without_duplicated_or_missing_rows(
    local_ray: Any,
    model: Path,
    candidates: Path,
    expected: dict[str, list[RerankResult]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    n_shards = N_QUERIES // 10
    command = [
        sys.executable,
        "-m",
        "crossrank.cli",
        "rerank-batch",
        "--input",
        str(candidates),
        "--output",
        str(out),
        "--model",
        str(model),
        "--workers",
        "1",
        "--batch-rows",
        "10",
        "--max-length",
        str(MAX_LENGTH),
        "--num-cpus",
        "1",
        "--no-progress",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    log_file = tmp_path / "job.log"
    with log_file.open("wb") as log:
        # Its own session: the kill reaches the driver and the Ray processes it started.
        job = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + 600
            while job.poll() is None and time.monotonic() < deadline:
                if len(finished_shards(out)) >= n_shards // 3:
                    break
                time.sleep(0.05)
        finally:
            exited = job.poll() is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, signal.SIGKILL)
            job.wait(timeout=60)
    assert not exited, log_file.read_text()[-2000:]
    done = finished_shards(out)
    assert n_shards // 3 <= len(done) < n_shards, log_file.read_text()[-2000:]
    before = {i: part_path(out, i).stat().st_mtime_ns for i in done}
    with pytest.raises(DataError, match="incomplete"):
        read_ranked(out)

    report = rerank_batch(
        candidates,
        out,
        model=model,
        workers=2,
        batch_rows=10,
        reranker_kwargs={"max_length": MAX_LENGTH},
        show_progress=False,
        resume=True,
    )
    assert report.shards_skipped == len(done)
    assert report.shards_run == n_shards - len(done)
    assert report.rows == N_QUERIES - 10 * len(done)
    # The shards finished before the kill were not run again.
    assert {i: part_path(out, i).stat().st_mtime_ns for i in done} == before
    assert sorted(finished_shards(out)) == list(range(n_shards))
    assert not list(out.glob(".*.tmp"))
    check_output(out, candidates, expected)
