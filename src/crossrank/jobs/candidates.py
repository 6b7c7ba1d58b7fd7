"""The batch job's files: candidate lists in (JSON lines or Parquet), ranked lists out (Parquet).

Input: one row per query with ``query_id`` (string), ``query`` (string), ``doc_ids`` and
``texts`` (lists of strings of the same length) and optionally ``retrieval_scores`` (a list of
numbers, the first-stage scores). A ``.jsonl`` file holds one such JSON object a line; a
``.parquet`` file holds these columns. A folder means every ``*.jsonl`` and ``*.parquet`` in it,
in name order.

The input is cut into *shards* of at most ``batch_rows`` consecutive rows. Each shard is
reranked as one ``rerank_many`` call and written as one output file,
``part-NNNNNN.parquet`` (NNNNNN = the shard's number), first under a temporary name and then
renamed, so a part file that exists is complete: that is what makes a killed job resumable
without duplicated or missing rows. Output rows follow the input's order (parts by number,
rows within a part as in the input), one row per query:

=================== ======================= ==================================================
column              type                    meaning
=================== ======================= ==================================================
``query_id``        string                  as in the input
``doc_ids``         list<string>            the candidates, best first (``top_n`` kept)
``scores``          list<double>            the final score (fused when fusion was asked for)
``rerank_scores``   list<double>            the cross-encoder's score (logit or probability)
``retrieval_scores`` list<double>           the first-stage score passed in (null: none)
``positions``       list<int32>             each candidate's index in the input list
``truncated``       list<bool>              part of the text was not read by the model
``n_windows``       list<int32>             windows scored (1 unless ``overflow="chunk"``)
=================== ======================= ==================================================
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crossrank.errors import DataError, InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

    from crossrank.types import RerankResult

__all__ = [
    "INPUT_COLUMNS",
    "Candidates",
    "Shard",
    "finished_shards",
    "input_files",
    "output_schema",
    "part_path",
    "plan_shards",
    "ranked_table",
    "read_shard",
    "write_candidates",
    "write_part",
]

#: Columns every input row has; ``retrieval_scores`` is optional.
INPUT_COLUMNS = ("query_id", "query", "doc_ids", "texts")
_SCORES = "retrieval_scores"
_SUFFIXES = {".jsonl": "jsonl", ".parquet": "parquet"}
Format = Literal["jsonl", "parquet"]


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # a submodule: `import pyarrow` alone does not load it
    except ImportError as exc:
        from crossrank.errors import MissingExtraError

        package, extra, purpose = "pyarrow", "ray", "the batch reranking job"
        raise MissingExtraError(package, extra, purpose) from exc
    return pyarrow


@dataclass(frozen=True)
class Shard:
    """Consecutive input rows reranked together and written as one part file.

    Attributes:
        index: the shard's number (its part file is ``part-{index:06d}.parquet``).
        path: the input file.
        format: ``"jsonl"`` or ``"parquet"``.
        first_row: 0-based row number of the shard's first row in its file.
        n_rows: rows in the shard.
        byte_start / byte_end: the shard's bytes in a JSON-lines file (0 for Parquet).
        first_line: 1-based line number of its first row in a JSON-lines file (for messages).
    """

    index: int
    path: str
    format: Format
    first_row: int
    n_rows: int
    byte_start: int = 0
    byte_end: int = 0
    first_line: int = 0

    def to_json(self) -> str:
        """The shard as a JSON string (what a Ray worker receives)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Shard:
        """The shard :meth:`to_json` wrote."""
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Candidates:
    """A shard's rows as parallel lists, checked."""

    query_ids: list[str]
    queries: list[str]
    doc_ids: list[list[str]]
    texts: list[list[str]]
    retrieval_scores: list[list[float]] | None

    @property
    def n_pairs(self) -> int:
        """(query, candidate) pairs in the shard."""
        return sum(len(t) for t in self.texts)


