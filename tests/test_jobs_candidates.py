"""The batch job's files, without Ray: planning shards, reading them, the output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from crossrank.errors import DataError, InvalidInputError  # noqa: E402
from crossrank.jobs.candidates import (  # noqa: E402
    Shard,
    finished_shards,
    input_files,
    plan_shards,
    ranked_table,
    read_shard,
    write_candidates,
    write_part,
)
from crossrank.jobs.output import (  # noqa: E402
    check_resumable,
    ranked_run,
    read_ranked,
    save_manifest,
)
from crossrank.types import RerankResult  # noqa: E402


def rows(n: int, *, scores: bool = True) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(n):
        row: dict[str, object] = {
            "query_id": f"q{i}",
            "query": f"query {i}",
            "doc_ids": [f"d{i}-{j}" for j in range(i % 3 + 1)],
            "texts": [f"text {i} {j}" for j in range(i % 3 + 1)],
        }
        if scores:
            row["retrieval_scores"] = [float(-j) for j in range(i % 3 + 1)]
        out.append(row)
    return out


def read_all(shards: list[Shard]) -> list[str]:
    return [qid for s in shards for qid in read_shard(s).query_ids]


def test_jsonl_shards_cover_every_row_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    lines = [json.dumps(r) for r in rows(23)]
    lines.insert(7, "   ")  # blank lines are skipped, not rows
    lines.insert(0, "")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    shards = plan_shards([path], 5)
    assert [s.n_rows for s in shards] == [5, 5, 5, 5, 3]
    assert [s.first_row for s in shards] == [0, 5, 10, 15, 20]
    assert read_all(shards) == [f"q{i}" for i in range(23)]
    second = read_shard(Shard.from_json(shards[1].to_json()))
    assert second.doc_ids[0] == ["d5-0", "d5-1", "d5-2"]
    assert second.retrieval_scores == [
        [0.0, -1.0, -2.0],
        [0.0],
        [0.0, -1.0],
        [0.0, -1.0, -2.0],
        [0.0],
    ]
    assert second.n_pairs == 3 + 1 + 2 + 3 + 1


def test_parquet_shards_cross_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows(23, scores=False)), path, row_group_size=4)
    assert pq.ParquetFile(path).metadata.num_row_groups == 6
    shards = plan_shards([path], 7)
    assert [(s.first_row, s.n_rows) for s in shards] == [(0, 7), (7, 7), (14, 7), (21, 2)]
    assert read_all(shards) == [f"q{i}" for i in range(23)]
    assert read_shard(shards[0]).retrieval_scores is None


def test_a_folder_is_its_files_in_name_order(tmp_path: Path) -> None:
    write_candidates(tmp_path / "b.parquet", rows(4)[2:])
    write_candidates(tmp_path / "a.jsonl", rows(4)[:2])
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    files = input_files(tmp_path)
    assert [f.name for f in files] == ["a.jsonl", "b.parquet"]
    shards = plan_shards(files, 10)
    assert [s.index for s in shards] == [0, 1]
    assert read_all(shards) == ["q0", "q1", "q2", "q3"]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "in.jsonl:2: not valid JSON"),
        ("[1, 2]", "in.jsonl:2: expected a JSON object"),
        ('{"query_id": "q", "query": "x", "doc_ids": ["a"]}', "in.jsonl:2: missing texts"),
        (
            '{"query_id": "q", "query": "x", "doc_ids": ["a", "b"], "texts": ["t"]}',
            "same length",
        ),
        ('{"query_id": "q", "query": "x", "doc_ids": [1.5], "texts": ["t"]}', "doc id must be"),
        (
            '{"query_id": "q", "query": "x", "doc_ids": ["a"], "texts": ["t"], '
            '"retrieval_scores": [1, 2]}',
            "one number per doc id",
        ),
        (
            '{"query_id": "q", "query": "x", "doc_ids": ["a"], "texts": ["t"], '
            '"retrieval_scores": null}',
            "every row or for none",
        ),
    ],
)
def test_bad_rows_name_their_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(rows(1)[0]) + "\n" + line + "\n", encoding="utf-8")
    (shard,) = plan_shards([path], 10)
    with pytest.raises(DataError, match=match):
        read_shard(shard)


def test_inputs_and_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        input_files(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="holds no .jsonl or .parquet"):
        input_files(tmp_path)
    (tmp_path / "x.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="must be a .jsonl or .parquet"):
        input_files(tmp_path / "x.csv")
    with pytest.raises(InvalidInputError, match="batch_rows"):
        plan_shards([], 0)
    pq.write_table(pa.table({"query_id": ["q"], "query": ["x"]}), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="lacks the column"):
        plan_shards([tmp_path / "bad.parquet"], 5)


def test_a_shard_whose_file_changed_is_refused(tmp_path: Path) -> None:
    path = write_candidates(tmp_path / "in.jsonl", rows(6))
    shards = plan_shards([path], 4)
    write_candidates(path, rows(5))
    with pytest.raises(DataError, match="changed since the job was planned"):
        read_shard(shards[1])


def result(index: int, score: float, *, dense: float | None) -> RerankResult:
    return RerankResult(index, score, score, dense, False, 1, "t")


def test_output_rows_read_back_in_order_and_as_a_run(tmp_path: Path) -> None:
    path = write_candidates(tmp_path / "in.jsonl", rows(5))
    shards = plan_shards([path], 2)
    out = tmp_path / "out"
    save_manifest(out, {"n_shards": len(shards)})
    for shard in reversed(shards):  # the order parts are written in does not matter
        cands = read_shard(shard)
        ranked = [
            sorted(
                (result(j, float(j), dense=d) for j, d in enumerate(dense)),
                key=lambda r: -r.score,
            )
            for dense in (cands.retrieval_scores or [])
        ]
        write_part(out, shard.index, ranked_table(cands, ranked))
    assert finished_shards(out) == {0, 1, 2}
    assert not list(out.glob(".*.tmp"))
    table = read_ranked(out)
    assert table.column("query_id").to_pylist() == ["q0", "q1", "q2", "q3", "q4"]
    assert table.column("doc_ids").to_pylist()[2] == ["d2-2", "d2-1", "d2-0"]
    assert table.column("positions").to_pylist()[2] == [2, 1, 0]
    assert table.column("retrieval_scores").to_pylist()[2] == [-2.0, -1.0, 0.0]
    run = ranked_run(out)
    assert run.rankings["q2"] == ("d2-2", "d2-1", "d2-0")
    assert run.scores["q2"] == (2.0, 1.0, 0.0)
    assert run.to_dict()["q2"] == {"d2-2": 3.0, "d2-1": 2.0, "d2-0": 1.0}


def test_incomplete_output_is_refused_unless_partial_is_asked(tmp_path: Path) -> None:
    path = write_candidates(tmp_path / "in.jsonl", rows(5))
    shards = plan_shards([path], 2)
    out = tmp_path / "out"
    save_manifest(out, {"n_shards": len(shards)})
    cands = read_shard(shards[1])
    ranked = [[result(0, 1.0, dense=None)] for _ in cands.queries]
    write_part(out, 1, ranked_table(cands, ranked))
    with pytest.raises(DataError, match="2 of 3 shards are missing"):
        read_ranked(out)
    assert read_ranked(out, allow_partial=True).column("query_id").to_pylist() == ["q2", "q3"]
    with pytest.raises(DataError, match="not the output of crossrank rerank-batch"):
        read_ranked(tmp_path)


def test_resume_continues_only_the_same_job(tmp_path: Path) -> None:
    out = tmp_path / "out"
    job = {"n_shards": 3, "batch_rows": 2, "model": "m"}
    check_resumable(out, job, resume=False)  # a new folder
    save_manifest(out, job)
    with pytest.raises(InvalidInputError, match="pass --resume"):
        check_resumable(out, job, resume=False)
    check_resumable(out, job, resume=True)
    with pytest.raises(InvalidInputError, match=r"\(batch_rows, n_shards changed\)"):
        check_resumable(out, {**job, "batch_rows": 3, "n_shards": 2}, resume=True)
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "part-000000.parquet").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="no _job.json"):
        check_resumable(stray, job, resume=True)
