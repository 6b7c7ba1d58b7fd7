"""torch's OpenMP threads sleep while they wait unless the user chose otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from crossrank.engine import cpu_threads


def _policy_after(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport os; print(os.environ.get('OMP_WAIT_POLICY'))"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_importing_crossrank_first_makes_openmp_threads_sleep() -> None:
    assert _policy_after("import crossrank") == "PASSIVE"


def test_an_explicit_policy_wins() -> None:
    assert _policy_after("import crossrank", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


def test_too_late_once_torch_is_loaded() -> None:
    # OpenMP read the policy when torch loaded it: setting it afterwards would be a lie.
    assert _policy_after("import torch\nimport crossrank") == "None"


def test_the_hint_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    hint = cpu_threads.spinning_hint("cpu")
    assert hint is not None and "OMP_WAIT_POLICY=PASSIVE" in hint
    assert cpu_threads.spinning_hint("cuda:0") is None
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    assert cpu_threads.spinning_hint("cpu") is None
    assert cpu_threads.prefer_passive_openmp() is False  # already set: left alone


def test_onnxruntime_pool_threads_sleep(
    tiny_model: object, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    from crossrank import Reranker
    from crossrank.engine.loading import clear_registry

    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path))
    clear_registry()
    try:
        runner = Reranker(tiny_model, backend="onnx")._loaded.runner  # type: ignore[arg-type]
        options = runner.session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    finally:
        clear_registry()