def input_files(source: str | os.PathLike[str]) -> list[Path]:
    """The input files: ``source`` itself, or a folder's ``*.jsonl``/``*.parquet`` by name."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file())
        if not files:
            msg = f"{path} holds no .jsonl or .parquet file"
            raise DataError(msg)
        return files
    if not path.is_file():
        msg = f"input {path} does not exist"
        raise DataError(msg)
    if path.suffix not in _SUFFIXES:
        msg = f"input {path} must be a .jsonl or .parquet file (or a folder of them)"
        raise DataError(msg)
    return [path]


def plan_shards(files: Sequence[Path], batch_rows: int) -> list[Shard]:
    """Cut the files into shards of at most ``batch_rows`` rows (never across files).

    Parquet files are planned from their metadata; JSON-lines files are scanned once for line
    offsets (blank lines are skipped), so every shard can be read on its own by a worker.
    """
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        msg = f"batch_rows must be a positive integer, got {batch_rows!r}"
        raise InvalidInputError(msg)
    shards: list[Shard] = []
    for file in files:
        if _SUFFIXES.get(file.suffix) == "parquet":
            shards.extend(_plan_parquet(file, batch_rows, len(shards)))
        else:
            shards.extend(_plan_jsonl(file, batch_rows, len(shards)))
    return shards


def _plan_parquet(file: Path, batch_rows: int, first_index: int) -> list[Shard]:
    pq = _pyarrow().parquet
    meta = pq.ParquetFile(file)
    missing = [c for c in INPUT_COLUMNS if c not in meta.schema_arrow.names]
    if missing:
        msg = f"{file} lacks the column(s) {', '.join(missing)}; needed: {', '.join(INPUT_COLUMNS)}"
        raise DataError(msg)
    total = meta.metadata.num_rows
    return [
        Shard(first_index + i, str(file), "parquet", start, min(batch_rows, total - start))
        for i, start in enumerate(range(0, total, batch_rows))
    ]


def _plan_jsonl(file: Path, batch_rows: int, first_index: int) -> list[Shard]:
    starts: list[tuple[int, int, int]] = []  # (byte offset, row, line number)
    offset, row = 0, 0
    with file.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                if row % batch_rows == 0:
                    starts.append((offset, row, number))
                row += 1
            offset += len(line)
    shards = []
    for i, (start, first_row, first_line) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else offset
        n_rows = min(batch_rows, row - first_row)
        shards.append(
            Shard(first_index + i, str(file), "jsonl", first_row, n_rows, start, end, first_line)
        )
    return shards


def read_shard(shard: Shard) -> Candidates:
    """Read and check one shard's rows."""
    if shard.format == "parquet":
        rows = _read_parquet_rows(shard)
        where = [f"{shard.path} row {shard.first_row + i}" for i in range(len(rows))]
    else:
        rows, where = _read_jsonl_rows(shard)
    if len(rows) != shard.n_rows:
        msg = (
            f"{shard.path} changed since the job was planned: shard {shard.index} expected "
            f"{shard.n_rows} rows, found {len(rows)}"
        )
        raise DataError(msg)
    return _check_rows(rows, where)


def _read_parquet_rows(shard: Shard) -> list[dict[str, Any]]:
    pq = _pyarrow().parquet
    pf = pq.ParquetFile(shard.path)
    columns = [c for c in (*INPUT_COLUMNS, _SCORES) if c in pf.schema_arrow.names]
    groups: list[int] = []
    skip = seen = 0
    stop = shard.first_row + shard.n_rows
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if seen + n > shard.first_row and seen < stop:
            if not groups:
                skip = shard.first_row - seen
            groups.append(g)
        seen += n
    table = pf.read_row_groups(groups, columns=columns).slice(skip, shard.n_rows)
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def _read_jsonl_rows(shard: Shard) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    with open(shard.path, "rb") as f:
        f.seek(shard.byte_start)
        data = f.read(shard.byte_end - shard.byte_start)
    for number, line in enumerate(data.split(b"\n"), start=shard.first_line):
        if not line.strip():
            continue
        place = f"{shard.path}:{number}"
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            msg = f"{place}: not valid JSON ({exc})"
            raise DataError(msg) from None
        if not isinstance(obj, dict):
            msg = f"{place}: expected a JSON object, got {type(obj).__name__}"
            raise DataError(msg)
        rows.append(obj)
        where.append(place)
    return rows, where


