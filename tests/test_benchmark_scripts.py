"""The GPU benchmark script's CPU smoke mode (the script itself is run by hand on a GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_runs_on_cpu_in_quick_mode(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpu"
    env = {**os.environ, "CROSSRANK_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--quick"]
    command += ["--model", str(tiny_model), "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    rows = result["throughput"]
    assert [(r["dtype"], r["pairs"]) for r in rows] == [("bf16", 32), ("fp16", 32)]
    for row in rows:
        assert row["crossrank_pairs_per_s"] > 0 and row["predict_pairs_per_s"] > 0
        assert row["token_budget"] >= 512  # at least one full-length pair per batch
        assert row["ratio"] == row["crossrank_pairs_per_s"] / row["predict_pairs_per_s"]
    latency = {(r["dtype"], r["system"]): r for r in result["latency"]}
    assert set(latency) == {(d, s) for d in ("bf16", "fp16") for s in ("crossrank", "predict")}
    assert all(0 < r["p50_ms"] <= r["p95_ms"] for r in latency.values())
    table = out.with_suffix(".md").read_text()
    assert "| bf16 | 32 |" in table and "| fp16 | crossrank | 8 |" in table
    assert "× predict" in done.stdout


def test_peers_judge_the_quality_bar_on_the_many_query_file() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import peers
    finally:
        sys.path.pop(0)
    rows = [
        peers.Row("crossrank-torch", "torch", 50, pairs_per_s=7.0, vs_predict=1.1, ndcg=0.67),
        peers.Row("crossrank-openvino-int8", "ov8", 50, pairs_per_s=34, vs_predict=5.5, ndcg=0.63),
        peers.Row("st-predict", "predict", 50, pairs_per_s=6.1, vs_predict=1.0, ndcg=0.67),
    ]
    timed = "\n".join(peers.verdicts(rows, [50]))
    assert "ov8 NDCG@10 0.6300 is more than 0.01" in timed
    assert "ov8, 34.0 pairs/s" not in timed
    quality = {
        "queries": 300,
        "reference": "openvino",
        "ndcg@10": {"openvino": 0.69, "openvino-int8": 0.685},
    }
    judged = "\n".join(peers.verdicts(rows, [50], quality))
    assert "ov8, 34.0 pairs/s = 5.50× predict" in judged
    assert "NDCG@10 0.6850 vs 0.6900 on 300 queries" in judged
    assert judged.splitlines()[0].endswith("PASS")


def test_hybrid_score_cache_survives_a_damaged_file(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed while writing its score cache must not break the next run."""
    import argparse

    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path / "cache"))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import hybrid
    finally:
        sys.path.pop(0)

    class Lengths:
        calls = 0

        def score_pairs(self, pairs: list[tuple[str, str]]) -> list[float]:
            Lengths.calls += 1
            return [float(len(q) + len(t)) for q, t in pairs]

    args = argparse.Namespace(
        reranker=str(tiny_model), max_length=32, backend="torch", budget_minutes=None
    )
    pairs = [("q1", "d1", "query", "text one"), ("q1", "d2", "query", "text")]
    first = hybrid.ce_scores(Lengths(), args, "mini:test", pairs)  # type: ignore[arg-type]
    assert first == {("q1", "d1"): 13.0, ("q1", "d2"): 9.0}
    (cached,) = (tmp_path / "cache" / "benchmarks").glob("hybrid-mini-test-*.json")
    assert not list(cached.parent.glob("*.tmp"))
    assert hybrid.ce_scores(Lengths(), args, "mini:test", pairs) == first  # type: ignore[arg-type]
    assert Lengths.calls == 1  # the second run read the cache
    cached.write_text(cached.read_text()[:10])  # cut short, as by a kill mid-write
    assert hybrid.ce_scores(Lengths(), args, "mini:test", pairs) == first  # type: ignore[arg-type]
    assert Lengths.calls == 2


def test_quality_file_merges_runs_and_survives_a_damaged_one(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import quantized_quality
    finally:
        sys.path.pop(0)
    out = tmp_path / "quality.json"
    workload = {"queries": 300, "top_k": 50, "max_length": 256, "reference": "torch"}
    quantized_quality.save_quality(out, {**workload, "ndcg@10": {"torch": 0.69}})
    quantized_quality.save_quality(out, {**workload, "ndcg@10": {"openvino": 0.68}})
    assert json.loads(out.read_text())["ndcg@10"] == {"torch": 0.69, "openvino": 0.68}
    # another workload replaces the numbers instead of mixing them
    other = {**workload, "queries": 10}
    quantized_quality.save_quality(out, {**other, "ndcg@10": {"torch": 0.5}})
    assert json.loads(out.read_text())["ndcg@10"] == {"torch": 0.5}
    out.write_text('{"queries": 10, "ndcg')  # cut short, as by a kill mid-write
    quantized_quality.save_quality(out, {**other, "ndcg@10": {"onnx": 0.4}})
    assert json.loads(out.read_text())["ndcg@10"] == {"onnx": 0.4}
    assert [p.name for p in tmp_path.iterdir()] == ["quality.json"]
