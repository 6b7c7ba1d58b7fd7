from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_data import write_collection

from crossrank.cli import main


def test_help_lists_every_subcommand() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "crossrank.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("demo", "eval", "train", "bench"):
        assert f"    {command}" in out, out


def test_errors_are_one_line_with_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert main(["bench", "--data", str(missing), "--reranker", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("crossrank bench: error: ")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(Exception, match="nowhere"):
        main(["--debug", "bench", "--data", str(missing), "--reranker", str(tmp_path)])


def test_bench_times_every_backend_asked_for(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model: Path,
    tiny_biencoder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path / "cache"))
    data = write_collection(tmp_path / "mini")
    args = ["bench", "--data", str(data), "--reranker", str(tiny_model)]
    args += ["--retriever", str(tiny_biencoder), "--queries", "2", "--top-k", "3"]
    assert main([*args, "--backend", "torch", "--backend", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "2 queries x 3 candidates (6 pairs)" in out
    rows = [line for line in out.splitlines() if "rerank" in line and "│" in line]
    assert len(rows) == 4, out
    assert sum("torch" in r for r in rows) == 2
    assert sum("onnx" in r for r in rows) == 2
    assert main([*args, "--token-budget", "64", "--token-budget", "4096"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "rerank" in line]
    budgets = [[cell.strip() for cell in r.split("│")][2] for r in rows]
    assert sorted(budgets) == ["4096", "4096", "64", "64"]
    assert main([*args, "--queries", "0"]) == 1
    assert "--queries and --top-k must be positive" in capsys.readouterr().err


def test_every_command_with_a_backend_offers_every_engine_backend() -> None:
    import argparse

    from crossrank.cli import _build_parser
    from crossrank.types import BACKENDS

    parser = _build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    offered = {
        name: action.choices
        for name, sub in subparsers.choices.items()
        for action in sub._actions
        if "--backend" in action.option_strings
    }
    assert {"bench", "demo", "serve", "rerank-batch"} <= set(offered)
    for name, choices in offered.items():
        assert tuple(choices or ()) == BACKENDS, name
