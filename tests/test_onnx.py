from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossrank import InvalidInputError, Reranker
from crossrank.engine.loading import clear_registry
from crossrank.engine.onnx_backend import OnnxRunner, export_dir
from crossrank.testing import build_tiny_cross_encoder

pytest.importorskip("onnxruntime")

PAIRS = [
    ("does vitamin d lower cancer risk", "vitamin d levels and cancer risk in patients"),
    ("does vitamin d lower cancer risk", "blood pressure treatment in mice"),
    ("does vitamin d lower cancer risk", ""),
    ("genes in cells", "how genes are expressed in human cells " * 8),
    ("genes in cells", "protein"),
]


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path / "cache"))
    return build_tiny_cross_encoder(tmp_path / "tiny-onnx", seed=3)


def test_onnx_scores_match_torch(model: Path) -> None:
    torch_scores = Reranker(model, activation="raw").score_pairs(PAIRS)
    onnx = Reranker(model, backend="onnx", activation="raw")
    assert onnx.backend == "onnx"
    assert isinstance(onnx._loaded.runner, OnnxRunner)
    assert onnx.score_pairs(PAIRS) == pytest.approx(torch_scores, abs=1e-3)
    int8 = Reranker(model, backend="onnx-int8", activation="raw")
    assert int8._loaded.runner.path.name == "model-int8.onnx"
    assert int8.score_pairs(PAIRS) == pytest.approx(torch_scores, abs=0.1)


def test_export_is_made_once_and_reused(model: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = Reranker(model, backend="onnx")
    path = first._loaded.runner.path
    assert path.parent == export_dir(first._loaded.identity)
    stamp = path.stat().st_mtime_ns
    clear_registry()  # a new process would find the export in the cache
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="crossrank"):
        second = Reranker(model, backend="onnx")
    assert second._loaded is not first._loaded
    assert second._loaded.runner.path == path
    assert path.stat().st_mtime_ns == stamp
    assert any("reusing the ONNX export" in r.getMessage() for r in caplog.records)
    assert not any("exporting the model" in r.getMessage() for r in caplog.records)


def test_engine_features_apply_unchanged_on_onnx(model: Path) -> None:
    kwargs = {"max_length": 32, "query_max_tokens": 8, "overflow": "chunk", "stride": 4}
    torch_result = Reranker(model, **kwargs).rerank("genes", [PAIRS[3][1], "short"])
    onnx_result = Reranker(model, backend="onnx", **kwargs).rerank("genes", [PAIRS[3][1], "short"])
    assert [(r.index, r.n_windows, r.truncated) for r in onnx_result] == [
        (r.index, r.n_windows, r.truncated) for r in torch_result
    ]
    assert [r.score for r in onnx_result] == pytest.approx(
        [r.score for r in torch_result], abs=1e-3
    )


def test_backend_selection_errors(model: Path) -> None:
    with pytest.raises(InvalidInputError, match="backend must be one of"):
        Reranker(model, backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="runs on the CPU"):
        Reranker(model, backend="onnx", device="cuda")


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh export cache and model registry, so a test sees its own first export."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CROSSRANK_CACHE", str(cache))
    clear_registry()
    yield cache
    clear_registry()


def test_backend_selects_the_runner(tiny_model: Path, isolated_cache: Path) -> None:
    default = Reranker(tiny_model)
    fp32 = Reranker(tiny_model, backend="onnx")
    int8 = Reranker(tiny_model, backend="onnx-int8")
    assert default.backend == "torch"
    assert not isinstance(default._loaded.runner, OnnxRunner)
    assert [fp32.backend, int8.backend] == ["onnx", "onnx-int8"]
    assert fp32._loaded.runner.path.name == "model.onnx"
    assert int8._loaded.runner.path.name == "model-int8.onnx"
    assert fp32._loaded.runner.path.is_relative_to(isolated_cache)
    # Three backends, three loaded models; ONNX always runs fp32 on the CPU.
    assert len({id(r._loaded) for r in (default, fp32, int8)}) == 3
    assert (fp32.device, str(fp32.dtype)) == ("cpu", "torch.float32")
    assert "backend='onnx-int8'" in repr(int8)


def test_int8_quantises_the_cached_fp32_export(
    tiny_model: Path, isolated_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fp32_path = Reranker(tiny_model, backend="onnx")._loaded.runner.path
    stamp = fp32_path.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="crossrank"):
        int8 = Reranker(tiny_model, backend="onnx-int8")
    assert int8._loaded.runner.path.parent == fp32_path.parent
    assert fp32_path.stat().st_mtime_ns == stamp  # quantised from the export, not re-exported
    assert not any("exporting the model" in r.getMessage() for r in caplog.records)


def test_tiny_model_onnx_fp32_matches_torch_fp32(tiny_model: Path, isolated_cache: Path) -> None:
    torch_scores = Reranker(tiny_model, dtype="float32", activation="raw").score_pairs(PAIRS)
    onnx_scores = Reranker(tiny_model, backend="onnx", activation="raw").score_pairs(PAIRS)
    assert max(abs(a - b) for a, b in zip(onnx_scores, torch_scores, strict=True)) <= 1e-3
    assert len(set(torch_scores)) > 1  # the pairs really score differently
