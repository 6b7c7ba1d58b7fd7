"""``crossrank eval --retriever dense|bm25|hybrid`` and ``crossrank demo`` with each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_data import write_collection

from crossrank.cli import main
from crossrank.errors import InvalidInputError
from crossrank.evaluation import EvaluationReport


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CROSSRANK_CACHE", str(folder))
    return folder


def eval_args(data: Path, reranker: Path, *extra: str) -> list[str]:
    return ["eval", "--data", str(data), "--reranker", str(reranker), "--top-k", "3",
            "--top-n", "3", "--no-progress", *extra]  # fmt: skip


def test_eval_bm25_names_the_first_stage_and_caches_the_index(
    tmp_path: Path, cache: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_collection(tmp_path / "mini")
    out, runs_file = tmp_path / "r.json", tmp_path / "runs.json"
    args = eval_args(data, tiny_model, "--retriever", "bm25", "--out", str(out))
    assert main([*args, "--runs-out", str(runs_file)]) == 0
    first = capsys.readouterr().out
    assert "indexed 3 documents for BM25 and cached the index in" in first
    report = EvaluationReport.load(out)
    assert report.first_stage == "bm25"
    assert [r.name for r in report.runs] == ["bm25", "reranked", "fused"]
    assert report.retriever.startswith("BM25 (lucene")
    assert report["bm25"].pairs_per_second is None
    assert report["reranked"].pairs_per_second is not None
    # BM25 finds the one judged document sharing words with each query, ranked first
    assert report["bm25"].metrics["Hit@1"] == 1.0
    runs = json.loads(runs_file.read_text())
    assert next(iter(runs["bm25"]["q1"])) == "d1"
    assert not (cache / "indexes").exists()  # no bi-encoder needed
    assert len(list((cache / "bm25").iterdir())) == 1

    assert main(args) == 0
    assert "reused the cached BM25 index" in capsys.readouterr().out


@pytest.mark.parametrize(("fuse_with", "alpha"), [("bm25", 0.8), ("dense+bm25", 0.2)])
def test_eval_hybrid_fused_with_bm25_or_both_scores(
    tmp_path: Path,
    cache: Path,
    tiny_model: Path,
    tiny_biencoder: Path,
    capsys: pytest.CaptureFixture[str],
    fuse_with: str,
    alpha: float,
) -> None:
    data = write_collection(tmp_path / "mini")
    out, chart = tmp_path / "r.json", tmp_path / "c.png"
    args = eval_args(
        data, tiny_model, "--retriever", "hybrid", "--biencoder", str(tiny_biencoder),
        "--fuse-with", fuse_with, "--fusion-alpha", str(alpha), "--out", str(out),
        "--plot", str(chart),
    )  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "encoded 3 documents and cached the index in" in printed
    assert "indexed 3 documents for BM25" in printed
    report = EvaluationReport.load(out)
    assert (report.first_stage, report.fuse_with, report.alpha) == ("hybrid", fuse_with, alpha)
    assert [r.name for r in report.runs] == ["hybrid", "reranked", "fused"]
    assert f"with the {fuse_with} score" in report.title
    assert report.retriever.startswith("hybrid(")
    # all three runs hold the hybrid's candidates: same recall
    recalls = {r.metrics["Recall@3"] for r in report.runs}
    assert len(recalls) == 1
    assert chart.read_bytes()[:4] == b"\x89PNG"


def test_fuse_with_needs_the_hybrid(
    tmp_path: Path, cache: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_collection(tmp_path / "mini")
    assert main(eval_args(data, tiny_model, "--retriever", "bm25", "--fuse-with", "bm25")) == 1
    assert "needs --retriever hybrid" in capsys.readouterr().err
    args = ["--debug", *eval_args(data, tiny_model, "--retriever", "bm25", "--fuse-with", "bm25")]
    with pytest.raises(InvalidInputError, match="needs --retriever hybrid"):
        main(args)


def test_a_model_folder_after_retriever_is_still_the_biencoder(
    tmp_path: Path,
    cache: Path,
    tiny_model: Path,
    tiny_biencoder: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = write_collection(tmp_path / "mini")
    out = tmp_path / "r.json"
    args = eval_args(data, tiny_model, "--retriever", str(tiny_biencoder), "--out", str(out))
    assert main(args) == 0
    assert EvaluationReport.load(out).first_stage == "dense"
    assert any("read as --biencoder" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("retriever", ["bm25", "hybrid"])
def test_demo_shows_first_stage_reranked_and_fused_side_by_side(
    tmp_path: Path,
    cache: Path,
    tiny_model: Path,
    tiny_biencoder: Path,
    retriever: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    data = write_collection(tmp_path / "mini")
    args = ["demo", "--data", str(data), "--reranker", str(tiny_model), "--retriever", retriever,
            "--biencoder", str(tiny_biencoder), "--top-k", "3", "--top-n", "3", "--show", "1"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{retriever} top-5 (score)" in out
    assert "reranked top-5" in out
    assert "fused top-5" in out
    assert "Vitamin D" in out
    # the metrics table has the three runs, the first stage named after the retriever
    lines = out.splitlines()
    assert any(line.strip("│ ").startswith(retriever) for line in lines)
    assert any(line.strip("│ ").startswith("fused") for line in lines)
    # the reranker is one vote of three beside dense+bm25, one of two beside one score
    fused = (
        "0.2 x reranker + 0.8 x dense+bm25"
        if retriever == "hybrid"
        else "0.5 x reranker + 0.5 x first-stage"
    )
    assert f"{fused} score" in out
