"""The ONNX export cache under real conditions: new weights, several processes, a process
killed half-way, a damaged export, a cache folder that cannot be written."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossrank import Reranker
from crossrank.engine.loading import clear_registry
from crossrank.testing import build_tiny_cross_encoder

pytest.importorskip("onnxruntime")

PAIRS = [
    ("does vitamin d lower cancer risk", "vitamin d levels and cancer risk in patients"),
    ("does vitamin d lower cancer risk", "blood pressure treatment in mice"),
    ("genes in cells", "how genes are expressed in human cells"),
    ("genes in cells", "protein"),
]

# One process that loads a model with backend="onnx" and prints its scores. It waits on a
# barrier (a folder of ready files) so that all the processes start exporting together.
_EXPORTER = """
import json, sys, time
from pathlib import Path
import onnxruntime, sentence_transformers, torch, transformers
from crossrank import Reranker

model, barrier, me, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
(barrier / me).touch()
for _ in range(60000):
    if len(list(barrier.iterdir())) >= n:
        break
    time.sleep(0.005)
reranker = Reranker(model, backend="onnx", activation="raw")
print(json.dumps({"scores": reranker.score_pairs(PAIRS), "path": str(reranker._loaded.runner.path)}))
"""

# Exports, then is killed (SIGKILL) before the export is renamed into place.
_KILLED = """
import os, signal, sys
import torch
from crossrank import Reranker

real = torch.onnx.export
def export_then_die(*args, **kwargs):
    real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
torch.onnx.export = export_then_die
Reranker(sys.argv[1], backend="onnx")
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CROSSRANK_CACHE", str(folder))
    clear_registry()
    yield folder
    clear_registry()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return build_tiny_cross_encoder(tmp_path / "model", seed=7)


def _torch_scores(model: Path) -> list[float]:
    return Reranker(model, device="cpu", dtype="float32", activation="raw").score_pairs(PAIRS)


_FINAL = {"identity.txt", ".lock", "model.onnx", "model-int8.onnx"}


def _leftovers(cache: Path) -> list[str]:
    """Files in the export cache that are neither an export, its checksum, nor the lock."""
    return sorted(
        p.name
        for p in cache.rglob("*")
        if p.is_file() and p.name.removesuffix(".sha256") not in _FINAL
    )


def _env(cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CROSSRANK_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def test_new_weights_with_the_same_size_and_mtime_are_exported_again(
    model: Path, cache: Path, tmp_path: Path
) -> None:
    first = Reranker(model, backend="onnx", activation="raw")
    old_scores = first.score_pairs(PAIRS)
    old_path = first._loaded.runner.path
    other = build_tiny_cross_encoder(tmp_path / "other", seed=8)
    target = model / "model.safetensors"
    before = target.stat()
    shutil.copyfile(other / "model.safetensors", target)  # cp -p: same size, same mtime
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_size == before.st_size
    clear_registry()  # a new process: only the export cache remembers the old model
    second = Reranker(model, backend="onnx", activation="raw")
    assert second._loaded.runner.path != old_path
    assert second.score_pairs(PAIRS) == pytest.approx(_torch_scores(other), abs=1e-3)
    assert second.score_pairs(PAIRS) != pytest.approx(old_scores, abs=1e-3)


def test_processes_exporting_at_once_all_succeed(model: Path, cache: Path, tmp_path: Path) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = f"PAIRS = {PAIRS!r}\n" + _EXPORTER
    n = 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(model), str(barrier), str(i), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(cache),
        )
        for i in range(n)
    ]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (_out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _err in outputs]
    assert len({r["path"] for r in results}) == 1
    assert results[0]["scores"] == results[1]["scores"] == results[2]["scores"]
    assert results[0]["scores"] == pytest.approx(_torch_scores(model), abs=1e-3)
    assert _leftovers(cache) == []
    assert sorted(p.name for p in Path(results[0]["path"]).parent.glob("model*")) == [
        "model.onnx",
        "model.onnx.sha256",
    ]


def test_an_export_killed_half_way_leaves_nothing_that_stops_the_next(
    model: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED, str(model)],
        capture_output=True,
        text=True,
        env=_env(cache),
        timeout=600,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert _leftovers(cache)  # the killed process left its half-made export behind
    assert not list(cache.rglob("model.onnx"))
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        reranker = Reranker(model, backend="onnx", activation="raw")
    assert reranker.score_pairs(PAIRS) == pytest.approx(_torch_scores(model), abs=1e-3)
    assert _leftovers(cache) == []
    assert any("interrupted ONNX export" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("damage", ["truncated", "unsealed"])
def test_a_damaged_export_is_made_again(
    model: Path, cache: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    path = Reranker(model, backend="onnx")._loaded.runner.path
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # killed between the rename and the checksum
        path.with_name(path.name + ".sha256").unlink()
    clear_registry()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        again = Reranker(model, backend="onnx", activation="raw")
    assert again._loaded.runner.path == path
    assert again.score_pairs(PAIRS) == pytest.approx(_torch_scores(model), abs=1e-3)
    assert any("incomplete or damaged" in r.getMessage() for r in caplog.records)
    clear_registry()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="crossrank"):
        Reranker(model, backend="onnx")
    assert any("reusing the ONNX export" in r.getMessage() for r in caplog.records)


def test_int8_export_is_sealed_and_reused(model: Path, cache: Path) -> None:
    int8 = Reranker(model, backend="onnx-int8", activation="raw")
    path = int8._loaded.runner.path
    assert path.name == "model-int8.onnx"
    assert path.with_name("model-int8.onnx.sha256").is_file()
    assert int8.score_pairs(PAIRS) == pytest.approx(_torch_scores(model), abs=0.1)
    assert _leftovers(cache) == []


def test_a_cache_that_cannot_be_written_exports_for_this_process(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A cache path below a regular file can never be created, even by root.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("CROSSRANK_CACHE", str(blocker / "cache"))
    clear_registry()
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        reranker = Reranker(model, backend="onnx", activation="raw")
    assert reranker.score_pairs(PAIRS) == pytest.approx(_torch_scores(model), abs=1e-3)
    assert not reranker._loaded.runner.path.is_relative_to(tmp_path)
    assert any("cannot write the ONNX export" in r.getMessage() for r in caplog.records)
    clear_registry()


def test_a_complete_export_is_reused_without_writing_or_locking(
    model: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = Reranker(model, backend="onnx")._loaded.runner.path
    lock = path.parent / ".lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()  # nothing can take the lock now, as in a read-only cache
    stamp = path.stat().st_mtime_ns
    clear_registry()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="crossrank"):
        again = Reranker(model, backend="onnx", activation="raw")
    assert again._loaded.runner.path == path
    assert path.stat().st_mtime_ns == stamp
    assert again.score_pairs(PAIRS) == pytest.approx(_torch_scores(model), abs=1e-3)
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)
