from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_data import write_collection

from crossrank.cli import main
from crossrank.evaluation import EvaluationReport


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CROSSRANK_CACHE", str(folder))
    return folder


def starter_or_tiny(shared_data: Path, tiny_model: Path) -> Path:
    starter = shared_data.parent / "models" / "crossrank-starter"
    return starter if (starter / "config.json").is_file() else tiny_model


def test_eval_on_a_tiny_collection_caches_the_index(
    tmp_path: Path,
    cache: Path,
    tiny_model: Path,
    tiny_biencoder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_collection(tmp_path / "mini")
    args = [
        "eval",
        "--data",
        str(data),
        "--reranker",
        str(tiny_model),
        "--retriever",
        str(tiny_biencoder),
        "--top-k",
        "3",
        "--top-n",
        "2",
        "--fusion",
        "rrf",
        "--no-progress",
    ]
    out_file, runs_file, chart = tmp_path / "r.json", tmp_path / "runs.json", tmp_path / "c.png"
    extra = ["--out", str(out_file), "--runs-out", str(runs_file), "--plot", str(chart)]
    assert main([*args, *extra]) == 0
    first = capsys.readouterr().out
    assert "mini (test): 3 documents, 2 judged queries" in first
    assert "encoded 3 documents and cached the index in" in first
    assert "reused" not in first
    assert f"saved the report to {out_file}" in first
    indexes = list((cache / "indexes").iterdir())
    assert len(indexes) == 1
    assert (indexes[0] / "retriever.json").is_file()

    report = EvaluationReport.load(out_file)
    assert report.n_queries == 2
    assert report.top_k == 3
    assert report.fusion == "rrf"
    assert [r.name for r in report.runs] == ["dense", "reranked", "fused"]
    assert report.metric_names == ["NDCG@10", "MRR@10", "Hit@1", "Recall@3"]
    assert "NDCG@10" in first
    assert any(line.startswith("reranked") for line in first.splitlines())
    runs = json.loads(runs_file.read_text())
    assert set(runs) == {"dense", "reranked", "fused"}
    assert set(runs["dense"]) == {"q1", "q2"}
    assert len(runs["dense"]["q1"]) == 3
    assert chart.read_bytes()[:4] == b"\x89PNG"

    assert main(args) == 0
    second = capsys.readouterr().out
    assert "reused the cached index" in second
    assert "not re-encoded" in second
    assert "encoded 3 documents" not in second
    assert len(list((cache / "indexes").iterdir())) == 1


def test_no_cache_and_max_queries(
    tmp_path: Path,
    cache: Path,
    tiny_model: Path,
    tiny_biencoder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_collection(tmp_path / "mini")
    code = main(
        [
            "eval",
            "--data",
            str(data),
            "--reranker",
            str(tiny_model),
            "--retriever",
            str(tiny_biencoder),
            "--top-k",
            "2",
            "--top-n",
            "1",
            "--max-queries",
            "1",
            "--no-cache",
            "--no-progress",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    assert "encoding 3 documents" in capsys.readouterr().out
    assert not cache.exists()
    assert EvaluationReport.load(tmp_path / "r.json").n_queries == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--top-k", "2", "--top-n", "5"], "--top-n 5 exceeds --top-k 2"),
        (["--fusion-alpha", "2"], "--fusion-alpha must be between 0 and 1"),
        (["--split", "dev"], "split 'dev' has no qrels file"),
    ],
)
def test_errors_print_one_line(
    tmp_path: Path,
    cache: Path,
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_collection(tmp_path / "mini")
    assert main(["eval", "--data", str(data), *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("crossrank eval: error: ")
    assert message in err
    assert not cache.exists()


def test_unknown_collection_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CROSSRANK_DATA", str(tmp_path))
    assert main(["eval", "--data", "no-such-collection"]) == 1
    assert "collection 'no-such-collection' not found" in capsys.readouterr().err


def test_bad_numbers_are_rejected_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["eval", "--data", "x", "--top-k", "0"])
    assert info.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_on_scifact_end_to_end(
    tmp_path: Path,
    cache: Path,
    shared_data: Path,
    tiny_model: Path,
    tiny_biencoder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real collection by name, real reranker; the tiny bi-encoder keeps the encode cheap."""
    monkeypatch.setenv("CROSSRANK_DATA", str(shared_data))
    reranker = starter_or_tiny(shared_data, tiny_model)
    args = ["eval", "--data", "scifact", "--split", "test", "--reranker", str(reranker)]
    args += ["--retriever", str(tiny_biencoder), "--top-k", "20", "--top-n", "5"]
    args += ["--max-queries", "5", "--max-length", "256", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "first.json")]) == 0
    first = capsys.readouterr().out
    assert "scifact (test): 5183 documents, 300 judged queries" in first
    assert "encoded 5183 documents and cached the index" in first
    assert main([*args, "--out", str(tmp_path / "second.json")]) == 0
    second = capsys.readouterr().out
    assert "reused the cached index" in second
    assert "(5183 documents, not re-encoded)" in second
    one = EvaluationReport.load(tmp_path / "first.json")
    two = EvaluationReport.load(tmp_path / "second.json")
    assert one.n_queries == two.n_queries == 5
    for a, b in zip(one.runs, two.runs, strict=True):
        assert a.metrics == pytest.approx(b.metrics, abs=1e-9)  # same index, same results


@pytest.mark.slow
def test_eval_on_scifact_with_minilm_uses_the_shared_index_cache(
    tmp_path: Path,
    shared_data: Path,
    tiny_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The default bi-encoder; its SciFact index lives in $CROSSRANK_CACHE and is shared with
    test_retrieval's NDCG check, so the suite encodes the corpus with MiniLM at most once."""
    reranker = starter_or_tiny(shared_data, tiny_model)
    args = ["eval", "--data", str(shared_data / "scifact"), "--reranker", str(reranker)]
    args += ["--max-queries", "20", "--no-progress", "--out", str(tmp_path / "r.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "reused the cached index" in out or "encoded 5183 documents" in out
    report = EvaluationReport.load(tmp_path / "r.json")
    assert report.retriever == "sentence-transformers/all-MiniLM-L6-v2"
    assert report.n_queries == 20
    assert 0.3 < report["dense"].metrics["NDCG@10"] <= 1.0
    assert main(args) == 0
    assert "reused the cached index" in capsys.readouterr().out
