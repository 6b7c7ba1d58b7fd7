from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import crossrank
from crossrank import InvalidInputError, InvalidModelError, ModelNotFoundError, Reranker
from crossrank.engine.loading import cpu_has_bf16, load_model, resolve_device, resolve_dtype
from crossrank.engine.resolve import DEFAULT_HUB_RERANKER, resolve_reranker, starter_model_dir
from crossrank.errors import MissingExtraError
from crossrank.testing import build_tiny_cross_encoder


def test_import_is_cheap() -> None:
    code = (
        "import sys, crossrank; "
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'faiss') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_same_model_is_loaded_once(tiny_model: Path) -> None:
    first = Reranker(tiny_model, device="cpu")
    second = Reranker(tiny_model, max_length=64, overflow="chunk")
    assert first._loaded is second._loaded
    assert first.cross_encoder is second.cross_encoder
    other_dtype = load_model(str(tiny_model), device="cpu", dtype="bfloat16")
    assert other_dtype is not first._loaded
    assert other_dtype.dtype == torch.bfloat16


def test_trust_remote_code_defaults_to_false() -> None:
    default = inspect.signature(Reranker).parameters["trust_remote_code"].default
    assert default is False


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist") as info:
        Reranker(tmp_path / "nope")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        Reranker(tmp_path)


def test_multi_label_model_is_refused(tmp_path: Path) -> None:
    folder = build_tiny_cross_encoder(tmp_path / "three", num_labels=3)
    with pytest.raises(InvalidModelError, match="3 output labels"):
        Reranker(folder)


def test_missing_extra_names_the_install_line() -> None:
    err = MissingExtraError("faiss-cpu", "faiss", "Dense retrieval")
    assert isinstance(err, ImportError)
    assert 'pip install "crossrank[faiss]"' in str(err)


def test_device_resolution() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device(None) == expected
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(InvalidInputError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_cuda_asked_without_cuda_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        resolve_device("cuda:1")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the refusal without MPS")
def test_mps_only_when_available() -> None:
    assert resolve_device("auto") != "mps"
    with pytest.raises(InvalidInputError, match="MPS is not available"):
        resolve_device("mps")


@pytest.mark.parametrize(("bf16", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_dtype_on_cuda(
    monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: torch.dtype
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert resolve_dtype("auto", "cuda") == expected
    assert resolve_dtype("auto", "cuda:1") == expected


def test_dtype_resolution_on_cpu() -> None:
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "mps") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert resolve_dtype(torch.float16, "cpu") == torch.float16
    with pytest.raises(InvalidInputError, match="unknown dtype"):
        resolve_dtype("int3", "cpu")


@pytest.mark.gpu
def test_explicit_cuda_device_is_honoured(tiny_model: Path) -> None:
    reranker = Reranker(tiny_model, device="cuda:0")
    assert reranker.device == "cuda:0"
    assert reranker.dtype in (torch.bfloat16, torch.float16)
    scores = reranker.score_pairs([("a query", "a document"), ("a query", "other text")])
    assert all(isinstance(s, float) for s in scores)


def test_reranker_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CROSSRANK_STARTER", str(tmp_path / "shared-starter"))
    monkeypatch.delenv("CROSSRANK_RERANKER", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_reranker("given")[0] == "given"
    with pytest.raises(ModelNotFoundError) as info:
        resolve_reranker(None)
    message = str(info.value)
    assert "CROSSRANK_RERANKER" in message
    assert "crossrank train --preset starter" in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert resolve_reranker(None)[0] == DEFAULT_HUB_RERANKER
    # the shared starter beside the checkout comes before the hub ...
    build_tiny_cross_encoder(tmp_path / "shared-starter")
    assert resolve_reranker(None) == (
        str(tmp_path / "shared-starter"),
        "the project's shared starter model",
    )
    # ... and one trained here (in the cache) before the shared one
    build_tiny_cross_encoder(starter_model_dir())
    assert resolve_reranker(None)[0] == str(starter_model_dir())
    monkeypatch.setenv("CROSSRANK_RERANKER", "/some/folder")
    assert resolve_reranker(None) == ("/some/folder", "from $CROSSRANK_RERANKER")


def test_public_names_match_all() -> None:
    """Every public crossrank object reachable from the package is in __all__, and back."""
    defined = {
        name
        for name, value in vars(crossrank).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and getattr(value, "__module__", "").startswith("crossrank")
    }
    assert set(crossrank.__all__) - {"__version__"} == defined | set(crossrank._LAZY)
    for name in crossrank.__all__:
        assert getattr(crossrank, name) is not None


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse avx2 avx512f avx512_vnni", False),
        ("fpu avx2 avx512f avx512_bf16 avx512_vnni", True),
        ("fpu avx2 amx_bf16 amx_tile", True),
    ],
)
def test_cpu_bf16_is_read_from_the_cpu_flags(tmp_path: Path, flags: str, expected: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\n")
    assert cpu_has_bf16(cpuinfo) is expected


def test_cpu_bf16_is_false_without_cpuinfo(tmp_path: Path) -> None:
    assert cpu_has_bf16(tmp_path / "missing") is False
    (tmp_path / "empty").write_text("processor\t: 0\n")
    assert cpu_has_bf16(tmp_path / "empty") is False


@pytest.mark.slow
def test_compiled_model_scores_like_the_eager_one(tiny_model: Path) -> None:
    eager = Reranker(tiny_model, device="cpu", activation="raw", token_budget=64)
    compiled = Reranker(tiny_model, device="cpu", activation="raw", compile=True, token_budget=64)
    assert compiled._loaded is not eager._loaded  # one model per setting, never shared
    query = "which gene raises the risk"
    documents = [("a gene " * n).strip() for n in (1, 3, 9, 20)]  # several batch shapes
    expected = [r.score for r in eager.rerank(query, documents)]
    got = [r.score for r in compiled.rerank(query, documents)]
    assert got == pytest.approx(expected, abs=1e-5)


def test_compile_is_checked(tiny_model: Path) -> None:
    with pytest.raises(InvalidInputError, match="backend='torch' only"):
        Reranker(tiny_model, backend="onnx", compile=True)
    with pytest.raises(InvalidInputError, match="True or False"):
        Reranker(tiny_model, device="cpu", compile="yes")  # type: ignore[arg-type]
