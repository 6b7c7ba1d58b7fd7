"""``crossrank eval --runs``: saved runs (JSON, TREC, rerank-batch output) scored on a split."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from test_data import write_collection

from crossrank.cli import main
from crossrank.errors import DataError, InvalidInputError
from crossrank.evaluation.run_files import read_run_file, run_from_scores, score_run
from crossrank.types import RerankResult

# The tiny collection judges q1 (d1 relevant, d3 judged 0) and q2 (d2 relevant).


def _scores(capsys: pytest.CaptureFixture[str]) -> dict[str, list[str]]:
    lines = capsys.readouterr().out.splitlines()
    return {line.split()[0]: line.split()[1:] for line in lines[2:] if line.strip()}


def test_a_json_run_scores_over_every_judged_query(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_collection(tmp_path / "mini")
    run = tmp_path / "mine.json"
    run.write_text(json.dumps({"q1": {"d3": 2.0, "d1": 1.0}, "q2": {"d2": 0.5}}))
    out = tmp_path / "report.json"
    assert main(["eval", "--data", str(data), "--runs", str(run), "--out", str(out)]) == 0
    rows = _scores(capsys)
    # MRR@10: q1 finds d1 at rank 2 (0.5), q2 at rank 1 (1.0); Hit@1: 1 of 2.
    assert rows["mine"][1:3] == ["0.7500", "0.5000"]
    assert rows["mine"][-1] == "2/2"
    saved = json.loads(out.read_text())
    assert saved["runs"][0]["metrics"]["MRR@10"] == pytest.approx(0.75)
    assert saved["runs"][0]["n_ranked"] == 2


def test_a_judged_query_the_run_misses_counts_as_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    data = write_collection(tmp_path / "mini")
    trec = tmp_path / "bm25.run"
    trec.write_text("q1 Q0 d1 1 3.5 sys\nq1 Q0 d3 2 1.0 sys\nq9 Q0 d2 1 1.0 sys\n")
    with caplog.at_level(logging.WARNING):
        assert main(["eval", "--data", str(data), "--runs", f"lexical={trec}"]) == 0
    rows = _scores(capsys)
    assert rows["lexical"][1:3] == ["0.5000", "0.5000"]  # q1 perfect, q2 missing
    assert rows["lexical"][-1] == "1/2"
    assert "ranks 1 of 2 judged queries" in caplog.text
    assert "1 queries have no judgments" in caplog.text


def test_ties_break_by_document_id_and_scores_must_be_numbers(tmp_path: Path) -> None:
    run = run_from_scores("r", {"q": {"b": 1.0, "a": 1.0, "c": 2}})
    assert run.rankings["q"] == ("c", "a", "b")
    with pytest.raises(DataError, match="document 'a': score 'high' is not a number"):
        run_from_scores("r", {"q": {"a": "high"}})


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("a.run", "q1 Q0 d1 1 2.0\n", "6 fields"),
        ("a.run", "q1 Q0 d1 1 high t\n", "score 'high' is not a number"),
        ("a.run", "q1 Q0 d1 1 2 t\nq1 Q0 d1 2 1 t\n", "lists document 'd1' twice"),
        ("a.run", "\n", "no run lines"),
        ("a.json", "{not json", "cannot read the run file"),
        ("a.json", "[]", "holds no run"),
        ("a.json", '{"q1": [1, 2]}', "not {doc: score}"),
    ],
)
def test_bad_run_files_say_what_is_wrong(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        read_run_file(path)


def test_bad_arguments_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_collection(tmp_path / "mini")
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"x": {"q1": {"d1": 1.0}}, "y": {"q1": {"d3": 1.0}}}))
    cases = [
        ([f"name={both}"], "holds 2 runs (x, y); drop the NAME= prefix"),
        ([str(both), str(both)], "two runs are named 'x'"),
        ([str(tmp_path)], "not a crossrank rerank-batch output"),
        ([str(tmp_path / "missing.json")], "no run file"),
    ]
    for runs, message in cases:
        assert main(["eval", "--data", str(data), "--runs", *runs]) == 1
        assert message in capsys.readouterr().err
    with pytest.raises(InvalidInputError, match="qrels is empty"):
        score_run(run_from_scores("r", {}), {}, recall_k=10)


def test_a_rerank_batch_output_folder_is_read_as_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pyarrow")
    from crossrank.jobs.candidates import (
        plan_shards,
        ranked_table,
        read_shard,
        write_candidates,
        write_part,
    )
    from crossrank.jobs.output import save_manifest

    data = write_collection(tmp_path / "mini")
    rows = [
        {"query_id": "q1", "query": "vitamin d", "doc_ids": ["d3", "d1"], "texts": ["x", "y"]},
        {"query_id": "q2", "query": "gene", "doc_ids": ["d1", "d2"], "texts": ["y", "z"]},
    ]
    shards = plan_shards([write_candidates(tmp_path / "in.jsonl", rows)], 1)
    out = tmp_path / "reranked"
    save_manifest(out, {"n_shards": len(shards)})
    for shard in shards:
        cands = read_shard(shard)
        # the "model" puts the second candidate first for both queries
        ranked = [
            [
                RerankResult(1, 2.0, 2.0, None, False, 1, "t"),
                RerankResult(0, 1.0, 1.0, None, False, 1, "t"),
            ]
            for _ in cands.query_ids
        ]
        write_part(out, shard.index, ranked_table(cands, ranked))
    assert main(["eval", "--data", str(data), "--runs", str(out)]) == 0
    rows_out = _scores(capsys)
    assert rows_out["reranked"][1:3] == ["1.0000", "1.0000"]  # d1 then d2 first: both hits


def test_the_runs_eval_writes_score_the_same_when_read_back(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model: Path,
    tiny_biencoder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path / "cache"))
    data = write_collection(tmp_path / "mini")
    report, runs = tmp_path / "report.json", tmp_path / "runs.json"
    args = ["eval", "--data", str(data), "--reranker", str(tiny_model), "--biencoder"]
    args += [str(tiny_biencoder), "--top-k", "3", "--top-n", "2", "--no-progress"]
    assert main([*args, "--out", str(report), "--runs-out", str(runs)]) == 0
    capsys.readouterr()
    assert main(["eval", "--data", str(data), "--top-k", "3", "--runs", str(runs)]) == 0
    rows = _scores(capsys)
    original = {r["name"]: r["metrics"] for r in json.loads(report.read_text())["runs"]}
    assert set(rows) == set(original)
    for name, metrics in original.items():
        assert [float(v) for v in rows[name][:-1]] == pytest.approx(
            list(metrics.values()), abs=5e-5
        )