def _as_id(value: object, place: str, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    msg = f"{place}: {what} must be a string, got {type(value).__name__}"
    raise DataError(msg)


def _check_rows(rows: list[dict[str, Any]], where: list[str]) -> Candidates:
    qids, queries, doc_ids, texts, scores = [], [], [], [], []
    has_scores = bool(rows) and rows[0].get(_SCORES) is not None
    for row, place in zip(rows, where, strict=True):
        missing = [c for c in INPUT_COLUMNS if row.get(c) is None]
        if missing:
            msg = f"{place}: missing {', '.join(missing)}"
            raise DataError(msg)
        qids.append(_as_id(row["query_id"], place, "query_id"))
        if not isinstance(row["query"], str):
            msg = f"{place}: query must be a string"
            raise DataError(msg)
        queries.append(row["query"])
        ids, docs = row["doc_ids"], row["texts"]
        if not isinstance(ids, list) or not isinstance(docs, list) or len(ids) != len(docs):
            msg = f"{place}: doc_ids and texts must be lists of the same length"
            raise DataError(msg)
        doc_ids.append([_as_id(d, place, "each doc id") for d in ids])
        if not all(isinstance(t, str) for t in docs):
            msg = f"{place}: texts must be strings"
            raise DataError(msg)
        texts.append(docs)
        row_scores = row.get(_SCORES)
        if (row_scores is not None) != has_scores:
            msg = f"{place}: retrieval_scores must be given for every row or for none"
            raise DataError(msg)
        if row_scores is not None:
            if not isinstance(row_scores, list) or len(row_scores) != len(ids):
                msg = f"{place}: retrieval_scores must hold one number per doc id"
                raise DataError(msg)
            scores.append([float(s) for s in row_scores])
    return Candidates(qids, queries, doc_ids, texts, scores if has_scores else None)


def write_candidates(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write candidate rows (dicts with the input columns) as ``.jsonl`` or ``.parquet``."""
    target = Path(path)
    kind = _SUFFIXES.get(target.suffix)
    if kind is None:
        msg = f"{target} must end in .jsonl or .parquet"
        raise InvalidInputError(msg)
    target.parent.mkdir(parents=True, exist_ok=True)
    items = [dict(r) for r in rows]
    if kind == "jsonl":
        with target.open("w", encoding="utf-8") as f:
            for item in items:
                f.write(json.dumps(item, ensure_ascii=False) + "\n")
    else:
        pa = _pyarrow()
        pa.parquet.write_table(pa.Table.from_pylist(items), target)
    return target


def output_schema() -> pa.Schema:
    """The Arrow schema of the output rows (see the module's table)."""
    pa = _pyarrow()
    return pa.schema(
        [
            ("query_id", pa.string()),
            ("doc_ids", pa.list_(pa.string())),
            ("scores", pa.list_(pa.float64())),
            ("rerank_scores", pa.list_(pa.float64())),
            ("retrieval_scores", pa.list_(pa.float64())),
            ("positions", pa.list_(pa.int32())),
            ("truncated", pa.list_(pa.bool_())),
            ("n_windows", pa.list_(pa.int32())),
        ]
    )


def ranked_table(candidates: Candidates, results: Sequence[Sequence[RerankResult]]) -> pa.Table:
    """The output rows of a shard: its candidates in the order ``results`` ranked them."""
    columns: dict[str, list[Any]] = {name: [] for name in output_schema().names}
    for i, ranked in enumerate(results):
        ids = candidates.doc_ids[i]
        columns["query_id"].append(candidates.query_ids[i])
        columns["doc_ids"].append([ids[r.index] for r in ranked])
        columns["scores"].append([r.score for r in ranked])
        columns["rerank_scores"].append([r.rerank_score for r in ranked])
        columns["retrieval_scores"].append(
            None if candidates.retrieval_scores is None else [r.retrieval_score for r in ranked]
        )
        columns["positions"].append([r.index for r in ranked])
        columns["truncated"].append([r.truncated for r in ranked])
        columns["n_windows"].append([r.n_windows for r in ranked])
    table: pa.Table = _pyarrow().Table.from_pydict(columns, schema=output_schema())
    return table


def part_path(folder: str | os.PathLike[str], index: int) -> Path:
    """Where shard ``index``'s output lives."""
    return Path(folder) / f"part-{index:06d}.parquet"


def write_part(folder: str | os.PathLike[str], index: int, table: pa.Table) -> Path:
    """Write a shard's output atomically: a temporary file renamed into place."""
    target = part_path(folder, index)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        _pyarrow().parquet.write_table(table, staging)
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def finished_shards(folder: str | os.PathLike[str]) -> set[int]:
    """The shards whose part file exists (complete by construction)."""
    done = set()
    for path in Path(folder).glob("part-*.parquet"):
        number = path.stem.removeprefix("part-")
        if number.isdigit():
            done.add(int(number))
    return done
